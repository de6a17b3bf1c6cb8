package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/redistest"
)

// limiter is the seam the service's handlers call; both limiters satisfy it.
type limiter interface {
	Allow(ctx context.Context, user string) (ok bool, retryAfter time.Duration)
}

var (
	_ limiter = (*Memory)(nil)
	_ limiter = (*Redis)(nil)
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jsonLogger logs every level as JSON lines to w, as the service's logger does.
func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// redisEnv is a Redis limiter with what a test observes of it.
type redisEnv struct {
	*Redis
	reg   *prometheus.Registry
	clock *clock
	log   *logtest.Buffer
}

// testBudget replaces Budget in tests that are not about it: under the race
// detector on a busy machine, opening a connection to Redis can take longer
// than 100 ms, and the limiter would then (rightly) let the request through.
const testBudget = 10 * time.Second

// newRedisEnv returns a limiter at rate on the Redis at rawURL, with its own
// registry, clock and log, closed when the test ends. Its budget is
// testBudget; a test of the budget sets it back to Budget.
func newRedisEnv(t testing.TB, rawURL string, r Rate) *redisEnv {
	t.Helper()
	e := &redisEnv{reg: prometheus.NewRegistry(), clock: newClock(), log: &logtest.Buffer{}}
	l, err := NewRedisURL(rawURL, RedisOptions{
		Rate:       r,
		Registerer: e.reg,
		Logger:     jsonLogger(e.log),
		Now:        e.clock.Now,
	})
	if err != nil {
		t.Fatalf("NewRedisURL: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	l.budget = testBudget
	e.Redis = l
	return e
}

// errorCount reads payments_api_rate_limit_errors_total.
func (e *redisEnv) errorCount(t testing.TB) float64 {
	t.Helper()
	return metricstest.Value(t, e.reg, "payments_api_rate_limit_errors_total", nil)
}

// rawClient is a plain go-redis client on srv, for a test to look at or
// change what the limiter stored.
func rawClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// take calls Allow n times for user and fails unless all were allowed.
func take(t *testing.T, l limiter, user string, n int) {
	t.Helper()
	for i := range n {
		if ok, d := l.Allow(context.Background(), user); !ok {
			t.Fatalf("%s request %d of %d refused (retry after %v), want allowed", user, i+1, n, d)
		}
	}
}
