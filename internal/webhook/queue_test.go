package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/webhook"
	"github.com/acme/payments-api/internal/webhooktest"
)

// memQueue is a Queue in memory, unique by event id, that can be told to fail
// or to stall: the handler is what is under test, not a database.
type memQueue struct {
	fail  error         // returned by every Enqueue when set
	stall time.Duration // Enqueue waits this long (or until ctx ends, when honour is set)
	// honour makes a stalled Enqueue return when its ctx ends, as a database
	// driver does; without it Enqueue overstays its deadline.
	honour bool

	mu       sync.Mutex
	jobs     map[string]job
	calls    int
	returned chan error // the ctx error each stalled Enqueue saw when it returned
}

type job struct {
	typ, requestID string
	body           []byte
}

func newMemQueue() *memQueue {
	return &memQueue{jobs: make(map[string]job), returned: make(chan error, 4)}
}

func (q *memQueue) Enqueue(ctx context.Context, id, typ string, body []byte) (bool, error) {
	q.mu.Lock()
	q.calls++
	q.mu.Unlock()
	if q.stall > 0 {
		t := time.NewTimer(q.stall)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			if q.honour {
				q.returned <- ctx.Err()
				return false, ctx.Err()
			}
			<-t.C
		}
		q.returned <- ctx.Err()
	}
	if q.fail != nil {
		return false, q.fail
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, dup := q.jobs[id]; dup {
		return true, nil
	}
	q.jobs[id] = job{typ: typ, requestID: requestlog.ID(ctx), body: bytes.Clone(body)}
	return false, nil
}

// queueStack is the handler in durable mode with its metrics, called directly
// (no network), so that it also runs inside a synctest bubble.
type queueStack struct {
	h   http.Handler
	q   *memQueue
	reg *prometheus.Registry
	n   int
}

func newQueueStack(q *memQueue) *queueStack {
	reg := prometheus.NewRegistry()
	return &queueStack{q: q, reg: reg, h: webhook.Handler(webhook.Options{
		Secret: stripeSecret, ForwardTypes: forwardTypes, Queue: q, Registerer: reg,
	})}
}

func (s *queueStack) post(t *testing.T, body []byte) response {
	t.Helper()
	s.n++
	req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", webhooktest.Sign(body, stripeSecret, time.Now()))
	ctx, rec := requestlog.New(req.Context(), fmt.Sprintf("req-queue-%d", s.n))
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req.WithContext(ctx))
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes(), rec: rec}
}

func (s *queueStack) events(t *testing.T, typ, outcome string) float64 {
	t.Helper()
	return metricstest.Value(t, s.reg, "payments_api_webhook_events_total", map[string]string{"type": typ, "outcome": outcome})
}

func checkQueued(t *testing.T, r response, want string) {
	t.Helper()
	if r.status != http.StatusOK || string(r.body) != want || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("answer = %d %q %s, want 200 application/json %s", r.status, r.header.Get("Content-Type"), r.body, want)
	}
}

func TestQueueTakesForwardedTypes(t *testing.T) {
	s := newQueueStack(newMemQueue())
	const typ = "checkout.session.completed"
	body := event("evt_q1", typ, "2025-09-30.clover")

	first := s.post(t, body)
	checkQueued(t, first, `{"received":true,"queued":true}`+"\n")
	got, ok := s.q.jobs["evt_q1"]
	if !ok {
		t.Fatalf("evt_q1 not queued: %v", s.q.jobs)
	}
	if got.typ != typ || !bytes.Equal(got.body, body) || got.requestID != first.rec.ID() {
		t.Errorf("queued %s %q (request %q), want %s, the raw body, request %q", got.typ, got.body, got.requestID, typ, first.rec.ID())
	}
	if got, want := logAttrs(first.rec)["webhook_outcome"], webhook.OutcomeQueued; got != want {
		t.Errorf("log webhook_outcome = %q, want %q", got, want)
	}

	// Stripe redelivers the same event: acknowledged, not queued twice.
	again := s.post(t, body)
	checkQueued(t, again, `{"received":true,"queued":true,"duplicate":true}`+"\n")
	if got, want := logAttrs(again.rec)["webhook_outcome"], webhook.OutcomeDuplicate; got != want {
		t.Errorf("log webhook_outcome = %q, want %q", got, want)
	}
	if got, want := len(s.q.jobs), 1; got != want {
		t.Errorf("queue holds %d events, want %d", got, want)
	}

	// An ignored type, and a forged one, never reach the queue.
	other := event("evt_q2", "customer.created", "2025-09-30.clover")
	checkReceived(t, s.post(t, other), false)
	forged := s.post(t, body[:len(body)-1])
	if forged.status != http.StatusBadRequest {
		t.Errorf("forged event: status %d, want 400", forged.status)
	}
	if got, want := s.q.calls, 2; got != want {
		t.Errorf("Enqueue called %d times, want %d", got, want)
	}
	for outcome, want := range map[string]float64{
		webhook.OutcomeQueued: 1, webhook.OutcomeDuplicate: 1, webhook.OutcomeQueueUnavailable: 0,
	} {
		if got := s.events(t, typ, outcome); got != want {
			t.Errorf("events{%s,%s} = %v, want %v", typ, outcome, got, want)
		}
	}
	if got, want := s.events(t, "other", webhook.OutcomeIgnored), 1.0; got != want {
		t.Errorf("events{other,ignored} = %v, want %v", got, want)
	}
	// Durable mode has no synchronous outcomes, and every queue outcome of
	// every forwarded type exists from the start.
	if n := metricstest.Sum(t, s.reg, "payments_api_webhook_events_total", map[string]string{"outcome": webhook.OutcomeForwarded}); n != 0 {
		t.Errorf("events{forwarded} = %v in durable mode", n)
	}
	series := 0
	for _, typ := range forwardTypes {
		for _, o := range []string{webhook.OutcomeQueued, webhook.OutcomeDuplicate, webhook.OutcomeQueueUnavailable} {
			if !hasSeries(t, s.reg, typ, o) {
				t.Errorf("no series events{%s,%s} before any such event", typ, o)
			}
			series++
		}
	}
	if series != 9 {
		t.Fatalf("checked %d series", series)
	}
}

// hasSeries reports whether the events metric has the series at all.
func hasSeries(t *testing.T, g prometheus.Gatherer, typ, outcome string) bool {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if f.GetName() == "payments_api_webhook_events_total" && labels["type"] == typ && labels["outcome"] == outcome {
				return true
			}
		}
	}
	return false
}

// TestQueueUnavailableAnswers503 covers a queue that fails and one that does
// not answer within the timeout, whether or not it honours its context. The
// bubble's clock makes the 5 s default take no time, and the bubble only
// ends once every goroutine the handler started has returned.
func TestQueueUnavailableAnswers503(t *testing.T) {
	const secretish = "dial tcp 10.0.0.7:5432: password authentication failed for user payments"
	tests := []struct {
		name      string
		q         *memQueue
		wantAfter time.Duration // the answer comes this long after the request
		wantCause string        // in the log's error
	}{
		{"error", &memQueue{fail: errors.New(secretish)}, 0, "password authentication failed"},
		{"slow, honours its context", &memQueue{stall: time.Minute, honour: true}, webhook.DefaultQueueTimeout, "did not answer within 5s"},
		{"slow, overstays its context", &memQueue{stall: time.Minute}, webhook.DefaultQueueTimeout, "did not answer within 5s"},
		{"slower than the timeout, then succeeds", &memQueue{stall: 6 * time.Second}, webhook.DefaultQueueTimeout, "did not answer within 5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.q.jobs, tt.q.returned = make(map[string]job), make(chan error, 1)
				s := newQueueStack(tt.q)
				const typ = "checkout.session.async_payment_succeeded"
				start := time.Now()
				r := s.post(t, event("evt_down", typ, "2025-09-30.clover"))
				if got := time.Since(start); got != tt.wantAfter {
					t.Errorf("answered after %v, want %v", got, tt.wantAfter)
				}
				checkProblem(t, r, http.StatusServiceUnavailable, "The event could not be stored for delivery; it will be accepted on redelivery.")
				if got, want := r.header.Get("Retry-After"), "30"; got != want {
					t.Errorf("Retry-After = %q, want %q", got, want)
				}
				checkNoLeak(t, response{body: r.body, rec: &requestlog.Record{}}, "password", "10.0.0.7", "deadline")
				attrs := logAttrs(r.rec)
				if !strings.Contains(attrs["error"], tt.wantCause) {
					t.Errorf("log error = %q, want it to name %q", attrs["error"], tt.wantCause)
				}
				if got, want := attrs["webhook_outcome"], webhook.OutcomeQueueUnavailable; got != want {
					t.Errorf("log webhook_outcome = %q, want %q", got, want)
				}
				if got, want := s.events(t, typ, webhook.OutcomeQueueUnavailable), 1.0; got != want {
					t.Errorf("events{%s,queue_unavailable} = %v, want %v", typ, got, want)
				}
				if tt.q.stall > 0 {
					// The Enqueue call gets a context that ends at the timeout.
					if err := <-tt.q.returned; !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Enqueue's context ended with %v, want %v", err, context.DeadlineExceeded)
					}
				}
			})
		})
	}
}

func TestQueueTimeoutOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &memQueue{stall: time.Second, honour: true, jobs: map[string]job{}, returned: make(chan error, 1)}
		reg := prometheus.NewRegistry()
		h := webhook.Handler(webhook.Options{Secret: stripeSecret, ForwardTypes: forwardTypes, Queue: q, QueueTimeout: 200 * time.Millisecond, Registerer: reg})
		body := event("evt_quick", "checkout.session.completed", "2025-09-30.clover")
		req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", webhooktest.Sign(body, stripeSecret, time.Now()))
		start := time.Now()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if got, want := time.Since(start), 200*time.Millisecond; w.Code != http.StatusServiceUnavailable || got != want {
			t.Errorf("status %d after %v, want 503 after %v", w.Code, got, want)
		}
		<-q.returned
	})
}
