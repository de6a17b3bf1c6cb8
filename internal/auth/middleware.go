package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
)

// Middleware authenticates each request with the Clerk session token in its
// Authorization header (scheme "Bearer", any case) and passes the Identity on
// in the request context; the access log gains user_id. A token anywhere else
// (query string, cookie) is not looked at.
//
// Refusals are RFC 6750 401 problems: WWW-Authenticate "Bearer" when there is
// no bearer token, `Bearer error="invalid_token"` for any bad one. Before the
// first JWKS fetch it answers 503, because the token may well be good.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, reason := bearerToken(r.Header)
			if reason != "" {
				v.refused(w, r, refuse(reason, nil))
				return
			}
			id, err := v.verifyTraced(r.Context(), token)
			if err != nil {
				v.refused(w, r, err)
				return
			}
			ctx := WithIdentity(r.Context(), id)
			requestlog.Add(ctx, slog.String("user_id", id.UserID))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// verifyTraced is Verify in a span of its own, when tracing is on: a refused
// token ends it failed with the reason, never with any of the token.
func (v *Verifier) verifyTraced(ctx context.Context, token string) (Identity, error) {
	ctx, span := v.tracer.Start(ctx, "auth.verify_token", trace.SpanKindInternal)
	id, err := v.Verify(ctx, token)
	span.End(err)
	return id, err
}

// bearerToken returns the token of the one Authorization header, or why there
// is none. Another scheme counts as no bearer token at all (RFC 6750 §3.1).
func bearerToken(h http.Header) (string, Reason) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", ReasonMissing
	case len(vals) > 1:
		return "", ReasonMalformed
	}
	raw := vals[0]
	// Refuse before any slicing that would copy an enormous header around.
	if len(raw) > MaxTokenBytes+len("Bearer ")+16 {
		return "", ReasonOversized
	}
	scheme, token, _ := strings.Cut(strings.TrimLeft(raw, " "), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ReasonMissing
	}
	token = strings.Trim(token, " ")
	if token == "" {
		return "", ReasonMissing
	}
	return token, ""
}

// refused answers a request whose token err refused; an error that is not an
// *Error counts as a malformed token.
func (v *Verifier) refused(w http.ResponseWriter, r *http.Request, err error) {
	reason := ReasonMalformed
	if ae := (*Error)(nil); errors.As(err, &ae) {
		reason = ae.Reason
	}
	if c, ok := v.m.failures[reason]; ok {
		c.Inc()
	}
	// Checked first, so that a flood of bad tokens does not build a record
	// (three allocations) for a level that is off in production.
	if v.log.Enabled(r.Context(), slog.LevelDebug) {
		v.log.LogAttrs(r.Context(), slog.LevelDebug, "clerk token refused",
			slog.String("reason", string(reason)), slog.String("request_id", requestlog.ID(r.Context())))
	}

	var pe *problem.Error
	switch reason {
	case ReasonMissing:
		pe = problem.Wrap(http.StatusUnauthorized, "A bearer token is required.", err).
			WithHeader("WWW-Authenticate", "Bearer")
	case ReasonUnavailable:
		pe = problem.Wrap(http.StatusServiceUnavailable, "Authentication is temporarily unavailable.", err).
			WithHeader("Retry-After", "5")
	default:
		pe = problem.Wrap(http.StatusUnauthorized, "The bearer token is invalid or has expired.", err).
			WithHeader("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	problem.Write(w, r, pe)
}
