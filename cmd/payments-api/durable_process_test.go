package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/pgtest"
	"github.com/acme/payments-api/internal/polltest"
)

// The fault tests of durable delivery run the built binary as separate
// processes, one per replica, so that a replica can be killed outright.

// durableStand is what the replicas share: the database, Clerk and Next.js.
type durableStand struct {
	bin   string
	dsn   string
	next  *fakenext.Receiver
	env   map[string]string
	clerk *fakeclerk.Clerk
}

func newDurableStand(t *testing.T, dsn string, nextOpts ...fakenext.Option) *durableStand {
	t.Helper()
	clerkSrv := httptest.NewUnstartedServer(nil)
	clerk, err := fakeclerk.New("http://" + clerkSrv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	clerkSrv.Config.Handler = clerk
	clerkSrv.Start()
	t.Cleanup(clerkSrv.Close)
	next := fakenext.New(testNextSecret, nextOpts...)
	nextSrv := httptest.NewServer(next)
	t.Cleanup(nextSrv.Close)
	stripe := httptest.NewServer(http.NotFoundHandler()) // no Stripe call is made
	t.Cleanup(stripe.Close)
	return &durableStand{
		bin:   buildBinary(t),
		dsn:   dsn,
		next:  next,
		clerk: clerk,
		env: map[string]string{
			"LISTEN_ADDR":           "127.0.0.1:0",
			"METRICS_ADDR":          "127.0.0.1:0",
			"FRONTEND_URL":          testOrigin,
			"CLERK_ISSUER":          clerkSrv.URL,
			"STRIPE_SECRET_KEY":     "sk_test_durable123",
			"STRIPE_WEBHOOK_SECRET": testWebhookSecret,
			"STRIPE_API_URL":        stripe.URL,
			"STRIPE_PRICE_IDS":      "price_durable",
			"NEXTJS_WEBHOOK_URL":    nextSrv.URL + "/api/payments/webhook",
			"NEXTJS_WEBHOOK_SECRET": testNextSecret,
			"FORWARD_TIMEOUT":       "2s",
			"SHUTDOWN_TIMEOUT":      "3s",
			"DATABASE_URL":          dsn,
		},
	}
}

// replicaProcess is one payments-api process.
type replicaProcess struct {
	cmd    *exec.Cmd
	stdout *logtest.Buffer
	stderr *logtest.Buffer
	url    string
	// metricsURL is the base URL of the replica's METRICS_ADDR listener.
	metricsURL string
	done       chan struct{}
	err        error // Wait's result, once done is closed
}

// start runs a replica with the stand's environment plus extra, and waits
// until it listens.
func (ds *durableStand) start(t *testing.T, extra map[string]string) *replicaProcess {
	t.Helper()
	r := ds.launch(t, extra)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if line := r.stdout.First(t, "msg", "listening"); line != nil {
			r.url = "http://" + line["addr"].(string)
			r.metricsURL = "http://" + line["metrics_addr"].(string)
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("replica exited before listening: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not listen within 30 s:\n%s", r.stdout)
		}
	}
}

// launch starts a replica process without waiting for it.
func (ds *durableStand) launch(t *testing.T, extra map[string]string) *replicaProcess {
	t.Helper()
	cmd := exec.Command(ds.bin)
	for k, v := range ds.env {
		if _, ok := extra[k]; !ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	r := &replicaProcess{cmd: cmd, stdout: &logtest.Buffer{}, stderr: &logtest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("replica %d stdout:\n%s\nstderr:\n%s", cmd.Process.Pid, r.stdout, r.stderr)
		}
	})
	return r
}

// wait waits for the replica to exit and returns its exit code.
func (r *replicaProcess) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return exitCode(r.err)
	case <-time.After(limit):
		t.Fatalf("replica still running after %v", limit)
		return -1
	}
}

// webhookAnswer is the JSON a webhook answers with 200.
type webhookAnswer struct {
	Received, Queued, Duplicate, Forwarded bool
}

// post sends a signed event to the replica and returns its status and answer.
func (r *replicaProcess) post(t *testing.T, id string) (int, webhookAnswer, http.Header) {
	t.Helper()
	code, raw, h := r.postRaw(t, id)
	var a webhookAnswer
	if code == http.StatusOK {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("webhook answer %q: %v", raw, err)
		}
	}
	return code, a, h
}

// postRaw sends a signed event to the replica and returns its status, body
// and headers as they came.
func (r *replicaProcess) postRaw(t *testing.T, id string) (int, []byte, http.Header) {
	t.Helper()
	body, sig := signedEvent(t, id, "checkout.session.completed")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := postWebhook(ctx, r.url, body, sig)
	if err != nil {
		t.Fatalf("POST /stripe/webhook %s: %v", id, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp.Header
}

// accepted is how many times Next.js accepted the event (2xx).
func accepted(n *fakenext.Receiver, id string) int {
	k := 0
	for _, d := range n.Deliveries() {
		if d.ID == id && d.Accepted() {
			k++
		}
	}
	return k
}

// requested is how many requests for the event reached Next.js.
func requested(n *fakenext.Receiver, id string) int {
	k := 0
	for _, d := range n.Deliveries() {
		if d.ID == id {
			k++
		}
	}
	return k
}

// hangFirst makes Next.js' first request hang until the caller goes away.
func hangFirst(i int) time.Duration {
	if i == 1 {
		return time.Hour
	}
	return 0
}

// eventsCommand runs `payments-api events …` with DATABASE_URL only.
func (ds *durableStand) eventsCommand(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(ds.bin, append([]string{"events"}, args...)...)
	cmd.Env = []string{"DATABASE_URL=" + ds.dsn}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if code := exitCode(err); code != 0 {
		return code, out.String() + errOut.String()
	}
	return 0, out.String()
}

// TestDurableReplicaKilledMidDelivery: a replica SIGKILLed while its
// delivery hangs; another replica delivers the event within FORWARD_TIMEOUT +
// 2 minutes, with production timings (River's rescuer, its leader election).
func TestDurableReplicaKilledMidDelivery(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t), fakenext.WithDelay(hangFirst))
	a := ds.start(t, nil)
	if code, ans, _ := a.post(t, "evt_orphaned"); code != http.StatusOK || !ans.Queued {
		t.Fatalf("webhook = %d %+v, want 200 queued", code, ans)
	}
	polltest.Within(t, time.Minute, "the delivery to hang", func() bool { return ds.next.Requests() == 1 })
	b := ds.start(t, nil)
	_ = b

	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	a.wait(t, 10*time.Second)
	budget := 2*time.Second + 2*time.Minute // FORWARD_TIMEOUT + 2 min
	polltest.Within(t, budget, "another replica delivers it", func() bool { return accepted(ds.next, "evt_orphaned") == 1 })
	t.Logf("delivered %v after the SIGKILL", time.Since(killed).Round(time.Second))
}

// TestDurableSIGTERMMidDelivery: on SIGTERM a replica starts no new delivery,
// gives the one in flight SHUTDOWN_TIMEOUT, cuts it and puts it back; it exits
// 0; the next replica delivers both events.
func TestDurableSIGTERMMidDelivery(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t), fakenext.WithDelay(hangFirst))
	a := ds.start(t, map[string]string{"DELIVERY_WORKERS": "1", "FORWARD_TIMEOUT": "30s", "SHUTDOWN_TIMEOUT": "2s"})
	for _, id := range []string{"evt_cut", "evt_waiting"} {
		if code, _, _ := a.post(t, id); code != http.StatusOK {
			t.Fatalf("webhook %s = %d", id, code)
		}
	}
	polltest.Within(t, time.Minute, "the delivery to hang", func() bool { return ds.next.Requests() == 1 })

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := a.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if got := ds.next.Requests(); got != 1 {
		t.Errorf("Next.js got %d requests before the next replica, want the cut one only", got)
	}
	code, out := ds.eventsCommand(t, "list", "--json")
	if code != 0 || strings.Count(out, `"state":"available"`) != 2 || strings.Contains(out, `"attempts":1`) {
		t.Errorf("events list after SIGTERM = %d\n%s\nwant both available, no attempt used", code, out)
	}

	ds.start(t, nil)
	polltest.Within(t, time.Minute, "the next replica delivers both", func() bool {
		return accepted(ds.next, "evt_cut") == 1 && accepted(ds.next, "evt_waiting") == 1
	})
}

// TestDurableSameEventTwoReplicas posts one event to two replicas at once,
// several times each: one answer queues it, the rest are duplicates, and
// Next.js gets it once.
func TestDurableSameEventTwoReplicas(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t))
	replicas := []*replicaProcess{ds.start(t, nil), ds.start(t, nil)}
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		queued     int
		duplicates int
		others     []int
	)
	for _, r := range replicas {
		for range 5 {
			wg.Go(func() {
				code, ans, _ := r.post(t, "evt_twice")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case code == http.StatusOK && ans.Queued && ans.Duplicate:
					duplicates++
				case code == http.StatusOK && ans.Queued:
					queued++
				default:
					others = append(others, code)
				}
			})
		}
	}
	wg.Wait()
	if queued != 1 || duplicates != 9 || len(others) > 0 {
		t.Errorf("answers: %d queued, %d duplicates, others %v; want 1, 9, none", queued, duplicates, others)
	}
	// Once its one job is completed nothing can deliver it again.
	polltest.Within(t, time.Minute, "delivered and recorded", func() bool {
		_, out := ds.eventsCommand(t, "list", "--json")
		return strings.Count(out, "\n") == 1 && strings.Contains(out, `"state":"completed"`)
	})
	if got := requested(ds.next, "evt_twice"); got != 1 {
		t.Errorf("Next.js got the event %d times, want once", got)
	}
}

// TestDurableDatabaseDownAtStart: with the database down the replica starts
// and is ready (checkout does not need the database), webhooks answer 503 with
// Retry-After; once the database is up, events are queued and delivered.
func TestDurableDatabaseDownAtStart(t *testing.T) {
	t.Parallel()
	c, dsn := migratedCluster(t)
	c.Stop(t)
	ds := newDurableStand(t, dsn)
	r := ds.start(t, nil)
	waitReady(t, r.url)
	code, _, h := r.post(t, "evt_early")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("webhook with the database down = %d (Retry-After %q), want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	if !strings.Contains(r.stdout.String(), "the database does not answer") {
		t.Error("no warning that the database does not answer")
	}

	c.Restart(t)
	polltest.Within(t, 2*time.Minute, "webhooks queued once the database answers", func() bool {
		code, ans, _ := r.post(t, "evt_early")
		return code == http.StatusOK && ans.Queued
	})
	polltest.Within(t, time.Minute, "delivered", func() bool { return accepted(ds.next, "evt_early") == 1 })
}

// TestDurableSchemaBehindAtStart: a reachable database whose schema is behind
// stops the replica at start, exit 1, with a line naming the fix.
func TestDurableSchemaBehindAtStart(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, pgtest.Database(t))
	r := ds.launch(t, nil)
	if code := r.wait(t, time.Minute); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	if !strings.Contains(r.stdout.String(), "payments-api migrate") {
		t.Errorf("no line says to run payments-api migrate:\n%s", r.stdout)
	}
}

// TestDurableDatabaseRestartMidTraffic: the database is killed and restarted
// while events arrive; everything acknowledged is delivered within
// FORWARD_TIMEOUT + 2 minutes of the database answering again.
func TestDurableDatabaseRestartMidTraffic(t *testing.T) {
	t.Parallel()
	c, dsn := migratedCluster(t)
	ds := newDurableStand(t, dsn, fakenext.WithDelay(func(int) time.Duration { return 50 * time.Millisecond }))
	r := ds.start(t, map[string]string{"DELIVERY_WORKERS": "2"})

	var acked []string
	send := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("evt_restart_%03d", i)
			code, ans, h := r.post(t, id)
			switch {
			case code == http.StatusOK && ans.Queued:
				acked = append(acked, id)
			case code != http.StatusServiceUnavailable || h.Get("Retry-After") == "":
				t.Errorf("webhook %s = %d (Retry-After %q), want 200 queued, or 503 with Retry-After while the database is down", id, code, h.Get("Retry-After"))
			}
		}
	}
	send(0, 20)
	c.Kill(t)
	send(20, 25)
	c.Restart(t)
	back := time.Now()
	send(25, 45)
	if len(acked) < 40 {
		t.Fatalf("%d of 45 events acknowledged, want at least the 40 sent while the database was up", len(acked))
	}
	polltest.Within(t, 2*time.Second+2*time.Minute-time.Since(back), "every acknowledged event delivered", func() bool {
		for _, id := range acked {
			if accepted(ds.next, id) == 0 {
				return false
			}
		}
		return true
	})
}

// TestDurableReplayWithEventsRetry: an event Next.js refuses is discarded
// after its attempts; `payments-api events list` shows it, `events retry
// --discarded` replays it once Next.js takes events again.
func TestDurableReplayWithEventsRetry(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t))
	ds.next.Refuse(http.StatusServiceUnavailable, 0)
	r := ds.start(t, map[string]string{"DELIVERY_MAX_ATTEMPTS": "1"})
	if code, _, _ := r.post(t, "evt_dead"); code != http.StatusOK {
		t.Fatalf("webhook = %d", code)
	}
	polltest.Within(t, time.Minute, "discarded", func() bool {
		_, out := ds.eventsCommand(t, "list", "--state", "discarded", "--json")
		return strings.Contains(out, `"event_id":"evt_dead"`)
	})
	if !strings.Contains(r.stdout.String(), "event discarded") {
		t.Error("no log line for the discarded event")
	}

	ds.next.Accept()
	code, out := ds.eventsCommand(t, "retry", "--discarded")
	if code != 0 || out != "evt_dead queued (was discarded)\n" {
		t.Fatalf("events retry --discarded = %d %q", code, out)
	}
	polltest.Within(t, time.Minute, "replayed", func() bool { return accepted(ds.next, "evt_dead") == 1 })
}

// TestDurableWebhookAnswers: Stripe's answers in durable mode, byte for byte.
// A new event is queued; its redelivery while it is queued, in flight or
// delivered is a duplicate and not delivered again; the redelivery of a
// discarded event queues it again, without "duplicate", and it is delivered.
// The queue's gauges have a series for each of River's eight states from the
// start, and the webhook's outcomes are counted.
func TestDurableWebhookAnswers(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t))
	r := ds.start(t, map[string]string{"DELIVERY_MAX_ATTEMPTS": "1"})

	_, m := get(t, r.metricsURL+"/metrics")
	for _, s := range []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"} {
		if !strings.Contains(m, `payments_api_delivery_jobs{state="`+s+`"} `) {
			t.Errorf("no series payments_api_delivery_jobs{state=%q} at start", s)
		}
	}
	if !strings.Contains(m, "payments_api_delivery_oldest_pending_seconds 0\n") {
		t.Error("payments_api_delivery_oldest_pending_seconds is not 0 on an empty queue")
	}
	for _, o := range []string{"delivered", "retry", "discarded"} {
		if !strings.Contains(m, `payments_api_delivery_attempts_total{outcome="`+o+`"} 0`+"\n") {
			t.Errorf("no series payments_api_delivery_attempts_total{outcome=%q} at start", o)
		}
	}

	const (
		queued    = `{"received":true,"queued":true}`
		duplicate = `{"received":true,"queued":true,"duplicate":true}`
	)
	answers := func(id, want string) {
		t.Helper()
		code, body, h := r.postRaw(t, id)
		if code != http.StatusOK || strings.TrimSpace(string(body)) != want || h.Get("Content-Type") != "application/json" {
			t.Errorf("webhook %s = %d %s %s, want 200 application/json %s", id, code, h.Get("Content-Type"), body, want)
		}
	}
	answers("evt_new", queued)
	answers("evt_new", duplicate)
	polltest.Within(t, time.Minute, "delivered", func() bool { return accepted(ds.next, "evt_new") == 1 })
	answers("evt_new", duplicate)

	ds.next.Refuse(http.StatusServiceUnavailable, 0)
	answers("evt_dead", queued)
	polltest.Within(t, time.Minute, "discarded", func() bool {
		_, out := ds.eventsCommand(t, "list", "--state", "discarded", "--json")
		return strings.Contains(out, `"event_id":"evt_dead"`)
	})
	ds.next.Accept()
	answers("evt_dead", queued)
	polltest.Within(t, time.Minute, "the discarded event delivered", func() bool { return accepted(ds.next, "evt_dead") == 1 })

	time.Sleep(time.Second) // a duplicate delivery would come now
	if got := requested(ds.next, "evt_new"); got != 1 {
		t.Errorf("Next.js got evt_new %d times, want once", got)
	}
	_, m = get(t, r.metricsURL+"/metrics")
	for outcome, n := range map[string]int{"queued": 3, "duplicate": 2, "queue_unavailable": 0} {
		series := fmt.Sprintf(`payments_api_webhook_events_total{outcome=%q,type="checkout.session.completed"} %d`+"\n", outcome, n)
		if !strings.Contains(m, series) {
			t.Errorf("metrics lack %q", series)
		}
	}
}

// TestDurableSlowDatabase503: a database slower than 5 s (here a lock held on
// the queue's table) makes the webhook answer 503 with Retry-After after 5 s,
// so that Stripe redelivers; the event was not queued, and its redelivery is.
func TestDurableSlowDatabase503(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t))
	r := ds.start(t, nil)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ds.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE river_job IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, body, h := r.postRaw(t, "evt_slow")
	took := time.Since(start)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("webhook with the database stalled = %d %s (Retry-After %q) %s, want a 503 problem with Retry-After",
			code, h.Get("Content-Type"), h.Get("Retry-After"), body)
	}
	if took < 4500*time.Millisecond || took > 8*time.Second {
		t.Errorf("answered after %v, want about 5 s", took.Round(time.Millisecond))
	}

	if code, ans, _ := r.post(t, "evt_slow"); code != http.StatusOK || !ans.Queued || ans.Duplicate {
		t.Fatalf("redelivery once the database answers = %d %+v, want 200 queued, not a duplicate", code, ans)
	}
	polltest.Within(t, time.Minute, "delivered", func() bool { return accepted(ds.next, "evt_slow") == 1 })
	_, m := get(t, r.metricsURL+"/metrics")
	if series := `payments_api_webhook_events_total{outcome="queue_unavailable",type="checkout.session.completed"} 1` + "\n"; !strings.Contains(m, series) {
		t.Errorf("metrics lack %q", series)
	}
}

// TestDurableForwardTimeoutBoundsAnAttempt: in durable mode FORWARD_TIMEOUT
// bounds one attempt: a Next.js that hangs is cut after it, not after
// River's job timeout, and the event is delivered by the next attempt.
func TestDurableForwardTimeoutBoundsAnAttempt(t *testing.T) {
	t.Parallel()
	ds := newDurableStand(t, migratedDSN(t), fakenext.WithDelay(hangFirst))
	r := ds.start(t, map[string]string{"FORWARD_TIMEOUT": "1s"})
	if code, ans, _ := r.post(t, "evt_hang"); code != http.StatusOK || !ans.Queued {
		t.Fatalf("webhook = %d %+v, want 200 queued", code, ans)
	}
	polltest.Within(t, time.Minute, "the first attempt to reach Next.js", func() bool { return ds.next.Requests() == 1 })
	reached := time.Now()
	polltest.Eventually(t, "the first attempt cut", func() bool { return len(ds.next.Deliveries()) >= 1 })
	if cut := time.Since(reached); cut < 800*time.Millisecond || cut > 3*time.Second {
		t.Errorf("the hanging attempt was cut after %v, want about FORWARD_TIMEOUT (1 s)", cut.Round(time.Millisecond))
	}
	if got := ds.next.Deliveries()[0].Status; got != fakenext.StatusClientClosed {
		t.Errorf("first attempt recorded %d, want %d (cut by payments-api)", got, fakenext.StatusClientClosed)
	}
	polltest.Within(t, time.Minute, "delivered by the second attempt", func() bool { return accepted(ds.next, "evt_hang") == 1 })
	_, out := ds.eventsCommand(t, "list", "--json")
	if !strings.Contains(out, `"attempts":2`) || !strings.Contains(out, "timeout") {
		t.Errorf("events list = %s, want two attempts and the first one's timeout", out)
	}
}
