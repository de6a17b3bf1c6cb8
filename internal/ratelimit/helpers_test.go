package ratelimit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

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

// logRecorder keeps the JSON lines a logger writes.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// text returns everything logged so far.
func (r *logRecorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// lines returns the records logged so far at level.
func (r *logRecorder) lines(t *testing.T, level slog.Level) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(r.text()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec[slog.LevelKey] == level.String() {
			out = append(out, rec)
		}
	}
	return out
}

// redisEnv is a Redis limiter with what a test observes of it.
type redisEnv struct {
	*Redis
	reg   *prometheus.Registry
	clock *clock
	log   *logRecorder
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
	e := &redisEnv{reg: prometheus.NewRegistry(), clock: newClock(), log: &logRecorder{}}
	l, err := NewRedisURL(rawURL, RedisOptions{
		Rate:       r,
		Registerer: e.reg,
		Logger:     e.log.logger(),
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

// eventually polls cond until it holds, failing the test after a generous
// deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
