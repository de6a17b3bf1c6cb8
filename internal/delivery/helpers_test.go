package delivery_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/deliverytest"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/pgtest"
	"github.com/acme/payments-api/internal/polltest"
	"github.com/acme/payments-api/internal/postgres"
)

func TestMain(m *testing.M) { pgtest.Run(m) }

const nextSecret = "whsec_test_nextjs_fedcba9876543210"

// migrated is a database with River's and our schema, copied per test.
var migrated = pgtest.NewTemplate("delivery_migrated", deliverytest.Migrate)

// waitFor bounds every wait of these tests: generous, for a loaded machine.
const waitFor = 60 * time.Second

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	polltest.Within(t, waitFor, what, cond)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// next is the Next.js stand-in on a loopback port.
type next struct {
	*fakenext.Receiver
	URL *url.URL // its webhook route
}

func newNext(t *testing.T, opts ...fakenext.Option) *next {
	t.Helper()
	rc := fakenext.New(nextSecret, opts...)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/api/payments/webhook") // httptest's URL always parses
	return &next{Receiver: rc, URL: u}
}

// processed is how many distinct events Next.js acted upon.
func (n *next) processed() int { return len(n.Processed()) }

// env is one replica's queue with what it talks to.
type env struct {
	q    *delivery.Queue
	pool *pgxpool.Pool
	reg  *prometheus.Registry
	logs *logtest.Buffer
}

// replica builds and starts a queue on the database at url, delivering to n.
// Zero options take the package defaults, except that retries are quick (a
// test sets RetryDelay to nil-equivalent slow values where it matters).
func replica(t *testing.T, url string, n *next, opts delivery.Options) *env {
	t.Helper()
	e := newEnv(t, url, n, opts)
	if err := e.q.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.q.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

// newEnv builds a queue without starting it.
func newEnv(t *testing.T, url string, n *next, opts delivery.Options) *env {
	t.Helper()
	pool := openPool(t, url)
	e := &env{pool: pool, reg: prometheus.NewRegistry(), logs: &logtest.Buffer{}}
	if n != nil && opts.Forwarder == nil {
		opts.Forwarder = forwarder(t, n, 5*time.Second)
	}
	if opts.RetryDelay == nil {
		opts.RetryDelay = func(int) time.Duration { return 10 * time.Millisecond }
	}
	if opts.MetricsInterval == 0 {
		opts.MetricsInterval = 50 * time.Millisecond
	}
	opts.Registerer = e.reg
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	q, err := delivery.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	return e
}

// openPool opens a pool on url, closed when tb ends.
func openPool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	pool, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// forwarder is the real forwarder to n, with the given timeout per attempt.
func forwarder(t *testing.T, n *next, timeout time.Duration) *forward.Forwarder {
	t.Helper()
	fwd, err := forward.New(forward.Options{URL: n.URL, Secret: nextSecret, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.CloseIdleConnections)
	return fwd
}

// event returns a Stripe event body of the given id and type.
func event(id, typ string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","type":%q,"data":{"object":{"object":"checkout.session","metadata":{"note":"spaced  out"}}}}`, id, typ)
}

// enqueue queues an event and fails the test on an error.
func (e *env) enqueue(t *testing.T, id string) bool {
	t.Helper()
	dup, err := e.q.Enqueue(testCtx(t), id, "checkout.session.completed", event(id, "checkout.session.completed"))
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", id, err)
	}
	return dup
}

// state returns the River state of the event's job, "" when there is none.
func (e *env) state(t *testing.T, id string) string {
	t.Helper()
	evs := e.list(t, delivery.ListParams{Limit: delivery.MaxListLimit})
	for _, ev := range evs {
		if ev.EventID == id {
			return ev.State
		}
	}
	return ""
}

func (e *env) list(t *testing.T, p delivery.ListParams) []delivery.Event {
	t.Helper()
	evs, err := e.q.List(testCtx(t), p)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return evs
}

// jobs counts the queue's jobs for an event id, straight from River's table.
func (e *env) jobs(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(testCtx(t), "SELECT count(*) FROM river_job WHERE args->>'event_id' = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// logLines returns the log lines whose message contains msg.
func (e *env) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range e.logs.Records(t) {
		if s, _ := line["msg"].(string); strings.Contains(s, msg) {
			out = append(out, line)
		}
	}
	return out
}
