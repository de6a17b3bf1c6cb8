package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/problemtest"
	"github.com/acme/payments-api/internal/requestlog"
)

const (
	issuer   = "https://clerk.payments.example"
	frontend = "http://localhost:3000"
)

// stand is a fake Clerk behind an httptest server, with a switchable JWKS
// answer, and a Verifier pointed at it.
type stand struct {
	clerk *fakeclerk.Clerk
	srv   *httptest.Server
	mode  atomic.Value // "" serve, "garbage", "empty", "replaced"
	// replacement is the Clerk whose JWKS is served in mode "replaced".
	replacement atomic.Pointer[fakeclerk.Clerk]
	reg         *prometheus.Registry
	logs        *bytes.Buffer
	v           *auth.Verifier
}

func newClerkServer(t testing.TB) *stand {
	t.Helper()
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	s := &stand{clerk: c, reg: prometheus.NewRegistry(), logs: new(bytes.Buffer)}
	s.mode.Store("")
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.mode.Load().(string) {
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"keys": [{"kty": "RSA", "n": 12}`)
		case "empty":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"keys": []}`)
		case "replaced":
			s.replacement.Load().ServeHTTP(w, r)
		default:
			c.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stand) jwksURL(t testing.TB) *url.URL { return mustURL(t, s.srv.URL+fakeclerk.JWKSPath) }

// mustURL parses an absolute URL, as the configuration hands it out.
func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// parties returns the authorized parties as the configuration hands them out.
func parties(t testing.TB, origins ...string) origin.Set {
	t.Helper()
	set, err := origin.NewSet(origins)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func (s *stand) options(t testing.TB) auth.Options {
	t.Helper()
	return auth.Options{
		Issuer:             issuer,
		JWKSURL:            s.jwksURL(t),
		AuthorizedParties:  parties(t, frontend, "https://app.payments.example"),
		ClockSkew:          5 * time.Second,
		Registerer:         s.reg,
		Logger:             slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinRefreshInterval: 50 * time.Millisecond,
	}
}

// start builds the Verifier and waits for its first JWKS fetch.
func (s *stand) start(t testing.TB, o auth.Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.NewVerifier(ctx, o)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	s.v = v
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := v.WaitReady(wctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
}

func (s *stand) mint(t testing.TB, tok fakeclerk.Token) string {
	t.Helper()
	signed, err := s.clerk.Mint(tok)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// result is what one request through the middleware produced.
type result struct {
	status   int
	header   http.Header
	body     string
	problem  problem.Body
	identity auth.Identity
	reached  bool
	logAttrs []slog.Attr
}

// do sends one request through Middleware to a handler that records the
// identity it was given.
func do(t testing.TB, v *auth.Verifier, prepare func(*http.Request)) result {
	t.Helper()
	var res result
	h := auth.Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res.reached = true
		id, ok := auth.IdentityFrom(r.Context())
		if !ok {
			t.Error("handler reached without an identity")
		}
		res.identity = id
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest(http.MethodPost, "/stripe/checkout", nil)
	ctx, rec := requestlog.New(req.Context(), "req-1")
	req = req.WithContext(ctx)
	if prepare != nil {
		prepare(req)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res.status = w.Code
	res.header = w.Header()
	res.body = w.Body.String()
	res.logAttrs = rec.Attrs()
	if w.Code != http.StatusOK {
		res.problem = problemtest.Decode(t, problemtest.Recorded(w))
	}
	return res
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// claims returns Clerk-shaped claims valid now, for tokens signed by others.
func claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": issuer, "sub": "user_attacker", "sid": "sess_x", "azp": frontend,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(), "v": 2,
	}
}

// sign signs c with any algorithm and key, adding headers, through jwx.
func sign(t testing.TB, c map[string]any, alg jwa.SignatureAlgorithm, key any, headers map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	for k, v := range headers {
		if err := h.Set(k, v); err != nil {
			t.Fatalf("header %s: %v", k, err)
		}
	}
	var out []byte
	if alg == jwa.NoSignature {
		out, err = jws.Sign(payload, jws.WithInsecureNoSignature(jws.WithProtectedHeaders(h)))
	} else {
		out, err = jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	}
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return string(out)
}

func counter(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	return metricstest.Value(t, reg, name, map[string]string{label: value})
}

type slogAttr = slog.Attr

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
