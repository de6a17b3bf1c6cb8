package auth

import "context"

// Identity is the authenticated caller, taken from a verified Clerk session token
// and from nothing else.
type Identity struct {
	UserID    string // sub
	SessionID string // sid
	Email     string // email claim, only when the session token template adds one
	OrgID     string // o.id, the active organisation, when there is one
}

type identityKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the auth middleware put in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
