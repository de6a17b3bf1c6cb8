package auth_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/problem"
)

// fixedStand is a ready JWKS-mode stand whose clock stands still at the time
// its tokens were minted, so that they stay valid however long a run lasts.
func fixedStand(tb testing.TB) (*stand, time.Time) {
	tb.Helper()
	s := newClerkServer(tb)
	now := time.Now().Truncate(time.Second)
	o := s.options(tb)
	o.Now = func() time.Time { return now }
	o.MinRefreshInterval = 0 // the default bound: a fuzzer's random kids must not hammer the JWKS
	o.Logger = nil
	s.start(tb, o)
	return s, now
}

// FuzzMiddleware sends arbitrary Authorization headers through the whole
// middleware path: only a token Clerk's key signed is ever let through, and
// every refusal is a well-formed 401 problem that does not echo the input.
func FuzzMiddleware(f *testing.F) {
	s, now := fixedStand(f)
	valid := s.mint(f, fakeclerk.Token{Subject: "user_fuzz", AuthorizedParty: frontend, IssuedAt: now})
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		"Bearer " + valid,
		"bearer " + valid,
		"Bearer " + s.mint(f, fakeclerk.Token{Subject: "user_fuzz", IssuedAt: now.Add(-time.Hour)}),
		"Bearer " + s.mint(f, fakeclerk.Token{Subject: "user_fuzz", IssuedAt: now, Algorithm: jwa.RS512}),
		"Bearer " + s.mint(f, fakeclerk.Token{Subject: "user_fuzz", IssuedAt: now, KeyID: "ins_unknown"}),
		"Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",
		"Bearer " + parts[0] + "." + parts[1],
		"Bearer ",
		"Basic dXNlcjpwYXNz",
		"",
		"Bearer a.b.c",
	} {
		f.Add(seed)
	}
	h := auth.Middleware(s.v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := auth.IdentityFrom(r.Context())
		_, _ = w.Write([]byte(id.UserID))
	}))

	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodPost, "/stripe/checkout", nil)
		req.Header["Authorization"] = []string{header}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		switch w.Code {
		case http.StatusOK:
			if got, want := w.Body.String(), "user_fuzz"; got != want {
				t.Fatalf("accepted identity %q, want %q", got, want)
			}
		case http.StatusUnauthorized:
			if got := w.Header().Get("WWW-Authenticate"); got != "Bearer" && got != `Bearer error="invalid_token"` {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
			var body problem.Body
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Status != http.StatusUnauthorized {
				t.Fatalf("bad problem body %q: %v", w.Body.String(), err)
			}
			if len(header) > 16 && strings.Contains(w.Body.String(), header) {
				t.Fatal("response echoes the Authorization header")
			}
		default:
			t.Fatalf("status = %d, want 200 or 401", w.Code)
		}
	})
}

// discardWriter is the cheapest http.ResponseWriter, so that benchmarks measure
// the middleware, not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkMiddleware verifies a Clerk token through the middleware, keys
// cached from a JWKS. Compare with BenchmarkRSAVerifyPKCS1v15.
func BenchmarkMiddleware(b *testing.B) {
	s, now := fixedStand(b)
	token := s.mint(b, fakeclerk.Token{Subject: "user_bench", AuthorizedParty: frontend, IssuedAt: now, Email: "b@example.com"})
	var reached int
	h := auth.Middleware(s.v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }))
	req := httptest.NewRequest(http.MethodPost, "/stripe/checkout", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	defer threadCPU(b)()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	if reached == 0 {
		b.Fatal("token refused")
	}
}

// BenchmarkVerify is Verify alone, without the HTTP plumbing.
func BenchmarkVerify(b *testing.B) {
	s, now := fixedStand(b)
	token := s.mint(b, fakeclerk.Token{Subject: "user_bench", AuthorizedParty: frontend, IssuedAt: now})
	ctx := context.Background()
	b.ReportAllocs()
	defer threadCPU(b)()
	for b.Loop() {
		if _, err := s.v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSAVerifyPKCS1v15 is the floor: hashing the signing input and one
// bare RSA verification of the same token with the same key.
func BenchmarkRSAVerifyPKCS1v15(b *testing.B) {
	c, err := fakeclerk.New(issuer)
	if err != nil {
		b.Fatal(err)
	}
	token, err := c.Mint(fakeclerk.Token{Subject: "user_bench", AuthorizedParty: frontend})
	if err != nil {
		b.Fatal(err)
	}
	check := bareRSA(b, c.PublicKey(), token)
	b.ReportAllocs()
	defer threadCPU(b)()
	for b.Loop() {
		check()
	}
}

// BenchmarkVerifyVsRSA measures Verify against the floor in one loop: each op
// is one Verify of a Clerk token and one bare RSA verification of the same
// token with the same key, back to back on one thread (in turn first), each
// timed by the thread's CPU clock. x-rsa is the first over the second: both
// run under the same conditions, so the ratio holds on a busy machine where
// either time alone does not.
func BenchmarkVerifyVsRSA(b *testing.B) {
	if !threadTimeWorks {
		b.Skip("no per-thread CPU clock on this system")
	}
	s, now := fixedStand(b)
	token := s.mint(b, fakeclerk.Token{Subject: "user_bench", AuthorizedParty: frontend, IssuedAt: now})
	check := bareRSA(b, s.clerk.PublicKey(), token)
	ctx := context.Background()
	verify := func() {
		if _, err := s.v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var inVerify, inRSA time.Duration
	timed := func(f func(), into *time.Duration) {
		t := threadTime(b)
		f()
		*into += threadTime(b) - t
	}
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			timed(verify, &inVerify)
			timed(check, &inRSA)
		} else {
			timed(check, &inRSA)
			timed(verify, &inVerify)
		}
	}
	b.ReportMetric(float64(inVerify.Nanoseconds())/float64(b.N), "verify-cpu-ns/op")
	b.ReportMetric(float64(inRSA.Nanoseconds())/float64(b.N), "rsa-cpu-ns/op")
	b.ReportMetric(float64(inVerify)/float64(inRSA), "x-rsa")
}

// bareRSA returns a check of token's signature with nothing but crypto/rsa:
// SHA-256 of the signing input and rsa.VerifyPKCS1v15.
func bareRSA(tb testing.TB, pub *rsa.PublicKey, token string) func() {
	tb.Helper()
	dot := strings.LastIndexByte(token, '.')
	signingInput := []byte(token[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		tb.Fatal(err)
	}
	return func() {
		sum := sha256.Sum256(signingInput)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkMiddlewareRefused is the 401 path: a token with Clerk's header and
// a signature that does not verify, refused through the middleware.
func BenchmarkMiddlewareRefused(b *testing.B) {
	s, now := fixedStand(b)
	valid := s.mint(b, fakeclerk.Token{Subject: "user_bench", AuthorizedParty: frontend, IssuedAt: now})
	other := s.mint(b, fakeclerk.Token{Subject: "user_other", AuthorizedParty: frontend, IssuedAt: now})
	if _, err := s.v.Verify(context.Background(), valid); err != nil {
		b.Fatal(err) // Clerk's header is now remembered
	}
	forged := valid[:strings.LastIndexByte(valid, '.')] + other[strings.LastIndexByte(other, '.'):]
	h := auth.Middleware(s.v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Fatal("forged token accepted") }))
	req := httptest.NewRequest(http.MethodPost, "/stripe/checkout", nil)
	req.Header.Set("Authorization", "Bearer "+forged)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	defer threadCPU(b)()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}
