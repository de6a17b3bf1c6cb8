package billing

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme/payments-api/internal/auth"
)

// TestRateLimit drives the limiter through the handler with a fake clock. The
// requests are refused before Stripe for their content type, which is enough:
// limiting comes first, so they count.
func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := testOptions(newStripeClient(t, closedPort(t), time.Second, -1))
	o.RateLimit, o.RateBurst = rate.Every(time.Minute/2), 2 // "2/m"
	o.Now = func() time.Time { return now }
	s := newStack(t, o)
	try := func(who auth.Identity) *httpResult {
		w := s.call(&who, "text/plain", "", nil)
		return &httpResult{code: w.Code, retryAfter: w.Header().Get("Retry-After")}
	}

	for i := range 2 {
		if got := try(ada); got.code != http.StatusUnsupportedMediaType {
			t.Fatalf("request %d: status %d, want 415 (within the burst)", i, got.code)
		}
	}
	w := s.call(&ada, "text/plain", "", nil)
	wantProblem(t, w, http.StatusTooManyRequests, "Too many checkout attempts")
	if got, want := w.Header().Get("Retry-After"), "30"; got != want {
		t.Errorf("Retry-After = %q, want %q", got, want)
	}
	if got := try(bob); got.code != http.StatusUnsupportedMediaType {
		t.Errorf("another user: status %d, want 415: users share a bucket", got.code)
	}

	now = now.Add(29*time.Second + 500*time.Millisecond)
	if got := try(ada); got.code != http.StatusTooManyRequests || got.retryAfter != "1" {
		t.Errorf("half a second early: %+v, want 429 with Retry-After 1 (rounded up)", got)
	}
	now = now.Add(500 * time.Millisecond)
	if got := try(ada); got.code != http.StatusUnsupportedMediaType {
		t.Errorf("after 30 s: status %d, want the request let through", got.code)
	}
	if got, want := s.count(t, OutcomeRateLimited), 2.0; got != want {
		t.Errorf("rate_limited = %v, want %v", got, want)
	}
}

type httpResult struct {
	code       int
	retryAfter string
}

func TestRateLimitOff(t *testing.T) {
	s := newStack(t, testOptions(newStripeClient(t, closedPort(t), time.Second, -1)))
	if s.h.limiter != nil {
		t.Fatal("rate.Inf built a limiter")
	}
	for i := range 200 {
		if w := s.call(&ada, "text/plain", "", nil); w.Code != http.StatusUnsupportedMediaType {
			t.Fatalf("request %d: status %d, want 415", i, w.Code)
		}
	}
}

func TestLimiterMemoryBound(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxUsers = 50
	o := testOptions(newStripeClient(t, closedPort(t), time.Second, -1))
	o.RateLimit, o.RateBurst, o.MaxTrackedUsers = rate.Every(6*time.Second), 10, maxUsers // "10/m"
	o.Now = func() time.Time { return now }
	s := newStack(t, o)

	// A crowd of distinct users, all at once: the cap holds.
	for i := range 5000 {
		s.call(&auth.Identity{UserID: fmt.Sprintf("user_%d", i)}, "text/plain", "", nil)
		if n := s.h.limiter.len(); n > maxUsers {
			t.Fatalf("after %d users: %d limiters, want at most %d", i+1, n, maxUsers)
		}
	}
	if got := s.h.limiter.len(); got != maxUsers {
		t.Errorf("limiters = %d, want %d (full)", got, maxUsers)
	}

	// Once their buckets refilled (burst/limit = 60 s), idle users are dropped
	// by the next request.
	now = now.Add(time.Minute)
	s.call(&ada, "text/plain", "", nil)
	if got := s.h.limiter.len(); got != 1 {
		t.Errorf("limiters after everyone idled = %d, want 1", got)
	}
}

func TestLimiterKeepsActiveUsers(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newUserLimiter(rate.Every(time.Minute), 1, 3)
	if d := l.wait("ada", now); d != 0 {
		t.Fatalf("first request waited %v", d)
	}
	// Ada keeps being refused while two other users arrive: she stays limited,
	// because she is more recently used than the cap's victim.
	for i, u := range []string{"u1", "u2", "u3"} {
		now = now.Add(time.Second)
		if d := l.wait("ada", now); d == 0 {
			t.Fatalf("ada let through after %d s", i+1)
		}
		l.wait(u, now)
	}
	if got := l.len(); got != 3 {
		t.Errorf("len = %d, want the cap 3", got)
	}
	if d := l.wait("ada", now); d == 0 {
		t.Error("ada's limiter was evicted while she was the most active user")
	}
}
