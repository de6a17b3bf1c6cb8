package billing

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// This file is temporary: the in-memory limiter moves to internal/ratelimit,
// which implements Limiter for memory and Redis. Until that lands, wiring and
// tests use this copy.

// DefaultMaxTrackedUsers is the default cap on per-user limiters kept in memory.
const DefaultMaxTrackedUsers = 10_000

// MemoryLimiter is a Limiter that keeps a token bucket per user in this
// process's memory, for at most a fixed number of users.
type MemoryLimiter struct {
	l   *userLimiter
	now func() time.Time
}

var _ Limiter = (*MemoryLimiter)(nil)

// NewMemoryLimiter returns a Limiter that lets each user make burst requests
// at once, then one every 1/limit seconds, tracking at most maxUsers users (0:
// DefaultMaxTrackedUsers). now is the clock; nil means time.Now.
func NewMemoryLimiter(limit rate.Limit, burst, maxUsers int, now func() time.Time) (*MemoryLimiter, error) {
	switch {
	case limit <= 0 || limit == rate.Inf || burst < 1:
		return nil, fmt.Errorf("billing: rate limit %v with burst %d", limit, burst)
	case maxUsers < 0:
		return nil, fmt.Errorf("billing: negative MaxTrackedUsers %d", maxUsers)
	case maxUsers == 0:
		maxUsers = DefaultMaxTrackedUsers
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{l: newUserLimiter(limit, burst, maxUsers), now: now}, nil
}

// Allow takes a token of user's bucket.
func (m *MemoryLimiter) Allow(_ context.Context, user string) (bool, time.Duration) {
	d := m.l.wait(user, m.now())
	return d == 0, d
}

// userLimiter is a token bucket per user, in bounded memory. Entries are kept
// in least-recently-used order. An entry idle long enough for its bucket to
// refill completely is equivalent to a new one, so dropping it changes nothing;
// those are dropped first. Beyond the cap the least recently used entry is
// dropped even if its bucket is not full: that user gets a fresh burst, which
// is the price of a hard memory bound.
type userLimiter struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration // time for an empty bucket to refill completely

	mu    sync.Mutex
	order *list.List // of *limiterEntry, most recently used at the front
	users map[string]*list.Element
}

type limiterEntry struct {
	user string
	lim  *rate.Limiter
	seen time.Time
}

func newUserLimiter(limit rate.Limit, burst, max int) *userLimiter {
	return &userLimiter{
		limit: limit,
		burst: burst,
		max:   max,
		idle:  time.Duration(float64(burst) / float64(limit) * float64(time.Second)),
		order: list.New(),
		users: make(map[string]*list.Element),
	}
}

// wait takes a token for user at now. It returns 0 when the request may go
// ahead, else how long until a token is available (no token is taken then).
func (l *userLimiter) wait(user string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()

	var e *limiterEntry
	if el, ok := l.users[user]; ok {
		e = el.Value.(*limiterEntry)
		l.order.MoveToFront(el)
	} else {
		e = &limiterEntry{user: user, lim: rate.NewLimiter(l.limit, l.burst)}
		l.users[user] = l.order.PushFront(e)
	}
	e.seen = now
	l.evict(now)

	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return l.idle
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// evict drops entries from the least recently used end: all fully refilled
// ones, then as many as needed to respect the cap. Each entry is dropped at
// most once, so the cost is constant per call on average.
func (l *userLimiter) evict(now time.Time) {
	for back := l.order.Back(); back != nil; back = l.order.Back() {
		e := back.Value.(*limiterEntry)
		if l.order.Len() <= l.max && now.Sub(e.seen) < l.idle {
			return
		}
		l.order.Remove(back)
		delete(l.users, e.user)
	}
}

// len returns the number of users tracked.
func (l *userLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}
