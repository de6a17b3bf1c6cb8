package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/deliverytest"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/pgtest"
)

// hangFirst makes the receiver's first request hang until it is cancelled.
func hangFirst(i int) time.Duration {
	if i == 1 {
		return time.Hour
	}
	return 0
}

// TestStopLetsInFlightFinish: a delivery in flight when Stop is called
// completes within the shutdown timeout, and Stop waits for it.
func TestStopLetsInFlightFinish(t *testing.T) {
	t.Parallel()
	n := newNext(t, fakenext.WithDelay(func(i int) time.Duration { return 500 * time.Millisecond }))
	e := newEnv(t, migrated.Database(t), n, delivery.Options{ShutdownTimeout: 30 * time.Second})
	if err := e.q.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	e.enqueue(t, "evt_inflight")
	eventually(t, "in flight", func() bool { return e.state(t, "evt_inflight") == "running" })
	if err := e.q.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := e.state(t, "evt_inflight"); got != "completed" {
		t.Errorf("after Stop the event is %q, want completed", got)
	}
	if got := n.processed(); got != 1 {
		t.Errorf("processed = %d, want 1", got)
	}
}

// TestStopCutsAndRequeues: a delivery still running at the shutdown timeout
// is cut and put back without using an attempt; nothing new starts once Stop
// began; another replica delivers both events afterwards.
func TestStopCutsAndRequeues(t *testing.T) {
	t.Parallel()
	n := newNext(t, fakenext.WithDelay(hangFirst))
	url := migrated.Database(t)
	first := newEnv(t, url, n, delivery.Options{Workers: 1, ShutdownTimeout: 300 * time.Millisecond})
	if err := first.q.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	first.enqueue(t, "evt_cut")
	eventually(t, "in flight", func() bool { return first.state(t, "evt_cut") == "running" })
	first.enqueue(t, "evt_waiting") // the only worker is busy

	if err := first.q.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	evs := map[string]delivery.Event{}
	for _, ev := range first.list(t, delivery.ListParams{}) {
		evs[ev.EventID] = ev
	}
	if ev := evs["evt_cut"]; ev.State != "available" || ev.Attempts != 0 {
		t.Errorf("cut event = %+v, want available with its attempt not counted", ev)
	}
	if ev := evs["evt_waiting"]; ev.State != "available" {
		t.Errorf("waiting event = %+v, want still available", ev)
	}
	if got := n.Requests(); got != 1 {
		t.Errorf("Next.js got %d requests, want only the cut one", got)
	}
	for _, o := range []string{"retry", "discarded", "delivered"} {
		if got := metricstest.Value(t, first.reg, "payments_api_delivery_attempts_total", map[string]string{"outcome": o}); got != 0 {
			t.Errorf("attempts{%s} = %v, want 0: a cut delivery is not a failure", o, got)
		}
	}
	if got := len(first.logLines(t, "delivery interrupted")); got != 1 {
		t.Errorf("%d 'interrupted' log lines, want 1", got)
	}

	second := replica(t, url, n, delivery.Options{})
	eventually(t, "both delivered by the next replica", func() bool {
		return second.state(t, "evt_cut") == "completed" && second.state(t, "evt_waiting") == "completed"
	})
}

// TestRescueDeadReplica: a job left running by a replica that died (what
// SIGKILL leaves: state running, attempted long ago, by a client that is
// gone) is rescued by a live replica and delivered.
func TestRescueDeadReplica(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	n.Refuse(http.StatusServiceUnavailable, 0)
	e := replica(t, migrated.Database(t), n, delivery.Options{
		// The first failure waits long, so that the job sits still while the
		// test makes it look abandoned; the rescue's retry comes at once.
		RetryDelay: func(n int) time.Duration {
			if n == 1 {
				return time.Hour
			}
			return 10 * time.Millisecond
		},
	})
	e.enqueue(t, "evt_orphan")
	eventually(t, "first attempt failed", func() bool { return e.state(t, "evt_orphan") == "retryable" })
	n.Accept()
	_, err := e.pool.Exec(testCtx(t), `UPDATE river_job SET state = 'running', attempt = 2,
		attempted_at = now() - interval '10 minutes', attempted_by = '{dead-replica}'
		WHERE args->>'event_id' = 'evt_orphan'`)
	if err != nil {
		t.Fatal(err)
	}
	// River's rescuer runs every 30 s on the leader.
	eventually(t, "rescued and delivered", func() bool { return e.state(t, "evt_orphan") == "completed" })
	if got := n.processed(); got != 1 {
		t.Errorf("processed = %d, want 1", got)
	}
}

// TestRescueDeadReplicaLastAttempt: a replica that died during an event's
// last attempt did not fail it: River's rescuer discards such a job without
// a worker seeing it, and the queue gives it back its attempt, so that a live
// replica delivers it.
func TestRescueDeadReplicaLastAttempt(t *testing.T) {
	t.Parallel()
	url := migrated.Database(t)
	e := stopped(t, url, "evt_last")
	_, err := e.pool.Exec(testCtx(t), `UPDATE river_job SET state = 'running', attempt = max_attempts,
		attempted_at = now() - interval '10 minutes', attempted_by = '{dead-replica}', finalized_at = NULL
		WHERE args->>'event_id' = 'evt_last'`)
	if err != nil {
		t.Fatal(err)
	}
	n := newNext(t)
	live := replica(t, url, n, delivery.Options{})
	eventually(t, "rescued and delivered", func() bool { return live.state(t, "evt_last") == "completed" })
	if got := n.processed(); got != 1 {
		t.Errorf("processed = %d, want 1", got)
	}
	if got := len(live.logLines(t, "event discarded")); got != 0 {
		t.Errorf("%d discard lines for an event that was delivered", got)
	}
	// The line is written once the requeue is committed, which a fast delivery
	// can beat: wait for it.
	const requeued = "a replica died during the event's last delivery attempt; queued again with one more attempt"
	eventually(t, "the requeue is logged", func() bool { return len(live.logLines(t, requeued)) > 0 })
	if lines := live.logLines(t, requeued); len(lines) != 1 || lines[0]["event_id"] != "evt_last" {
		t.Errorf("requeue log lines = %v, want one naming evt_last", lines)
	}
}

// migratedCluster starts a cluster of the test's own, to kill and restart,
// and migrates its postgres database, whose URL it returns.
func migratedCluster(t *testing.T) (*pgtest.Cluster, string) {
	t.Helper()
	c := pgtest.Start(t)
	url := c.URL("postgres")
	if err := deliverytest.Migrate(testCtx(t), url); err != nil {
		t.Fatal(err)
	}
	return c, url
}

// TestDatabaseRestartMidTraffic: events keep arriving while the database is
// killed and restarted. Every event Enqueue acknowledged is delivered once the
// database is back; those refused meanwhile were never acknowledged (Stripe
// redelivers them).
func TestDatabaseRestartMidTraffic(t *testing.T) {
	t.Parallel()
	c, url := migratedCluster(t)
	// Next.js takes 50 ms an event and two workers deliver: events are still
	// pending, some in flight, when the database dies.
	n := newNext(t, fakenext.WithDelay(func(int) time.Duration { return 50 * time.Millisecond }))
	e := replica(t, url, n, delivery.Options{Workers: 2})

	var (
		mu    sync.Mutex
		acked []string
		i     int
	)
	send := func(count int) {
		for range count {
			i++
			id := fmt.Sprintf("evt_traffic_%03d", i)
			ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
			_, err := e.q.Enqueue(ctx, id, "invoice.paid", event(id, "invoice.paid"))
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}
	}
	send(20)
	c.Kill(t)
	if got := n.processed(); got >= 20 {
		t.Fatalf("all %d events were delivered before the database died; the test proves nothing", got)
	}
	send(5) // refused: not acknowledged
	c.Restart(t)
	back := time.Now()
	send(20)

	if len(acked) < 40 {
		t.Fatalf("only %d of 45 events acknowledged; the 40 sent while the database was up should be", len(acked))
	}
	// What was pending is delivered within FORWARD_TIMEOUT (5 s here) + 2 min of
	// the database answering again.
	deadline := back.Add(5*time.Second + 2*time.Minute)
	for {
		got := map[string]bool{}
		for _, d := range n.Processed() {
			got[d.ID] = true
		}
		missing := 0
		for _, id := range acked {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged events not delivered 2 min after the database came back", missing)
		}
		time.Sleep(100 * time.Millisecond) // polling the receiver
	}
}

// TestEnqueueDatabaseDown: with the database gone, Enqueue fails within the
// caller's bound instead of hanging the webhook.
func TestEnqueueDatabaseDown(t *testing.T) {
	t.Parallel()
	c, url := migratedCluster(t)
	e := replica(t, url, newNext(t), delivery.Options{})
	c.Kill(t)
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.q.Enqueue(ctx, "evt_down", "invoice.paid", event("evt_down", "invoice.paid"))
	if err == nil {
		t.Fatal("Enqueue succeeded without a database")
	}
	if errors.Is(err, delivery.ErrNotStarted) {
		t.Errorf("Enqueue = %v, want a database error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Enqueue took %v, want within the 5 s bound", d)
	}
	c.Restart(t)
}
