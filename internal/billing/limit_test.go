package billing

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/ratelimit"
)

// TestRateLimit drives a "2/m" limit through checkout and the portal with a
// fake clock. The requests are refused before Stripe for their content type,
// which is enough: limiting comes first, so they count.
func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	limiter, err := ratelimit.NewMemory(ratelimit.MemoryOptions{Rate: ratelimit.Rate{N: 2, Per: time.Minute}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), time.Second, -1), limiter: limiter})
	checkout := func(who auth.Identity) *http.Response {
		return s.call(&who, "text/plain", "x", nil).Result()
	}
	portal := func(who auth.Identity) *http.Response {
		return s.openPortal(who, "text/plain", "x").Result()
	}

	// One checkout and one portal session use up the burst of two: the
	// allowance is shared.
	if got := checkout(ada).StatusCode; got != http.StatusUnsupportedMediaType {
		t.Fatalf("checkout within the burst: status %d, want 415", got)
	}
	if got := portal(ada).StatusCode; got != http.StatusUnsupportedMediaType {
		t.Fatalf("portal within the burst: status %d, want 415", got)
	}
	for name, w := range map[string]func() *httptest.ResponseRecorder{
		"checkout": func() *httptest.ResponseRecorder { return s.call(&ada, "text/plain", "x", nil) },
		"portal":   func() *httptest.ResponseRecorder { return s.openPortal(ada, "text/plain", "x") },
	} {
		res := w()
		wantProblem(t, res, http.StatusTooManyRequests, "Too many checkout or billing portal requests")
		if got, want := res.Header().Get("Retry-After"), "30"; got != want {
			t.Errorf("%s: Retry-After = %q, want %q", name, got, want)
		}
	}
	if got := checkout(bob).StatusCode; got != http.StatusUnsupportedMediaType {
		t.Errorf("another user: status %d, want 415: users share a bucket", got)
	}

	now = now.Add(29*time.Second + 500*time.Millisecond)
	if res := checkout(ada); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" {
		t.Errorf("half a second early: %d with Retry-After %q, want 429 with 1 (rounded up)", res.StatusCode, res.Header.Get("Retry-After"))
	}
	now = now.Add(500 * time.Millisecond)
	if got := portal(ada).StatusCode; got != http.StatusUnsupportedMediaType {
		t.Errorf("after 30 s: status %d, want the request let through", got)
	}
	if got, want := s.sessions(t, OutcomeRateLimited), 2.0; got != want {
		t.Errorf("checkout rate_limited = %v, want %v", got, want)
	}
	if got, want := s.count(t, "payments_api_portal_sessions_total", OutcomeRateLimited), 1.0; got != want {
		t.Errorf("portal rate_limited = %v, want %v", got, want)
	}
}

// TestSubscriptionNotLimited proves GET /stripe/subscription spends none of
// the allowance: a page may ask on every load.
func TestSubscriptionNotLimited(t *testing.T) {
	limiter, err := ratelimit.NewMemory(ratelimit.MemoryOptions{Rate: ratelimit.Rate{N: 1, Per: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	// A store that knows nobody and a Stripe that cannot be reached: every
	// answer is 502, never 429.
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), time.Second, -1), limiter: limiter})
	for range 3 {
		if got := s.state(ada).Code; got != http.StatusBadGateway {
			t.Fatalf("status %d, want 502 (not limited)", got)
		}
	}
	if got := s.call(&ada, "text/plain", "x", nil).Code; got != http.StatusUnsupportedMediaType {
		t.Errorf("checkout after subscription reads: status %d, want 415: the reads spent the allowance", got)
	}
}
