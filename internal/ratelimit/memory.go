package ratelimit

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxTrackedUsers is the default cap on users a Memory limiter keeps.
const DefaultMaxTrackedUsers = 10_000

// MemoryOptions configures NewMemory.
type MemoryOptions struct {
	// Rate is the limit per user; required.
	Rate Rate
	// MaxTrackedUsers caps the users kept in memory; 0 means
	// DefaultMaxTrackedUsers.
	MaxTrackedUsers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Memory is a token bucket per user, in this process's bounded memory. Entries
// are kept in least-recently-used order. An entry idle long enough for its
// bucket to refill completely is equivalent to a new one, so dropping it
// changes nothing; those are dropped first. Beyond the cap the least recently
// used entry is dropped even if its bucket is not full: that user gets a fresh
// burst, which is the price of a hard memory bound.
type Memory struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration // time for an empty bucket to refill completely
	now   func() time.Time

	mu    sync.Mutex
	order *list.List // of *memoryEntry, most recently used at the front
	users map[string]*list.Element
}

type memoryEntry struct {
	user string
	lim  *rate.Limiter
	seen time.Time
}

// NewMemory returns an in-memory limiter. It fails only on options that make
// no sense (a rate below one per period, a negative cap).
func NewMemory(o MemoryOptions) (*Memory, error) {
	if err := o.Rate.check(); err != nil {
		return nil, err
	}
	if o.MaxTrackedUsers < 0 {
		return nil, fmt.Errorf("ratelimit: MaxTrackedUsers %d is negative", o.MaxTrackedUsers)
	}
	if o.MaxTrackedUsers == 0 {
		o.MaxTrackedUsers = DefaultMaxTrackedUsers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Memory{
		limit: rate.Every(o.Rate.interval()),
		burst: o.Rate.N,
		max:   o.MaxTrackedUsers,
		idle:  o.Rate.Per,
		now:   o.Now,
		order: list.New(),
		users: make(map[string]*list.Element),
	}, nil
}

// Allow takes one request from user's allowance. When none is left it returns
// false and how long until one is (nothing is taken then, so refused requests
// do not push the next one further away).
func (m *Memory) Allow(_ context.Context, user string) (ok bool, retryAfter time.Duration) {
	d := m.wait(user, m.now())
	return d == 0, d
}

// wait takes a token for user at now. It returns 0 when the request may go
// ahead, else how long until a token is available.
func (m *Memory) wait(user string, now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()

	var e *memoryEntry
	if el, ok := m.users[user]; ok {
		e = el.Value.(*memoryEntry)
		m.order.MoveToFront(el)
	} else {
		e = &memoryEntry{user: user, lim: rate.NewLimiter(m.limit, m.burst)}
		m.users[user] = m.order.PushFront(e)
	}
	e.seen = now
	m.evict(now)

	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return m.idle
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
func (m *Memory) evict(now time.Time) {
	for back := m.order.Back(); back != nil; back = m.order.Back() {
		e := back.Value.(*memoryEntry)
		if m.order.Len() <= m.max && now.Sub(e.seen) < m.idle {
			return
		}
		m.order.Remove(back)
		delete(m.users, e.user)
	}
}

// len returns the number of users tracked.
func (m *Memory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
