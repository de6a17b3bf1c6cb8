package billing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestMemoryLimiterBound(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxUsers = 50
	l, err := NewMemoryLimiter(rate.Every(6*time.Second), 10, maxUsers, func() time.Time { return now }) // "10/m"
	if err != nil {
		t.Fatal(err)
	}
	// A crowd of distinct users, all at once: the cap holds.
	for i := range 5000 {
		l.Allow(context.Background(), fmt.Sprintf("user_%d", i))
		if n := l.l.len(); n > maxUsers {
			t.Fatalf("after %d users: %d limiters, want at most %d", i+1, n, maxUsers)
		}
	}
	if got := l.l.len(); got != maxUsers {
		t.Errorf("limiters = %d, want %d (full)", got, maxUsers)
	}
	// Once their buckets refilled (burst/limit = 60 s), idle users are dropped
	// by the next request.
	now = now.Add(time.Minute)
	l.Allow(context.Background(), "ada")
	if got := l.l.len(); got != 1 {
		t.Errorf("limiters after everyone idled = %d, want 1", got)
	}
}

func TestMemoryLimiterKeepsActiveUsers(t *testing.T) {
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

func TestNewMemoryLimiterRefused(t *testing.T) {
	for _, tt := range []struct {
		limit     rate.Limit
		burst, mx int
	}{
		{0, 10, 0}, {rate.Inf, 10, 0}, {1, 0, 0}, {1, 1, -1},
	} {
		if _, err := NewMemoryLimiter(tt.limit, tt.burst, tt.mx, nil); err == nil {
			t.Errorf("NewMemoryLimiter(%v, %d, %d) accepted", tt.limit, tt.burst, tt.mx)
		}
	}
}
