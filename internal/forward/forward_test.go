package forward_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/requestlog"
)

const secret = "whsec_test_nextjs_fedcba9876543210"

var body = []byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":{"object":"checkout.session"}}}`)

// received is one request as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// requestLog records the requests a receiver got, in arrival order.
type requestLog struct {
	mu  sync.Mutex
	got []received
}

// record adds one request and returns its 1-based index.
func (l *requestLog) record(r *http.Request) int {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, received{header: r.Header.Clone(), body: b, at: time.Now()})
	return len(l.got)
}

func (l *requestLog) requests() []received {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]received(nil), l.got...)
}

// receiver is an httptest server answering statuses[n] to the n-th request (the
// last status repeats) and recording what it got.
type receiver struct {
	*httptest.Server
	requestLog
	conn atomic.Int64 // new connections
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter, n int)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w, rc.record(r))
	}))
	rc.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conn.Add(1)
		}
	}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func statuses(codes ...int) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, n int) {
		w.WriteHeader(codes[min(n, len(codes))-1])
	}
}

// memURL is where the forwarder believes a memReceiver is; nothing is dialled.
const memURL = "http://next.invalid/api/payments/webhook"

// memReceiver is a receiver without a network, for tests in a synctest bubble
// (there, a connection's goroutines, blocked on the network rather than durably,
// would keep the fake clock from moving): it is the forwarder's transport and
// answers in the forwarder's goroutine, taking no time, so that the forwarder's
// own waits are all that move the bubble's clock. It records what it got, and
// when, like receiver.
type memReceiver struct {
	requestLog
	respond func(w http.ResponseWriter, n int)
}

func (m *memReceiver) RoundTrip(r *http.Request) (*http.Response, error) {
	defer r.Body.Close()
	w := httptest.NewRecorder()
	m.respond(w, m.record(r))
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// client is for forward.Options.Client.
func (m *memReceiver) client() *http.Client { return &http.Client{Transport: m} }

// mustURL parses s, a URL the test itself wrote.
func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newForwarder(t *testing.T, opts forward.Options) (*forward.Forwarder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Secret = cmp.Or(opts.Secret, secret)
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff, opts.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	opts.Registerer = reg
	f, err := forward.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.CloseIdleConnections)
	return f, reg
}

func counter(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	return metricstest.Value(t, reg, "payments_api_webhook_forward_attempts_total", map[string]string{"outcome": outcome})
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts forward.Options
	}{
		{"no URL", forward.Options{Secret: secret}},
		{"no secret", forward.Options{URL: mustURL(t, "http://next.example/hook")}},
		{"negative timeout", forward.Options{URL: mustURL(t, "http://next.example/hook"), Secret: secret, Timeout: -time.Second}},
		{"max below initial backoff", forward.Options{URL: mustURL(t, "http://next.example/hook"), Secret: secret, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := forward.New(tt.opts)
			if err == nil || f != nil {
				t.Fatalf("New(%+v) = %v, %v; want an error", tt.opts, f, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
	t.Run("duplicate registration", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		opts := forward.Options{URL: mustURL(t, "http://next.example/hook"), Secret: secret, Registerer: reg}
		if _, err := forward.New(opts); err != nil {
			t.Fatal(err)
		}
		if _, err := forward.New(opts); err == nil {
			t.Error("second New on the same registry succeeded")
		}
	})
}

func TestForwardSignsAndLabelsEachRequest(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	at := time.Unix(1_767_225_600, 0)
	f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL+"/api/payments/webhook"), UserAgent: "payments-api/1.2.3", Now: func() time.Time { return at }})
	ctx, _ := requestlog.New(context.Background(), "req-abc")

	n, err := f.Forward(ctx, "evt_1", body)
	if err != nil || n != 1 {
		t.Fatalf("Forward = %d, %v; want 1, nil", n, err)
	}
	got := rc.requests()[0]
	if string(got.body) != string(body) {
		t.Errorf("body = %q, want %q", got.body, body)
	}
	wantSig := fmt.Sprintf("t=%d,v1=", at.Unix())
	if sig := got.header.Get("Stripe-Signature"); !strings.HasPrefix(sig, wantSig) {
		t.Errorf("Stripe-Signature = %q, want prefix %q", sig, wantSig)
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(got.body, got.header.Get("Stripe-Signature"), secret); err != nil {
		t.Errorf("signature does not verify with the secret: %v", err)
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(got.body, got.header.Get("Stripe-Signature"), secret+"x"); err == nil {
		t.Error("signature verifies with another secret")
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Idempotency-Key": "evt_1", "X-Request-ID": "req-abc", "User-Agent": "payments-api/1.2.3",
	} {
		if got := got.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// Outside a request there is no id to pass on, and the default User-Agent.
	f2, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL)})
	if _, err := f2.Forward(context.Background(), "evt_2", body); err != nil {
		t.Fatal(err)
	}
	got = rc.requests()[1]
	if v, ok := got.header["X-Request-Id"]; ok {
		t.Errorf("X-Request-ID = %q, want none", v)
	}
	if got, want := got.header.Get("User-Agent"), forward.DefaultUserAgent; got != want {
		t.Errorf("User-Agent = %q, want %q", got, want)
	}
}

func TestForwardResignsEachAttempt(t *testing.T) {
	rc := newReceiver(t, statuses(503, 503, 200))
	var clock atomic.Int64
	clock.Store(1_767_225_600)
	f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL), Now: func() time.Time { return time.Unix(clock.Add(7), 0) }})
	n, err := f.Forward(context.Background(), "evt_1", body)
	if err != nil || n != 3 {
		t.Fatalf("Forward = %d, %v; want 3, nil", n, err)
	}
	seen := map[string]bool{}
	for i, r := range rc.requests() {
		sig := r.header.Get("Stripe-Signature")
		if seen[sig] {
			t.Errorf("attempt %d reused signature %q", i+1, sig)
		}
		seen[sig] = true
		if err := webhook.ValidatePayloadIgnoringTolerance(r.body, sig, secret); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
}

func TestForwardClassifiesStatuses(t *testing.T) {
	tests := []struct {
		status       int
		wantAttempts int // when the receiver answers status once, then 200
		wantErr      bool
		wantOutcome  string
	}{
		{200, 1, false, forward.OutcomeSuccess},
		{201, 1, false, forward.OutcomeSuccess},
		{202, 1, false, forward.OutcomeSuccess},
		{204, 1, false, forward.OutcomeSuccess},
		{400, 1, true, forward.OutcomeRejected},
		{401, 1, true, forward.OutcomeRejected},
		{403, 1, true, forward.OutcomeRejected},
		{404, 1, true, forward.OutcomeRejected},
		{409, 1, true, forward.OutcomeRejected},
		{413, 1, true, forward.OutcomeRejected},
		{422, 1, true, forward.OutcomeRejected},
		{301, 1, true, forward.OutcomeRedirected},
		{302, 1, true, forward.OutcomeRedirected},
		{304, 1, true, forward.OutcomeRedirected},
		{307, 1, true, forward.OutcomeRedirected},
		{308, 1, true, forward.OutcomeRedirected},
		{408, 2, false, forward.OutcomeRetryableStatus},
		{429, 2, false, forward.OutcomeRetryableStatus},
		{500, 2, false, forward.OutcomeRetryableStatus},
		{502, 2, false, forward.OutcomeRetryableStatus},
		{503, 2, false, forward.OutcomeRetryableStatus},
		{504, 2, false, forward.OutcomeRetryableStatus},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, n int) {
				if n == 1 && tt.status/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				statuses(tt.status, 200)(w, n)
			})
			f, reg := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL)})
			n, err := f.Forward(context.Background(), "evt_1", body)
			if n != tt.wantAttempts || (err != nil) != tt.wantErr {
				t.Fatalf("Forward = %d, %v; want %d attempts, error %t", n, err, tt.wantAttempts, tt.wantErr)
			}
			if got, want := len(rc.requests()), tt.wantAttempts; got != want {
				t.Errorf("receiver got %d requests, want %d", got, want)
			}
			if got := counter(t, reg, tt.wantOutcome); got != 1 {
				t.Errorf("attempts{%s} = %v, want 1", tt.wantOutcome, got)
			}
			var fe *forward.Error
			if tt.wantErr {
				if !errors.As(err, &fe) || fe.Status != tt.status || fe.Outcome != tt.wantOutcome || fe.Attempts != 1 {
					t.Errorf("error = %#v, want a *forward.Error with status %d, outcome %s", err, tt.status, tt.wantOutcome)
				}
			}
		})
	}
}

func TestForwardGivesUpWithinTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget = 250 * time.Millisecond
		next := &memReceiver{respond: statuses(500)}
		f, reg := newForwarder(t, forward.Options{URL: mustURL(t, memURL), Client: next.client(), Timeout: budget})
		start := time.Now()
		n, err := f.Forward(context.Background(), "evt_1", body)
		elapsed := time.Since(start)
		// On the bubble's clock an attempt takes no time, and the forwarder only
		// waits when the wait ends before the deadline: the budget can end neither
		// during an attempt nor during a wait. So there is one outcome, whatever the
		// jitter: after a 500, the next wait would not leave room for an attempt.
		var fe *forward.Error
		if !errors.As(err, &fe) || fe.Outcome != forward.OutcomeRetryableStatus || fe.Status != 500 || fe.Err != nil {
			t.Fatalf("Forward error = %#v, want a *forward.Error with outcome %s, status 500 and no cause", err, forward.OutcomeRetryableStatus)
		}
		if want := fmt.Sprintf("forward failed after %d attempt(s): retryable_status (status 500): budget exhausted before the next attempt", n); err.Error() != want {
			t.Errorf("error text = %q, want %q", err, want)
		}
		// The first wait is below the initial backoff, far within the budget.
		if n < 2 || fe.Attempts != n {
			t.Errorf("attempts = %d, error says %d; want the same, at least 2", n, fe.Attempts)
		}
		if got := len(next.requests()); got != n {
			t.Errorf("receiver got %d requests, want %d", got, n)
		}
		if got := counter(t, reg, forward.OutcomeRetryableStatus); got != float64(n) {
			t.Errorf("attempts{retryable_status} = %v, want %d", got, n)
		}
		if got := counter(t, reg, forward.OutcomeTimeout); got != 0 {
			t.Errorf("attempts{timeout} = %v, want 0", got)
		}
		if elapsed >= budget {
			t.Errorf("Forward returned after %v, not within its %v budget", elapsed, budget)
		}
	})
}

func TestForwardHonoursRetryAfter(t *testing.T) {
	t.Run("within the budget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			next := &memReceiver{respond: func(w http.ResponseWriter, n int) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusOK)
			}}
			f, reg := newForwarder(t, forward.Options{URL: mustURL(t, memURL), Client: next.client(), Timeout: 5 * time.Second})
			if n, err := f.Forward(context.Background(), "evt_1", body); n != 2 || err != nil {
				t.Fatalf("Forward = %d, %v; want 2, nil", n, err)
			}
			got := next.requests()
			// The Retry-After exceeds any jittered wait (below 5 ms), so it is the
			// wait, to the nanosecond on the bubble's clock.
			if gap := got[1].at.Sub(got[0].at); gap != time.Second {
				t.Errorf("second attempt %v after the first, want 1s (Retry-After)", gap)
			}
			for outcome, want := range map[string]float64{forward.OutcomeRetryableStatus: 1, forward.OutcomeSuccess: 1} {
				if got := counter(t, reg, outcome); got != want {
					t.Errorf("attempts{%s} = %v, want %v", outcome, got, want)
				}
			}
		})
	})
	// Over real HTTP: no wait is involved, and the header crosses a real connection.
	t.Run("beyond the budget", func(t *testing.T) {
		rc := newReceiver(t, func(w http.ResponseWriter, n int) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL), Timeout: 5 * time.Second})
		n, err := f.Forward(context.Background(), "evt_1", body)
		if n != 1 || err == nil || !strings.Contains(err.Error(), "Retry-After beyond the budget") {
			t.Fatalf("Forward = %d, %v; want 1 attempt and a Retry-After error", n, err)
		}
	})
}

func TestForwardRetriesNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	// Refused connections fail in well under a millisecond: a second of budget
	// leaves room for many attempts on the slowest machine.
	f, reg := newForwarder(t, forward.Options{URL: mustURL(t, "http://"+addr+"/hook"), Timeout: time.Second})
	n, err := f.Forward(context.Background(), "evt_1", body)
	var fe *forward.Error
	if !errors.As(err, &fe) || fe.Err == nil || fe.Status != 0 {
		t.Fatalf("Forward error = %#v, want a transport *forward.Error", err)
	}
	if n < 2 {
		t.Errorf("attempts = %d, want retries (≥ 2)", n)
	}
	if got := counter(t, reg, forward.OutcomeNetworkError); got < 2 {
		t.Errorf("attempts{network_error} = %v, want ≥ 2", got)
	}
}

func TestForwardStopsWhenTheCallerGoesAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := &memReceiver{respond: func(w http.ResponseWriter, n int) {
			w.Header().Set("Retry-After", "3") // the forwarder sleeps when the caller leaves
			w.WriteHeader(http.StatusServiceUnavailable)
		}}
		f, reg := newForwarder(t, forward.Options{URL: mustURL(t, memURL), Client: next.client(), Timeout: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			n, err := f.Forward(ctx, "evt_1", body)
			done <- result{n, err}
		}()
		// Once every goroutine in the bubble is blocked, the forwarder is asleep
		// for the Retry-After after its first attempt: the caller leaves then.
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("Forward returned instead of waiting to retry: %d, %v", r.n, r.err)
		default:
		}
		if got := counter(t, reg, forward.OutcomeRetryableStatus); got != 1 {
			t.Fatalf("attempts{retryable_status} = %v before the caller left, want 1", got)
		}
		cancel()
		r := <-done
		n, err := r.n, r.err
		var fe *forward.Error
		if !errors.As(err, &fe) || fe.Outcome != forward.OutcomeCanceled || !errors.Is(err, context.Canceled) {
			t.Fatalf("Forward error = %v, want a cancelled *forward.Error", err)
		}
		if !strings.Contains(err.Error(), "(status 503): stopped while waiting to retry") {
			t.Errorf("error text %q does not say the last status and that it stopped while waiting", err)
		}
		// At once: not a tick of the 3 s Retry-After passed.
		if elapsed := time.Since(start); elapsed != 0 {
			t.Errorf("Forward returned %v after it started, want at once", elapsed)
		}
		if got := len(next.requests()); n != 1 || got != 1 {
			t.Errorf("attempts = %d, receiver got %d; want 1", n, got)
		}
		if got := counter(t, reg, forward.OutcomeRetryableStatus); got != 1 {
			t.Errorf("attempts{retryable_status} = %v, want 1", got)
		}
		if got := counter(t, reg, forward.OutcomeCanceled); got != 0 {
			t.Errorf("attempts{canceled} = %v, want 0 (no attempt was cut off)", got)
		}
	})
}

func TestForwardReusesConnections(t *testing.T) {
	big := strings.Repeat("x", 20<<10) // an answer body that must be drained
	rc := newReceiver(t, func(w http.ResponseWriter, n int) {
		if n%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, big)
	})
	f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL)})
	for i := range 20 {
		if _, err := f.Forward(context.Background(), fmt.Sprintf("evt_%d", i), body); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rc.conn.Load(), int64(1); got != want {
		t.Errorf("receiver saw %d connections for sequential forwards, want %d", got, want)
	}
}

func TestForwardNeverFollowsRedirectsEvenWithTheCallersClient(t *testing.T) {
	var targetHits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	rc := newReceiver(t, func(w http.ResponseWriter, n int) {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	client := &http.Client{} // follows redirects by default
	f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL), Client: client})
	if n, err := f.Forward(context.Background(), "evt_1", body); n != 1 || err == nil {
		t.Fatalf("Forward = %d, %v; want 1 attempt and an error", n, err)
	}
	if got := targetHits.Load(); got != 0 {
		t.Errorf("redirect target got %d requests, want 0", got)
	}
	if client.CheckRedirect != nil {
		t.Error("New changed the caller's client")
	}
}
