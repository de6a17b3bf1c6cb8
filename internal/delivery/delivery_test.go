package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/requestlog"
)

// TestDeliversOnce queues an event and sees it delivered: once, byte for
// byte, signed for Next.js, with the id of the request that queued it.
func TestDeliversOnce(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	e := replica(t, migrated.Database(t), n, delivery.Options{})

	body := event("evt_once", "checkout.session.completed")
	ctx, _ := requestlog.New(testCtx(t), "req-queued-1")
	dup, err := e.q.Enqueue(ctx, "evt_once", "checkout.session.completed", body)
	if err != nil || dup {
		t.Fatalf("Enqueue = %v, %v; want not a duplicate", dup, err)
	}
	eventually(t, "the event is delivered", func() bool { return e.state(t, "evt_once") == "completed" })

	got := n.Deliveries()
	if len(got) != 1 {
		t.Fatalf("Next.js got %d requests, want 1", len(got))
	}
	d := got[0]
	if !bytes.Equal(d.Body, body) {
		t.Errorf("body = %q, want %q byte for byte", d.Body, body)
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(d.Body, d.Header.Get("Stripe-Signature"), nextSecret); err != nil {
		t.Errorf("signature: %v", err)
	}
	for k, want := range map[string]string{"Idempotency-Key": "evt_once", "X-Request-ID": "req-queued-1"} {
		if v := d.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if got := metricstest.Value(t, e.reg, "payments_api_delivery_attempts_total", map[string]string{"outcome": "delivered"}); got != 1 {
		t.Errorf("attempts{delivered} = %v, want 1", got)
	}
	lines := e.logLines(t, "event delivered")
	if len(lines) != 1 || lines[0]["event_id"] != "evt_once" || lines[0]["request_id"] != "req-queued-1" {
		t.Errorf("delivered log lines = %v, want one naming the event and request", lines)
	}
}

// TestDuplicates: a redelivery of an event queued, in flight or delivered is
// a duplicate and is not delivered again; one of a discarded or cancelled
// event queues the same job again and is not a duplicate.
func TestDuplicates(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	n := newNext(t, fakenext.WithDelay(func(i int) time.Duration {
		if i == 1 {
			<-release // the first delivery hangs until released
		}
		return 0
	}))
	e := replica(t, migrated.Database(t), n, delivery.Options{Workers: 1, MaxAttempts: 1})

	if e.enqueue(t, "evt_running") {
		t.Fatal("first Enqueue is a duplicate")
	}
	eventually(t, "evt_running is in flight", func() bool { return e.state(t, "evt_running") == "running" })
	if !e.enqueue(t, "evt_running") {
		t.Error("Enqueue of an event in flight is not a duplicate")
	}
	// One worker, busy: the next event waits in the queue.
	e.enqueue(t, "evt_available")
	if got := e.state(t, "evt_available"); got != "available" {
		t.Fatalf("evt_available is %q, want available", got)
	}
	if !e.enqueue(t, "evt_available") {
		t.Error("Enqueue of a queued event is not a duplicate")
	}
	close(release)
	eventually(t, "both delivered", func() bool {
		return e.state(t, "evt_running") == "completed" && e.state(t, "evt_available") == "completed"
	})
	if !e.enqueue(t, "evt_running") {
		t.Error("Enqueue of a delivered event is not a duplicate")
	}

	// Discarded: one attempt allowed, Next.js refusing.
	n.Refuse(http.StatusServiceUnavailable, 0)
	e.enqueue(t, "evt_dead")
	eventually(t, "evt_dead is discarded", func() bool { return e.state(t, "evt_dead") == "discarded" })
	n.Accept()
	if e.enqueue(t, "evt_dead") {
		t.Error("Enqueue of a discarded event is a duplicate")
	}
	eventually(t, "evt_dead is delivered after all", func() bool { return e.state(t, "evt_dead") == "completed" })

	// Cancelled (by an operator, in River UI).
	e.enqueue(t, "evt_cancelled")
	eventually(t, "evt_cancelled is delivered", func() bool { return e.state(t, "evt_cancelled") == "completed" })
	if _, err := e.pool.Exec(testCtx(t), "UPDATE river_job SET state = 'cancelled' WHERE args->>'event_id' = 'evt_cancelled'"); err != nil {
		t.Fatal(err)
	}
	if e.enqueue(t, "evt_cancelled") {
		t.Error("Enqueue of a cancelled event is a duplicate")
	}
	eventually(t, "evt_cancelled is delivered again", func() bool { return e.state(t, "evt_cancelled") == "completed" })

	for _, id := range []string{"evt_running", "evt_available", "evt_dead", "evt_cancelled"} {
		if got := e.jobs(t, id); got != 1 {
			t.Errorf("%s has %d jobs, want 1 (the same record requeued)", id, got)
		}
	}
	// Next.js acted on each event once; only the cancelled one was sent twice
	// (it was delivered before the operator cancelled it).
	perID := map[string]int{}
	for _, d := range n.Deliveries() {
		if d.Accepted() {
			perID[d.ID]++
		}
	}
	want := map[string]int{"evt_running": 1, "evt_available": 1, "evt_dead": 1, "evt_cancelled": 2}
	for id, w := range want {
		if perID[id] != w {
			t.Errorf("%s accepted %d times, want %d", id, perID[id], w)
		}
	}
}

// TestSameEventAtOnce: two replicas (two clients, two pools) receive the same
// event many times at once; one Enqueue queues it, the others are duplicates,
// and Next.js gets it once.
func TestSameEventAtOnce(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	url := migrated.Database(t)
	replicas := []*env{replica(t, url, n, delivery.Options{}), replica(t, url, n, delivery.Options{})}

	const perReplica = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		queued  int
		errs    []error
		started = make(chan struct{})
	)
	for _, r := range replicas {
		for range perReplica {
			wg.Go(func() {
				<-started
				dup, err := r.q.Enqueue(testCtx(t), "evt_race", "invoice.paid", event("evt_race", "invoice.paid"))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if !dup {
					queued++
				}
			})
		}
	}
	close(started)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Enqueue errors: %v", errs)
	}
	if queued != 1 {
		t.Errorf("%d Enqueues queued the event, want 1", queued)
	}
	eventually(t, "delivered", func() bool { return replicas[0].state(t, "evt_race") == "completed" })
	if got := replicas[0].jobs(t, "evt_race"); got != 1 {
		t.Errorf("jobs = %d, want 1", got)
	}
	if got := len(n.Deliveries()); got != 1 {
		t.Errorf("Next.js got %d requests, want 1", got)
	}
}

// TestNextDownThenBack: Next.js refuses many attempts in a row (every kind of
// refusal: 5xx, 4xx, a redirect, a hang past the forward timeout, a closed
// port), then takes the event, which is delivered once, each failure counted.
func TestNextDownThenBack(t *testing.T) {
	t.Parallel()
	answers := []int{503, 500, 404, 401, 301, 429, 0 /* hang */, 502}
	n := newNext(t,
		fakenext.WithRespond(func(i int) int {
			if i <= len(answers) && answers[i-1] != 0 {
				return answers[i-1]
			}
			return http.StatusOK
		}),
		fakenext.WithDelay(func(i int) time.Duration {
			if i <= len(answers) && answers[i-1] == 0 {
				return time.Hour // past the forward timeout: the request is cut
			}
			return 0
		}))
	// A short forward timeout, for the hang.
	e := replica(t, migrated.Database(t), n, delivery.Options{Forwarder: forwarder(t, n, 300*time.Millisecond)})

	e.enqueue(t, "evt_patient")
	eventually(t, "delivered", func() bool { return e.state(t, "evt_patient") == "completed" })
	evs := e.list(t, delivery.ListParams{})
	if len(evs) != 1 || evs[0].Attempts != len(answers)+1 {
		t.Fatalf("events = %+v, want one with %d attempts", evs, len(answers)+1)
	}
	if got := n.processed(); got != 1 {
		t.Errorf("Next.js processed %d events, want 1", got)
	}
	for outcome, want := range map[string]float64{"retry": float64(len(answers)), "delivered": 1, "discarded": 0} {
		if got := metricstest.Value(t, e.reg, "payments_api_delivery_attempts_total", map[string]string{"outcome": outcome}); got != want {
			t.Errorf("attempts{%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := len(e.logLines(t, "will retry")); got != len(answers) {
		t.Errorf("%d 'will retry' log lines, want %d", got, len(answers))
	}
}

// TestDiscardAndReplay: after its last attempt an event is discarded, logged
// at error and counted; events list shows it with its last error; events
// retry --discarded replays it, and by id any event, whatever its state.
func TestDiscardAndReplay(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	n.Refuse(http.StatusNotFound, 0)
	e := replica(t, migrated.Database(t), n, delivery.Options{MaxAttempts: 3})

	e.enqueue(t, "evt_lost")
	eventually(t, "discarded", func() bool { return e.state(t, "evt_lost") == "discarded" })
	if got := metricstest.Value(t, e.reg, "payments_api_delivery_attempts_total", map[string]string{"outcome": "discarded"}); got != 1 {
		t.Errorf("attempts{discarded} = %v, want 1", got)
	}
	lines := e.logLines(t, "event discarded")
	if len(lines) != 1 {
		t.Fatalf("discard log lines = %v, want 1", lines)
	}
	l := lines[0]
	if l["level"] != "ERROR" || l["event_id"] != "evt_lost" || l["event_type"] != "checkout.session.completed" ||
		l["attempts"] != float64(3) || !bytes.Contains([]byte(l["error"].(string)), []byte("status 404")) {
		t.Errorf("discard log line = %v, want error level with id, type, 3 attempts and the last error", l)
	}
	dead := e.list(t, delivery.ListParams{States: []string{"discarded"}})
	if len(dead) != 1 || dead[0].Attempts != 3 || dead[0].NextAttemptAt != nil ||
		!bytes.Contains([]byte(dead[0].LastError), []byte("status 404")) {
		t.Fatalf("discarded events = %+v, want evt_lost with 3 attempts and its error", dead)
	}

	n.Accept()
	res, err := e.q.RetryDiscarded(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].String() != "evt_lost queued (was discarded)" {
		t.Fatalf("RetryDiscarded = %v", res)
	}
	eventually(t, "replayed", func() bool { return e.state(t, "evt_lost") == "completed" })

	res, err = e.q.Retry(testCtx(t), []string{"evt_lost", "evt_never"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"evt_lost queued (was completed)", "evt_never not found"}
	for i, r := range res {
		if r.String() != want[i] {
			t.Errorf("Retry result %d = %q, want %q", i, r, want[i])
		}
	}
	eventually(t, "delivered again", func() bool { return len(n.Processed()) == 1 && len(n.Deliveries()) == 5 })
	if res, err := e.q.RetryDiscarded(testCtx(t)); err != nil || len(res) != 0 {
		t.Errorf("RetryDiscarded with none discarded = %v, %v", res, err)
	}
}

// TestEnqueueRefused: before Start, Enqueue fails (the webhook answers 503
// and Stripe redelivers); after Stop it still takes events, for other
// replicas to deliver, until the pool is closed.
func TestEnqueueRefused(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	url := migrated.Database(t)
	e := newEnv(t, url, n, delivery.Options{})
	if _, err := e.q.Enqueue(testCtx(t), "evt_1", "invoice.paid", event("evt_1", "invoice.paid")); !errors.Is(err, delivery.ErrNotStarted) {
		t.Errorf("Enqueue before Start = %v, want ErrNotStarted", err)
	}
	if err := e.q.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Stop(testCtx(t)); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	if dup := e.enqueue(t, "evt_after_stop"); dup {
		t.Error("Enqueue after Stop is a duplicate")
	}
	if got := e.state(t, "evt_after_stop"); got != "available" {
		t.Errorf("an event queued after Stop is %q, want available for another replica", got)
	}
	other := replica(t, url, n, delivery.Options{})
	eventually(t, "another replica delivers it", func() bool { return other.state(t, "evt_after_stop") == "completed" })

	e.pool.Close()
	if _, err := e.q.Enqueue(testCtx(t), "evt_2", "invoice.paid", event("evt_2", "invoice.paid")); err == nil {
		t.Error("Enqueue with the pool closed succeeded")
	}

	// A queue without a forwarder (the events subcommands) does not start.
	if err := newEnv(t, migrated.Database(t), nil, delivery.Options{}).q.Start(testCtx(t)); err == nil {
		t.Error("Start without a Forwarder succeeded")
	}
}

// TestStartWithoutDatabase: Start fails, quickly, while the database does not
// answer; the caller retries.
func TestStartWithoutDatabase(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	e := newEnv(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", n, delivery.Options{})
	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	if err := e.q.Start(ctx); err == nil {
		t.Fatal("Start without a database succeeded")
	}
	if _, err := e.q.Enqueue(ctx, "evt_1", "invoice.paid", event("evt_1", "invoice.paid")); !errors.Is(err, delivery.ErrNotStarted) {
		t.Errorf("Enqueue = %v, want ErrNotStarted", err)
	}
}

// TestTraceparentStored keeps the queueing request's trace context with the
// event.
func TestTraceparentStored(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e := replica(t, migrated.Database(t), n, delivery.Options{
		Traceparent: func(context.Context) string { return tp },
	})
	e.enqueue(t, "evt_traced")
	var got string
	if err := e.pool.QueryRow(testCtx(t), "SELECT args->>'traceparent' FROM river_job WHERE args->>'event_id' = 'evt_traced'").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != tp {
		t.Errorf("stored traceparent = %q, want %q", got, tp)
	}
}
