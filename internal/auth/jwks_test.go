package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/fakeclerk"
)

func TestKeyRotation(t *testing.T) {
	s := newClerkServer(t)
	s.start(t, s.options(t))
	old := s.mint(t, fakeclerk.Token{Subject: "user_old"})
	before := s.clerk.JWKSRequests()

	if err := s.clerk.Rotate(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // past MinRefreshInterval (50 ms) since the start-up fetch
	fresh := s.mint(t, fakeclerk.Token{Subject: "user_new"})

	for _, tc := range []struct{ token, user string }{{fresh, "user_new"}, {old, "user_old"}, {fresh, "user_new"}} {
		id, err := s.v.Verify(context.Background(), tc.token)
		if err != nil {
			t.Fatalf("Verify after rotation: %v", err)
		}
		if got, want := id.UserID, tc.user; got != want {
			t.Errorf("user = %q, want %q", got, want)
		}
	}
	if got, want := s.clerk.JWKSRequests()-before, int64(1); got != want {
		t.Errorf("JWKS requests for the new kid = %d, want %d", got, want)
	}
	if got := counter(t, s.reg, "payments_api_jwks_refreshes_total", "outcome", "success"); got != 2 {
		t.Errorf("jwks_refreshes_total{success} = %v, want 2", got)
	}
}

// TestRememberedHeaderOfARetiredKey: a token whose header was remembered is
// refused once its key has left Clerk's JWKS, as any token of that key.
func TestRememberedHeaderOfARetiredKey(t *testing.T) {
	s := newClerkServer(t)
	s.start(t, s.options(t))
	ctx := context.Background()
	old := s.mint(t, fakeclerk.Token{Subject: "user_old"})
	for round := range 2 { // the second through the remembered header
		if _, err := s.v.Verify(ctx, old); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}

	// Clerk now serves only another key: the old one is rotated out.
	next, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	s.replacement.Store(next)
	s.mode.Store("replaced")
	fresh, err := next.Mint(fakeclerk.Token{Subject: "user_new"})
	if err != nil {
		t.Fatal(err)
	}
	// The new kid asks for a refresh once the 50 ms bound since the last allows.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.v.Verify(ctx, fresh)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of the new key still refused: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	_, err = s.v.Verify(ctx, old)
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Reason != auth.ReasonUnknownKey {
		t.Fatalf("token of the retired key: %v, want reason %q", err, auth.ReasonUnknownKey)
	}
}

func TestJWKSDownAtStart(t *testing.T) {
	s := newClerkServer(t)
	s.clerk.SetDown(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := auth.NewVerifier(ctx, s.options(t))
	if err != nil {
		t.Fatalf("NewVerifier with Clerk down: %v, want no error", err)
	}
	token := s.mint(t, fakeclerk.Token{})

	// The first fetch fails; readiness says why; a request gets 503, not 401.
	for s.clerk.JWKSRequests() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := v.Ready(); !errors.Is(err, auth.ErrKeysNotLoaded) {
		t.Fatalf("Ready = %v, want %v", err, auth.ErrKeysNotLoaded)
	}
	if got, want := v.Ready().Error(), "clerk jwks not loaded yet"; got != want {
		t.Errorf("Ready text = %q, want %q", got, want)
	}
	res := do(t, v, bearer(token))
	if got, want := res.status, http.StatusServiceUnavailable; got != want {
		t.Fatalf("status before keys = %d, want %d", got, want)
	}
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if got := counter(t, s.reg, "payments_api_auth_failures_total", "reason", "unavailable"); got != 1 {
		t.Errorf("auth_failures_total{unavailable} = %v, want 1", got)
	}

	// Clerk comes back: the background retry loads the keys.
	s.clerk.SetDown(false)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := v.WaitReady(wctx); err != nil {
		t.Fatalf("not ready after Clerk came back: %v", err)
	}
	if err := v.Ready(); err != nil {
		t.Errorf("Ready = %v, want nil", err)
	}
	if got, want := do(t, v, bearer(token)).status, http.StatusOK; got != want {
		t.Errorf("status after keys = %d, want %d", got, want)
	}
	if got := counter(t, s.reg, "payments_api_jwks_refreshes_total", "outcome", "error"); got < 1 {
		t.Errorf("jwks_refreshes_total{error} = %v, want >= 1", got)
	}
}

func TestJWKSDownLaterKeepsKeys(t *testing.T) {
	s := newClerkServer(t)
	s.start(t, s.options(t))
	token := s.mint(t, fakeclerk.Token{Subject: "user_1"})

	for _, mode := range []string{"down", "garbage", "empty"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "down" {
				s.clerk.SetDown(true)
				defer s.clerk.SetDown(false)
			} else {
				s.mode.Store(mode)
				defer s.mode.Store("")
			}
			errorsBefore := counter(t, s.reg, "payments_api_jwks_refreshes_total", "outcome", "error")
			requestsBefore := s.clerk.JWKSRequests()
			time.Sleep(60 * time.Millisecond)

			// An unknown kid forces a refresh, which fails...
			unknown := s.mint(t, fakeclerk.Token{KeyID: "ins_unknown"})
			_, err := s.v.Verify(context.Background(), unknown)
			var ae *auth.Error
			if !errors.As(err, &ae) || ae.Reason != auth.ReasonUnknownKey {
				t.Fatalf("unknown kid: err = %v, want reason %q", err, auth.ReasonUnknownKey)
			}
			if got := counter(t, s.reg, "payments_api_jwks_refreshes_total", "outcome", "error") - errorsBefore; got != 1 {
				t.Errorf("jwks_refreshes_total{error} grew by %v, want 1", got)
			}
			if mode == "down" && s.clerk.JWKSRequests() == requestsBefore {
				t.Error("no JWKS request was made")
			}
			// ...and the cached keys still verify.
			if err := s.v.Ready(); err != nil {
				t.Errorf("Ready = %v, want nil", err)
			}
			if got, want := do(t, s.v, bearer(token)).status, http.StatusOK; got != want {
				t.Errorf("status with cached keys = %d, want %d", got, want)
			}
		})
	}
}

// TestRefreshRateBound floods the verifier with tokens naming unknown kids and
// counts the JWKS requests that reach the server.
func TestRefreshRateBound(t *testing.T) {
	s := newClerkServer(t)
	o := s.options(t)
	o.MinRefreshInterval = time.Second
	token := s.mint(t, fakeclerk.Token{})
	unknown := make([]string, 50)
	for i := range unknown {
		unknown[i] = s.mint(t, fakeclerk.Token{KeyID: "ins_flood_" + itoa(int64(i))})
	}
	s.start(t, o)

	// Within the bound of the start-up fetch: no refresh at all.
	before := s.clerk.JWKSRequests()
	for _, u := range unknown {
		if _, err := s.v.Verify(context.Background(), u); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if got := s.clerk.JWKSRequests() - before; got != 0 {
		t.Errorf("JWKS requests within the bound = %d, want 0", got)
	}

	// Past it: a concurrent flood causes one refresh, shared by all.
	time.Sleep(o.MinRefreshInterval)
	before = s.clerk.JWKSRequests()
	start := time.Now()
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := s.v.Verify(context.Background(), unknown[(g*25+i)%len(unknown)]); err == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := s.clerk.JWKSRequests() - before
	// One refresh per started interval at most.
	limit := int64(elapsed/o.MinRefreshInterval) + 1
	if got < 1 || got > limit {
		t.Errorf("JWKS requests under a flood of 500 = %d, want 1..%d (elapsed %v)", got, limit, elapsed)
	}
	if accepted.Load() != 0 {
		t.Errorf("%d unknown-kid tokens accepted", accepted.Load())
	}
	// Good tokens are unaffected.
	if _, err := s.v.Verify(context.Background(), token); err != nil {
		t.Errorf("valid token after the flood: %v", err)
	}
	t.Logf("flood of 500 unknown-kid verifications in %v caused %d JWKS request(s)", elapsed, got)
}

func TestCancelStopsRefresh(t *testing.T) {
	s := newClerkServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	o := s.options(t)
	v, err := auth.NewVerifier(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := v.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	before := s.clerk.JWKSRequests()
	unknown := s.mint(t, fakeclerk.Token{KeyID: "ins_after_cancel"})
	if _, err := v.Verify(context.Background(), unknown); err == nil {
		t.Fatal("unknown kid accepted")
	}
	if got := s.clerk.JWKSRequests() - before; got != 0 {
		t.Errorf("JWKS requests after cancel = %d, want 0", got)
	}
	// Cached keys keep verifying after the refresher stopped.
	if _, err := v.Verify(context.Background(), s.mint(t, fakeclerk.Token{})); err != nil {
		t.Errorf("Verify after cancel: %v", err)
	}
}

// countingTransport records every request instead of sending it.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errors.New("no network in PEM mode")
}

func TestPEMModeUsesNoNetwork(t *testing.T) {
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	// A JWKS URL that points at a listener that counts connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			conn.Close()
		}
	}()
	transport := &countingTransport{}

	// The PEM forms CLERK_JWT_KEY accepts are the configuration's tests; here
	// the key arrives parsed.
	t.Run("key", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		v, err := auth.NewVerifier(ctx, auth.Options{
			Issuer:     issuer,
			JWKSURL:    mustURL(t, "http://"+ln.Addr().String()+"/.well-known/jwks.json"),
			Key:        c.PublicKey(),
			HTTPClient: &http.Client{Transport: transport},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Ready(); err != nil {
			t.Fatalf("Ready = %v, want nil at once", err)
		}
		tokens := map[string]fakeclerk.Token{
			"plain":       {Subject: "user_pem"},
			"unknown kid": {Subject: "user_pem", KeyID: "ins_not_in_any_jwks"},
		}
		for name, tok := range tokens {
			signed, err := c.Mint(tok)
			if err != nil {
				t.Fatal(err)
			}
			id, err := v.Verify(ctx, signed)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, want := id.UserID, "user_pem"; got != want {
				t.Errorf("%s: user = %q, want %q", name, got, want)
			}
		}
		// The same attacks fail in PEM mode too.
		expired, _ := c.Mint(fakeclerk.Token{IssuedAt: time.Now().Add(-time.Hour)})
		rs512, _ := c.Mint(fakeclerk.Token{Algorithm: jwa.RS512})
		for _, bad := range []string{expired, rs512} {
			if _, err := v.Verify(ctx, bad); err == nil {
				t.Error("bad token accepted in PEM mode")
			}
		}
	})
	time.Sleep(50 * time.Millisecond) // give a stray background fetch the chance to show
	if got := conns.Load() + transport.n.Load(); got != 0 {
		t.Errorf("network requests in PEM mode = %d, want 0", got)
	}
}

func TestNewVerifierOptions(t *testing.T) {
	private, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := mustURL(t, "https://clerk.example/.well-known/jwks.json")
	tests := []struct {
		name    string
		o       auth.Options
		wantErr bool
	}{
		{"jwks", auth.Options{Issuer: issuer, JWKSURL: jwks}, false},
		{"jwks unreachable is fine", auth.Options{Issuer: issuer, JWKSURL: mustURL(t, "http://127.0.0.1:1/jwks")}, false},
		{"no issuer", auth.Options{JWKSURL: jwks}, true},
		{"no keys at all", auth.Options{Issuer: issuer}, true},
		{"negative skew", auth.Options{Issuer: issuer, JWKSURL: jwks, ClockSkew: -time.Second}, true},
		{"key", auth.Options{Issuer: issuer, Key: &private.PublicKey}, false},
		{"key without issuer", auth.Options{Key: &private.PublicKey}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := auth.NewVerifier(ctx, tc.o)
			if got := err != nil; got != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error echoes the key: %v", err)
			}
		})
	}
}

// TestMetricsRegisteredOnce: a second Verifier on the same registry is refused,
// as the other features' constructors refuse it, rather than sharing counters.
func TestMetricsRegisteredOnce(t *testing.T) {
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	o := auth.Options{Issuer: issuer, Key: c.PublicKey(), Registerer: prometheus.NewRegistry()}
	if _, err := auth.NewVerifier(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	if v, err := auth.NewVerifier(t.Context(), o); err == nil || v != nil {
		t.Fatalf("second NewVerifier on one registry = %v, %v; want an error", v, err)
	}
}
