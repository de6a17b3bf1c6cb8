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
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// start runs a replica with the stand's environment plus extra, and waits
// until it listens.
func (ds *durableStand) start(t *testing.T, extra map[string]string) *replicaProcess {
	t.Helper()
	r := ds.launch(t, extra)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if line := r.stdout.First(t, "msg", "listening"); line != nil {
			r.url = "http://" + line["addr"].(string)
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
	body, sig := signedEvent(t, id, "checkout.session.completed")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := postWebhook(ctx, r.url, body, sig)
	if err != nil {
		t.Fatalf("POST /stripe/webhook %s: %v", id, err)
	}
	defer resp.Body.Close()
	var a webhookAnswer
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("webhook answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, a, resp.Header
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
	c := pgtest.Start(t)
	dsn := c.URL("postgres")
	var out, errOut bytes.Buffer
	if err := migrate(context.Background(), dsn, reachTimeout, &out, &errOut); err != nil {
		t.Fatal(err)
	}
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
	c := pgtest.Start(t)
	dsn := c.URL("postgres")
	if err := migrate(context.Background(), dsn, reachTimeout, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	ds := newDurableStand(t, dsn, fakenext.WithDelay(func(int) time.Duration { return 50 * time.Millisecond }))
	r := ds.start(t, map[string]string{"DELIVERY_WORKERS": "2"})

	var acked []string
	send := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("evt_restart_%03d", i)
			if code, ans, _ := r.post(t, id); code == http.StatusOK && ans.Queued {
				acked = append(acked, id)
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
