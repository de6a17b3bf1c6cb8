package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/tracing"
)

// MaxTokenBytes is the longest token accepted. Clerk's session tokens are about
// 1 KiB; a longer one is refused before any parsing, so that a flood of huge
// headers costs no decoding.
const MaxTokenBytes = 8 << 10

// Defaults for zero Options fields.
const (
	// DefaultMinRefreshInterval bounds JWKS fetches caused by unknown kids.
	DefaultMinRefreshInterval = 5 * time.Second
	// DefaultRefreshInterval is how often the JWKS is fetched in the background;
	// Clerk's SDKs cache it for 5 minutes.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultFetchTimeout bounds one JWKS fetch when the HTTP client has no timeout.
	DefaultFetchTimeout = 10 * time.Second
)

// minRSABits is the smallest RSA modulus trusted; Clerk's keys are 2048 bits.
const minRSABits = 2048

// ErrKeysNotLoaded is what Ready reports until the first successful JWKS fetch.
// Its text is fit for a readiness response.
var ErrKeysNotLoaded = errors.New("clerk jwks not loaded yet")

// Options configures a Verifier. Issuer and one of JWKSURL or Key are required.
type Options struct {
	// Issuer is the exact expected iss (CLERK_ISSUER), e.g. https://clerk.example.com.
	Issuer string
	// JWKSURL is the key set to fetch and cache (CLERK_JWKS_URL), an absolute
	// http(s) URL as the configuration checked it. Unused when Key is set.
	JWKSURL *url.URL
	// Key is Clerk's RSA public key (CLERK_JWT_KEY, parsed and checked by the
	// configuration). When set, verification never touches the network and
	// the token's kid is not consulted.
	Key *rsa.PublicKey
	// AuthorizedParties are the accepted azp values (CLERK_AUTHORIZED_PARTIES):
	// the origins of the pages that may ask Clerk for a token, normalised as a
	// browser writes an origin, which is what Clerk puts in azp. A token with an
	// azp not listed is refused; with the zero Set every token that carries an
	// azp is refused.
	AuthorizedParties origin.Set
	// ClockSkew is the leeway for exp, nbf and iat (CLERK_CLOCK_SKEW). Zero
	// allows none, as CLERK_CLOCK_SKEW=0s asks; the configuration supplies
	// Clerk's own 5 s when the variable is unset.
	ClockSkew time.Duration
	// HTTPClient fetches the JWKS; a client with a DefaultFetchTimeout timeout
	// when nil. A client without a timeout gets one.
	HTTPClient *http.Client
	// Registerer receives the metrics; none are registered when nil.
	Registerer prometheus.Registerer
	// Logger receives refresh failures (warn) and refused tokens (debug).
	Logger *slog.Logger
	// Tracer traces each token verification the middleware makes; nil (tracing
	// off) traces nothing.
	Tracer *tracing.Tracer
	// Now is the clock for exp, nbf and iat; time.Now when nil. The refresh
	// rate bound always uses the real clock.
	Now func() time.Time
	// MinRefreshInterval is the least time between the start of two JWKS
	// fetches when a token names an unknown kid; DefaultMinRefreshInterval when zero.
	MinRefreshInterval time.Duration
	// RefreshInterval is the background refresh period after a successful
	// fetch; DefaultRefreshInterval when zero.
	RefreshInterval time.Duration
}

// Verifier checks Clerk session tokens. It is safe for concurrent use; the
// request path does no network I/O except one bounded JWKS refresh when a
// token names a key it has not seen.
type Verifier struct {
	issuer  string
	parties map[string]struct{}
	log     *slog.Logger
	m       *metrics
	tracer  *tracing.Tracer
	skew    time.Duration    // leeway for exp, nbf and iat
	now     func() time.Time // the clock of those checks

	rs256     jws.Verifier // jwx's RS256 signature check, for remembered headers
	keys      atomic.Pointer[keySet]
	ready     chan struct{} // closed once keys are loaded
	readyOnce sync.Once

	// JWKS mode only.
	jwksURL      *url.URL // a copy of Options.JWKSURL
	client       *http.Client
	minRefresh   time.Duration
	refreshEvery time.Duration
	kick         chan struct{} // asks the refresh loop for a fetch now

	mu        sync.Mutex
	pending   chan struct{} // closed when the asked-for fetch ends; nil when none asked
	lastFetch time.Time     // start of the latest fetch, for the rate bound
	stopped   bool          // the refresh loop has ended
}

// keySet is an immutable snapshot of the verification keys, already parsed,
// with the token headers verified with them so far.
type keySet struct {
	byKID   map[string]*rsa.PublicKey
	only    *rsa.PublicKey // PEM mode: the one key, whatever the token's kid
	headers knownHeaders
}

func (ks *keySet) lookup(kid string) (*rsa.PublicKey, bool) {
	if ks.only != nil {
		return ks.only, true
	}
	if kid == "" {
		return nil, false
	}
	k, ok := ks.byKID[kid]
	return k, ok
}

// NewVerifier returns a Verifier. In JWKS mode it starts fetching the key set in
// the background and keeps it fresh until ctx is cancelled; Clerk being
// unreachable is not an error (Ready reports it). The error is for invalid
// options only, such as a missing issuer.
func NewVerifier(ctx context.Context, o Options) (*Verifier, error) {
	if o.Issuer == "" {
		return nil, errors.New("auth: issuer is required")
	}
	if o.ClockSkew < 0 {
		return nil, errors.New("auth: clock skew must not be negative")
	}
	skew := o.ClockSkew
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	rs256, err := jws.NewVerifier(jwa.RS256)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	v := &Verifier{
		issuer:  o.Issuer,
		parties: make(map[string]struct{}, o.AuthorizedParties.Len()),
		log:     log,
		m:       m,
		tracer:  o.Tracer,
		rs256:   rs256,
		ready:   make(chan struct{}),
		skew:    skew,
		now:     now,
	}
	for _, p := range o.AuthorizedParties.List() {
		v.parties[p] = struct{}{}
	}

	if o.Key != nil {
		v.keys.Store(&keySet{only: o.Key})
		close(v.ready)
		return v, nil
	}

	if o.JWKSURL == nil {
		return nil, errors.New("auth: a JWKS URL or a Key is required")
	}
	if err := v.startJWKS(ctx, o); err != nil {
		return nil, err
	}
	return v, nil
}

// Ready returns nil once verification keys are loaded, else ErrKeysNotLoaded.
// Keys once loaded stay loaded: a later JWKS outage keeps the cached ones.
func (v *Verifier) Ready() error {
	select {
	case <-v.ready:
		return nil
	default:
		return ErrKeysNotLoaded
	}
}

// WaitReady blocks until keys are loaded or ctx ends.
func (v *Verifier) WaitReady(ctx context.Context) error {
	select {
	case <-v.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: %w: %w", ErrKeysNotLoaded, ctx.Err())
	}
}

func (v *Verifier) markReady() {
	v.readyOnce.Do(func() { close(v.ready) })
}

// Verify checks token and returns the identity it carries. A refused token
// gives an *Error whose Reason says why. When the token names a kid not in the
// cached key set, Verify waits (within ctx) for one rate-bounded JWKS refresh.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	switch {
	case token == "":
		return Identity{}, refuse(ReasonMissing, nil)
	case len(token) > MaxTokenBytes:
		return Identity{}, refuse(ReasonOversized, nil)
	case !isCompactJWS(token):
		return Identity{}, refuse(ReasonMalformed, nil)
	}
	ks := v.keys.Load()
	if ks == nil {
		return Identity{}, refuse(ReasonUnavailable, ErrKeysNotLoaded)
	}
	id, err := v.verifyWith(ks, token)
	if err == nil || err.Reason != ReasonUnknownKey || v.jwksURL == nil {
		return id, errOrNil(err)
	}
	done := v.requestRefresh()
	if done == nil {
		return Identity{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Identity{}, err
	}
	if fresh := v.keys.Load(); fresh != ks {
		id, err = v.verifyWith(fresh, token)
	}
	return id, errOrNil(err)
}

// errOrNil keeps a nil *Error from becoming a non-nil error.
func errOrNil(err *Error) error {
	if err == nil {
		return nil
	}
	return err
}

// isCompactJWS reports whether s is three canonical base64url segments (the
// last may be empty, so that alg "none" is refused as an algorithm, not as
// noise). Anything else, including the JSON serialization, is refused before
// jwx sees it.
//
// Canonical means without padding and with the unused bits of the last
// character zero, as every encoder writes it. jws.Verify re-encodes what it
// decoded, so it would accept a second spelling of a genuine token; the check
// of remembered headers signs the text as sent (RFC 7515's signing input),
// which would not. Refusing other spellings keeps the two ways one.
func isCompactJWS(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	if dots != 2 {
		return false
	}
	h, rest, _ := strings.Cut(s, ".")
	p, sig, _ := strings.Cut(rest, ".")
	return h != "" && p != "" && canonical(h) && canonical(p) && canonical(sig)
}

// canonical reports whether the base64url segment seg (alphabet already
// checked, no padding) is the one encoding of the bytes it decodes to: its
// length is not 1 more than a multiple of 4, and the bits of its last
// character that encode nothing are zero.
func canonical(seg string) bool {
	var unused byte
	switch len(seg) % 4 {
	case 0:
		return true
	case 1:
		return false
	case 2:
		unused = 0x0f // 2 of the last character's 6 bits are data
	case 3:
		unused = 0x03 // 4 of 6
	}
	return sextet(seg[len(seg)-1])&unused == 0
}

// sextet is the value of a base64url character.
func sextet(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	default: // '_'
		return 63
	}
}
