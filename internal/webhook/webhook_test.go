package webhook_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/problemtest"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/webhook"
	"github.com/acme/payments-api/internal/webhooktest"
)

const (
	stripeSecret = "whsec_test_stripe_0123456789abcdef"
	nextSecret   = "whsec_test_nextjs_fedcba9876543210"
	email        = "jane.customer@example.com"
)

var forwardTypes = []string{
	"checkout.session.completed",
	"checkout.session.async_payment_succeeded",
	"checkout.session.async_payment_failed",
}

// event returns a small but realistic event body carrying customer data, so that
// tests can check it never leaks.
func event(id, typ, apiVersion string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":%q,"created":1735689600,`+
		`"data":{"object":{"id":"cs_test_1","object":"checkout.session","customer_email":%q,`+
		`"customer_details":{"email":%q,"address":{"line1":"742 Evergreen Terrace"}},"amount_total":2900}},`+
		`"livemode":false,"pending_webhooks":1,"type":%q}`, id, apiVersion, email, email, typ))
}

// stack is payments-api's webhook handler with a real Forwarder in front of a
// fakenext receiver, both served over real HTTP.
type stack struct {
	api     *httptest.Server
	next    *fakenext.Receiver
	reg     *prometheus.Registry
	records chan *requestlog.Record
}

type stackConfig struct {
	timeout   time.Duration
	nextOpts  []fakenext.Option
	wrapNext  func(http.Handler) http.Handler // sits in front of the receiver
	nextURL   string                          // overrides the receiver's URL
	newServer func(http.Handler) *httptest.Server
}

func newStack(t *testing.T, cfg stackConfig) *stack {
	t.Helper()
	s := &stack{
		next:    fakenext.New(nextSecret, cfg.nextOpts...),
		reg:     prometheus.NewRegistry(),
		records: make(chan *requestlog.Record, 64),
	}
	var nextHandler http.Handler = s.next
	if cfg.wrapNext != nil {
		nextHandler = cfg.wrapNext(nextHandler)
	}
	nextSrv := httptest.NewServer(nextHandler)
	t.Cleanup(nextSrv.Close)
	nextURL, err := url.Parse(cmp.Or(cfg.nextURL, nextSrv.URL+"/api/payments/webhook"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.timeout == 0 {
		cfg.timeout = 5 * time.Second
	}
	fwd, err := forward.New(forward.Options{
		URL:            nextURL,
		Secret:         nextSecret,
		Timeout:        cfg.timeout,
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     40 * time.Millisecond,
		Registerer:     s.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.CloseIdleConnections)
	h := withRecord(webhook.Handler(webhook.Options{
		Secret:       stripeSecret,
		ForwardTypes: forwardTypes,
		Forwarder:    fwd,
		Registerer:   s.reg,
	}), s.records)
	if cfg.newServer != nil {
		s.api = cfg.newServer(h)
	} else {
		s.api = httptest.NewServer(h)
	}
	t.Cleanup(s.api.Close)
	return s
}

// withRecord plays the access-log middleware: it gives each request a log record
// and hands the record to the test once the handler returned.
func withRecord(h http.Handler, records chan<- *requestlog.Record) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, rec := requestlog.New(r.Context(), fmt.Sprintf("req-test-%d", n.Add(1)))
		h.ServeHTTP(w, r.WithContext(ctx))
		records <- rec
	})
}

type response struct {
	status int
	header http.Header
	body   []byte
	rec    *requestlog.Record
}

func (s *stack) post(t *testing.T, body []byte, sigHeader string) response {
	t.Helper()
	return s.do(t, context.Background(), bytes.NewReader(body), sigHeader)
}

func (s *stack) do(t *testing.T, ctx context.Context, body io.Reader, sigHeader string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api.URL+"/stripe/webhook", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if sigHeader != "" {
		req.Header.Set("Stripe-Signature", sigHeader)
	}
	resp, err := s.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b, rec: s.record(t)}
}

func (s *stack) record(t *testing.T) *requestlog.Record {
	t.Helper()
	select {
	case rec := <-s.records:
		return rec
	case <-time.After(20 * time.Second):
		t.Fatal("the handler did not return")
		return nil
	}
}

func events(t *testing.T, s *stack, typ, outcome string) float64 {
	t.Helper()
	return metricstest.Value(t, s.reg, "payments_api_webhook_events_total", map[string]string{"type": typ, "outcome": outcome})
}

func attempts(t *testing.T, s *stack, outcome string) float64 {
	t.Helper()
	return metricstest.Value(t, s.reg, "payments_api_webhook_forward_attempts_total", map[string]string{"outcome": outcome})
}

func logAttrs(rec *requestlog.Record) map[string]string {
	out := make(map[string]string)
	for _, a := range rec.Attrs() {
		out[a.Key] = a.Value.String()
	}
	return out
}

// checkNoLeak fails when the response body or the log line carries any of the
// secrets or payload fragments.
func checkNoLeak(t *testing.T, r response, fragments ...string) {
	t.Helper()
	logLine := fmt.Sprint(r.rec.Attrs())
	for _, f := range append(fragments, email, "Evergreen", stripeSecret, nextSecret) {
		if f == "" {
			continue
		}
		if bytes.Contains(r.body, []byte(f)) {
			t.Errorf("response body %s contains %q", r.body, f)
		}
		if strings.Contains(logLine, f) {
			t.Errorf("log attributes %s contain %q", logLine, f)
		}
	}
}

func checkProblem(t *testing.T, r response, wantStatus int, wantDetail string) {
	t.Helper()
	p := problemtest.Check(t, problemtest.Response{Status: r.status, Header: r.header, Body: r.body}, wantStatus, wantDetail)
	if got, want := p.RequestID, r.rec.ID(); got != want {
		t.Errorf("request_id = %q, want %q", got, want)
	}
}

func checkReceived(t *testing.T, r response, wantForwarded bool) {
	t.Helper()
	if got, want := r.status, http.StatusOK; got != want {
		t.Fatalf("status = %d, want %d (body %s)", got, want, r.body)
	}
	if got, want := r.header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var got struct {
		Received  *bool `json:"received"`
		Forwarded *bool `json:"forwarded"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if got.Received == nil || !*got.Received || got.Forwarded == nil || *got.Forwarded != wantForwarded {
		t.Errorf("body = %s, want received true, forwarded %t", r.body, wantForwarded)
	}
}

func TestForwardsConfiguredTypes(t *testing.T) {
	fixture, err := os.ReadFile("testdata/checkout_session_completed.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, typ string
		body          []byte
	}{
		{"completed, stripe-go's API version", "evt_completed", "checkout.session.completed", event("evt_completed", "checkout.session.completed", "2023-10-16")},
		{"completed, newer API version", "evt_clover", "checkout.session.completed", event("evt_clover", "checkout.session.completed", "2025-09-30.clover")},
		{"async payment succeeded", "evt_async_ok", "checkout.session.async_payment_succeeded", event("evt_async_ok", "checkout.session.async_payment_succeeded", "2024-06-20")},
		{"async payment failed", "evt_async_ko", "checkout.session.async_payment_failed", event("evt_async_ko", "checkout.session.async_payment_failed", "2024-06-20")},
		{"realistic 3 KB event", "evt_1QxYtR2eZvKYlo2C8vF3kLmN", "checkout.session.completed", fixture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackConfig{})
			inbound := webhooktest.Sign(tt.body, stripeSecret, time.Now())
			r := s.post(t, tt.body, inbound)
			checkReceived(t, r, true)

			got := s.next.Deliveries()
			if len(got) != 1 {
				t.Fatalf("receiver got %d deliveries, want 1", len(got))
			}
			d := got[0]
			if !bytes.Equal(d.Body, tt.body) {
				t.Errorf("forwarded body differs from the received bytes:\n got %q\nwant %q", d.Body, tt.body)
			}
			for _, h := range []struct{ key, want string }{
				{"Content-Type", "application/json"},
				{"Idempotency-Key", tt.id},
				{"X-Request-ID", r.rec.ID()},
			} {
				if got := d.Header.Get(h.key); got != h.want {
					t.Errorf("%s = %q, want %q", h.key, got, h.want)
				}
			}
			if got := d.Header.Get("User-Agent"); !strings.Contains(got, "payments-api") {
				t.Errorf("User-Agent = %q, want it to name payments-api", got)
			}
			// fakenext verified the signature with the Next.js secret; the inbound
			// signature must not have been passed through.
			fwdSig := d.Header.Get("Stripe-Signature")
			if fwdSig == inbound {
				t.Error("the inbound Stripe-Signature was forwarded instead of a new one")
			}
			if _, err := stripewebhook.ConstructEventWithOptions(d.Body, fwdSig, nextSecret,
				stripewebhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
				t.Errorf("forwarded signature does not verify with the Next.js secret: %v", err)
			}
			if d.ID != tt.id || d.Type != tt.typ {
				t.Errorf("receiver saw event %s %s, want %s %s", d.ID, d.Type, tt.id, tt.typ)
			}

			attrs := logAttrs(r.rec)
			for k, want := range map[string]string{
				"event_id": tt.id, "event_type": tt.typ, "forward_attempts": "1", "webhook_outcome": "forwarded",
			} {
				if got := attrs[k]; got != want {
					t.Errorf("log %s = %q, want %q", k, got, want)
				}
			}
			checkNoLeak(t, r, inbound)
			if got, want := events(t, s, tt.typ, "forwarded"), 1.0; got != want {
				t.Errorf("events{%s,forwarded} = %v, want %v", tt.typ, got, want)
			}
			if got, want := attempts(t, s, "success"), 1.0; got != want {
				t.Errorf("attempts{success} = %v, want %v", got, want)
			}
			if got, want := metricstest.Value(t, s.reg, "payments_api_webhook_forward_duration_seconds", map[string]string{"outcome": "success"}), 1.0; got != want {
				t.Errorf("forward duration observations = %v, want %v", got, want)
			}
		})
	}
}

func TestIgnoresOtherTypes(t *testing.T) {
	s := newStack(t, stackConfig{})
	for i, typ := range []string{"customer.created", "invoice.paid", "payment_intent.succeeded", "checkout.session.expired", "checkout.session.completed.v2"} {
		id := fmt.Sprintf("evt_other_%d", i)
		body := event(id, typ, "2025-09-30.clover")
		r := s.post(t, body, webhooktest.Sign(body, stripeSecret, time.Now()))
		checkReceived(t, r, false)
		attrs := logAttrs(r.rec)
		if got, want := attrs["event_id"], id; got != want {
			t.Errorf("log event_id = %q, want %q", got, want)
		}
		if got, want := attrs["webhook_outcome"], "ignored"; got != want {
			t.Errorf("log webhook_outcome = %q, want %q", got, want)
		}
		checkNoLeak(t, r)
	}
	if got := s.next.Requests(); got != 0 {
		t.Errorf("receiver got %d requests for ignored types, want 0", got)
	}
	if got, want := events(t, s, "other", "ignored"), 5.0; got != want {
		t.Errorf("events{other,ignored} = %v, want %v", got, want)
	}
	if got := events(t, s, "customer.created", "ignored"); got != 0 {
		t.Errorf("an unlisted type got its own label (%v)", got)
	}
}

func TestRejectsBadSignatures(t *testing.T) {
	now := time.Now()
	body := event("evt_sig", "checkout.session.completed", "2023-10-16")
	good := webhooktest.Sign(body, stripeSecret, now)
	goodV1 := good[strings.Index(good, "v1=")+3:]
	tampered := bytes.Replace(body, []byte(`"amount_total":2900`), []byte(`"amount_total":1`), 1)

	tests := []struct {
		name       string
		header     string
		body       []byte // body when not the signed one
		wantDetail string
	}{
		{"missing header", "", nil, "The Stripe-Signature header is missing."},
		{"garbage header", "garbage", nil, "The Stripe-Signature header is malformed."},
		{"timestamp not a number", "t=soon,v1=" + goodV1, nil, "The Stripe-Signature header is malformed."},
		{"no timestamp", "v1=" + goodV1, nil, "The Stripe-Signature header is malformed."},
		{"wrong secret", webhooktest.Sign(body, "whsec_someone_else", now), nil, "No v1 signature in the Stripe-Signature header matches the body."},
		{"v0 only", webhooktest.SignScheme(body, stripeSecret, now, "v0"), nil, "The Stripe-Signature header has no v1 signature."},
		{"v1 not hex", fmt.Sprintf("t=%d,v1=not-hex", now.Unix()), nil, "No v1 signature in the Stripe-Signature header matches the body."},
		{"signature for another timestamp", fmt.Sprintf("t=%d,v1=%s", now.Unix()-1, goodV1), nil, "No v1 signature in the Stripe-Signature header matches the body."},
		{"tampered body", good, tampered, "No v1 signature in the Stripe-Signature header matches the body."},
		{"stale timestamp", webhooktest.Sign(body, stripeSecret, now.Add(-10*time.Minute)), nil, "The Stripe-Signature timestamp is too old."},
		{"stale just beyond tolerance", webhooktest.Sign(body, stripeSecret, now.Add(-310*time.Second)), nil, "The Stripe-Signature timestamp is too old."},
		{"future timestamp", webhooktest.Sign(body, stripeSecret, now.Add(10*time.Minute)), nil, "The Stripe-Signature timestamp is in the future."},
		{"future just beyond tolerance", webhooktest.Sign(body, stripeSecret, now.Add(310*time.Second)), nil, "The Stripe-Signature timestamp is in the future."},
	}
	s := newStack(t, stackConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := body
			if tt.body != nil {
				sent = tt.body
			}
			r := s.post(t, sent, tt.header)
			checkProblem(t, r, http.StatusBadRequest, tt.wantDetail)
			checkNoLeak(t, r, goodV1, "evt_sig", tt.header)
			attrs := logAttrs(r.rec)
			if _, ok := attrs["event_id"]; ok {
				t.Error("an unverified event id was logged")
			}
			if got, want := attrs["webhook_outcome"], "invalid_signature"; got != want {
				t.Errorf("log webhook_outcome = %q, want %q", got, want)
			}
		})
	}
	if got := s.next.Requests(); got != 0 {
		t.Errorf("receiver got %d requests for bad signatures, want 0", got)
	}
	if got, want := events(t, s, "other", "invalid_signature"), float64(len(tests)); got != want {
		t.Errorf("events{other,invalid_signature} = %v, want %v", got, want)
	}
}

func TestFutureCheckUsesTheInjectedClock(t *testing.T) {
	body := event("evt_clock", "checkout.session.completed", "2023-10-16")
	header := webhooktest.Sign(body, stripeSecret, time.Now())
	tests := []struct {
		name       string
		clock      time.Duration // offset of the handler's clock from the wall clock
		wantStatus int
	}{
		{"clock in step", 0, http.StatusOK},
		{"clock 10 minutes behind: the signature is from its future", -10 * time.Minute, http.StatusBadRequest},
		{"clock 4 minutes behind", -4 * time.Minute, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := webhook.Handler(webhook.Options{
				Secret: stripeSecret, ForwardTypes: forwardTypes, Forwarder: nopForwarder{},
				Now: func() time.Time { return time.Now().Add(tt.clock) },
			})
			w := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(body))
			req.Header.Set("Stripe-Signature", header)
			h.ServeHTTP(w, req)
			if got, want := w.Code, tt.wantStatus; got != want {
				t.Errorf("status = %d, want %d (%s)", got, want, w.Body)
			}
		})
	}
}

func TestAcceptsValidSignatureVariants(t *testing.T) {
	now := time.Now()
	body := event("evt_variant", "checkout.session.completed", "2023-10-16")
	good := webhooktest.Sign(body, stripeSecret, now)
	goodV1 := good[strings.Index(good, "v1=")+3:]
	badV1 := strings.Repeat("ab", 32)
	tests := []struct{ name, header string }{
		{"one bad and one good v1 (secret roll)", fmt.Sprintf("t=%d,v1=%s,v1=%s", now.Unix(), badV1, goodV1)},
		{"v0 beside a good v1", fmt.Sprintf("t=%d,v1=%s,v0=%s", now.Unix(), goodV1, badV1)},
		{"unknown scheme beside a good v1", fmt.Sprintf("t=%d,v9=x,v1=%s", now.Unix(), goodV1)},
		{"4 minutes old", webhooktest.Sign(body, stripeSecret, now.Add(-4*time.Minute))},
		{"4 minutes ahead", webhooktest.Sign(body, stripeSecret, now.Add(4*time.Minute))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackConfig{})
			r := s.post(t, body, tt.header)
			checkReceived(t, r, true)
			if got, want := len(s.next.Processed()), 1; got != want {
				t.Errorf("receiver processed %d events, want %d", got, want)
			}
		})
	}
}

// sized returns a signed-able forward-type event of exactly n bytes.
func sized(t *testing.T, n int) []byte {
	t.Helper()
	head := `{"id":"evt_big","object":"event","type":"checkout.session.completed","data":{"object":{"object":"checkout.session","metadata":{"pad":"`
	tail := `"}}}}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("cannot build a %d-byte event", n)
	}
	b := []byte(head + strings.Repeat("x", pad) + tail)
	if len(b) != n || !json.Valid(b) {
		t.Fatalf("built a bad %d-byte event", len(b))
	}
	return b
}

// chunked hides the length of a body so the request is sent chunked.
type chunked struct{ io.Reader }

func TestBodySizeLimit(t *testing.T) {
	atLimit := sized(t, webhook.MaxBodyBytes)
	beyond := sized(t, webhook.MaxBodyBytes+1)
	if got, want := webhook.MaxBodyBytes, 512*1024; got != want {
		t.Fatalf("MaxBodyBytes = %d, want %d", got, want)
	}

	t.Run("exactly 512 KiB is forwarded", func(t *testing.T) {
		s := newStack(t, stackConfig{})
		r := s.post(t, atLimit, webhooktest.Sign(atLimit, stripeSecret, time.Now()))
		checkReceived(t, r, true)
		d := s.next.Deliveries()
		if len(d) != 1 || !bytes.Equal(d[0].Body, atLimit) {
			t.Errorf("receiver did not get the 512 KiB body intact")
		}
	})
	t.Run("exactly 512 KiB, chunked, is forwarded", func(t *testing.T) {
		s := newStack(t, stackConfig{})
		r := s.do(t, context.Background(), chunked{bytes.NewReader(atLimit)}, webhooktest.Sign(atLimit, stripeSecret, time.Now()))
		checkReceived(t, r, true)
	})
	for _, tt := range []struct {
		name string
		body io.Reader
	}{
		{"one byte beyond, with Content-Length", bytes.NewReader(beyond)},
		{"one byte beyond, chunked", chunked{bytes.NewReader(beyond)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackConfig{})
			r := s.do(t, context.Background(), tt.body, webhooktest.Sign(beyond, stripeSecret, time.Now()))
			checkProblem(t, r, http.StatusRequestEntityTooLarge, "The event body is larger than 512 KiB.")
			if got := s.next.Requests(); got != 0 {
				t.Errorf("receiver got %d requests, want 0", got)
			}
			if got, want := events(t, s, "other", "too_large"), 1.0; got != want {
				t.Errorf("events{other,too_large} = %v, want %v", got, want)
			}
		})
	}
}

func TestRejectsUnparsableEvents(t *testing.T) {
	tests := []struct {
		name, body, wantDetail string
	}{
		{"not JSON", "this is not json " + email, "The event body is not a valid Stripe event."},
		{"truncated JSON", `{"id":"evt_cut","type":"checkout.session.completed","data":{"object":{"customer_email":"` + email, "The event body is not a valid Stripe event."},
		{"data.object not an object", `{"id":"evt_x","type":"checkout.session.completed","data":{"object":"` + email + `"}}`, "The event body is not a valid Stripe event."},
		{"id of the wrong type", `{"id":42,"type":"checkout.session.completed","data":{"object":{}}}`, "The event body is not a valid Stripe event."},
		{"empty body", "", "The event body is not a valid Stripe event."},
		{"no id", `{"type":"checkout.session.completed","data":{"object":{"customer_email":"` + email + `"}}}`, "The event has no id or type."},
		{"no type", `{"id":"evt_notype","data":{"object":{}}}`, "The event has no id or type."},
		{"null", `null`, "The event has no id or type."},
	}
	s := newStack(t, stackConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			sig := webhooktest.Sign(body, stripeSecret, time.Now())
			r := s.post(t, body, sig)
			checkProblem(t, r, http.StatusBadRequest, tt.wantDetail)
			checkNoLeak(t, r, sig)
			if got, want := logAttrs(r.rec)["webhook_outcome"], "invalid_payload"; got != want {
				t.Errorf("log webhook_outcome = %q, want %q", got, want)
			}
		})
	}
	if got := s.next.Requests(); got != 0 {
		t.Errorf("receiver got %d requests, want 0", got)
	}
	if got, want := events(t, s, "other", "invalid_payload"), float64(len(tests)); got != want {
		t.Errorf("events{other,invalid_payload} = %v, want %v", got, want)
	}
}

func post(t *testing.T, s *stack, id string) response {
	t.Helper()
	body := event(id, "checkout.session.completed", "2025-09-30.clover")
	return s.post(t, body, webhooktest.Sign(body, stripeSecret, time.Now()))
}

func TestRetriesUntilNextJSTakesTheEvent(t *testing.T) {
	statuses := []int{http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusOK}
	s := newStack(t, stackConfig{nextOpts: []fakenext.Option{fakenext.WithRespond(func(n int) int { return statuses[min(n, len(statuses))-1] })}})
	r := post(t, s, "evt_flaky")
	checkReceived(t, r, true)

	got := s.next.Deliveries()
	if len(got) != 3 {
		t.Fatalf("receiver got %d verified deliveries, want 3", len(got))
	}
	for i, d := range got {
		if d.Status != statuses[i] || d.ID != "evt_flaky" || d.Header.Get("Idempotency-Key") != "evt_flaky" {
			t.Errorf("delivery %d = %s status %d key %q, want evt_flaky status %d", i+1, d.ID, d.Status, d.Header.Get("Idempotency-Key"), statuses[i])
		}
	}
	if got, want := logAttrs(r.rec)["forward_attempts"], "3"; got != want {
		t.Errorf("log forward_attempts = %q, want %q", got, want)
	}
	if got, want := attempts(t, s, "retryable_status"), 2.0; got != want {
		t.Errorf("attempts{retryable_status} = %v, want %v", got, want)
	}
	if got, want := attempts(t, s, "success"), 1.0; got != want {
		t.Errorf("attempts{success} = %v, want %v", got, want)
	}
}

func TestRedeliveryIsForwardedAgain(t *testing.T) {
	s := newStack(t, stackConfig{})
	for range 2 {
		checkReceived(t, post(t, s, "evt_twice"), true)
	}
	d := s.next.Deliveries()
	if len(d) != 2 || d[0].Duplicate || !d[1].Duplicate {
		t.Fatalf("deliveries = %+v, want the second marked duplicate", d)
	}
	if got, want := len(s.next.Processed()), 1; got != want {
		t.Errorf("processed %d times, want %d", got, want)
	}
}

func TestFailedForwardAnswers502(t *testing.T) {
	const detail = "The event could not be delivered to the application; it will be accepted on redelivery."
	tests := []struct {
		name         string
		cfg          stackConfig
		wantAttempts func(n int) bool // n = attempts reported in the log
		wantOutcome  string           // attempt outcome counted at least once
		// logged is what the logged error may name, when not wantOutcome alone.
		logged []string
	}{
		{
			name:         "always failing: retried within the budget",
			cfg:          stackConfig{timeout: time.Second, nextOpts: []fakenext.Option{fakenext.WithRespond(func(int) int { return 500 })}},
			wantAttempts: func(n int) bool { return n >= 2 },
			wantOutcome:  "retryable_status",
			// The budget may run out during an attempt or a wait, not only after a 500.
			logged: []string{"retryable_status", "timeout"},
		},
		{
			name:         "answering 400: exactly one attempt",
			cfg:          stackConfig{nextOpts: []fakenext.Option{fakenext.WithRespond(func(int) int { return 400 })}},
			wantAttempts: func(n int) bool { return n == 1 },
			wantOutcome:  "rejected",
		},
		{
			name:         "answering 410: exactly one attempt",
			cfg:          stackConfig{nextOpts: []fakenext.Option{fakenext.WithRespond(func(int) int { return 410 })}},
			wantAttempts: func(n int) bool { return n == 1 },
			wantOutcome:  "rejected",
		},
		{
			name:         "hanging: given up at the budget",
			cfg:          stackConfig{timeout: 200 * time.Millisecond, nextOpts: []fakenext.Option{fakenext.WithDelay(func(int) time.Duration { return time.Hour })}},
			wantAttempts: func(n int) bool { return n == 1 },
			wantOutcome:  "timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, tt.cfg)
			r := post(t, s, "evt_fail")
			checkProblem(t, r, http.StatusBadGateway, detail)
			checkNoLeak(t, r)

			attrs := logAttrs(r.rec)
			var n int
			fmt.Sscan(attrs["forward_attempts"], &n)
			if !tt.wantAttempts(n) {
				t.Errorf("forward_attempts = %d, unexpected", n)
			}
			// Every attempt the receiver answered is counted there; an attempt cut
			// at the budget may not have reached its handler yet.
			got := s.next.Requests()
			if got > n || (tt.wantOutcome == "rejected" && got != n) {
				t.Errorf("receiver got %d requests, log says %d attempts", got, n)
			}
			if got, want := attrs["webhook_outcome"], "forward_failed"; got != want {
				t.Errorf("log webhook_outcome = %q, want %q", got, want)
			}
			logged := tt.logged
			if logged == nil {
				logged = []string{tt.wantOutcome}
			}
			if !slices.ContainsFunc(logged, func(o string) bool { return strings.Contains(attrs["error"], o) }) {
				t.Errorf("log error = %q, want it to name one of %q", attrs["error"], logged)
			}
			if got := attempts(t, s, tt.wantOutcome); got < 1 {
				t.Errorf("attempts{%s} = %v, want ≥ 1", tt.wantOutcome, got)
			}
			if got, want := events(t, s, "checkout.session.completed", "forward_failed"), 1.0; got != want {
				t.Errorf("events{checkout.session.completed,forward_failed} = %v, want %v", got, want)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	target := fakenext.New(nextSecret)
	targetSrv := httptest.NewServer(target)
	defer targetSrv.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			var hits atomic.Int64
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				http.Redirect(w, r, targetSrv.URL+"/api/payments/webhook", code)
			}))
			defer redirector.Close()
			s := newStack(t, stackConfig{nextURL: redirector.URL + "/api/payments/webhook"})
			r := post(t, s, "evt_redirect")
			checkProblem(t, r, http.StatusBadGateway, "The event could not be delivered to the application; it will be accepted on redelivery.")
			if got, want := hits.Load(), int64(1); got != want {
				t.Errorf("redirector got %d requests, want %d (no retry)", got, want)
			}
			if got, want := attempts(t, s, "redirected"), 1.0; got != want {
				t.Errorf("attempts{redirected} = %v, want %v", got, want)
			}
		})
	}
	if got := target.Requests(); got != 0 {
		t.Errorf("redirect target got %d requests, want 0", got)
	}
}

// arrivals signals each request reaching the receiver before it is handled.
func arrivals(ch chan<- int, gate <-chan struct{}) func(http.Handler) http.Handler {
	var n atomic.Int64
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ch <- int(n.Add(1))
			if gate != nil {
				<-gate
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestStripeHangingUpStopsRetries(t *testing.T) {
	arrived := make(chan int, 16)
	s := newStack(t, stackConfig{
		timeout:  time.Minute, // the budget is not what stops it
		wrapNext: arrivals(arrived, nil),
		nextOpts: []fakenext.Option{
			fakenext.WithRespond(func(int) int { return 503 }),
			// The second attempt hangs until its request is cancelled.
			fakenext.WithDelay(func(n int) time.Duration {
				if n == 2 {
					return time.Hour
				}
				return 0
			}),
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	body := event("evt_hangup", "checkout.session.completed", "2023-10-16")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", webhooktest.Sign(body, stripeSecret, time.Now()))
	errc := make(chan error, 1)
	go func() {
		resp, err := s.api.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for n := range arrived {
		if n == 2 {
			break
		}
	}
	cancel() // Stripe closes the connection mid-forward.
	if err := <-errc; err == nil {
		t.Error("the cancelled client request succeeded")
	}

	rec := s.record(t) // the handler returned, long before the one-minute budget
	if got, want := logAttrs(rec)["forward_attempts"], "2"; got != want {
		t.Errorf("forward_attempts = %q, want %q", got, want)
	}
	// Arrivals are counted by the wrapper before the receiver runs, so this
	// cannot lag behind the forwarder the way the receiver's own count can.
	select {
	case n := <-arrived:
		t.Errorf("request %d reached the receiver: retries went on after the hang-up", n)
	default:
	}
	if got, want := attempts(t, s, "canceled"), 1.0; got != want {
		t.Errorf("attempts{canceled} = %v, want %v", got, want)
	}
}

func TestShutdownLetsInFlightForwardFinish(t *testing.T) {
	arrived := make(chan int, 1)
	gate := make(chan struct{})
	var srv *http.Server
	s := newStack(t, stackConfig{
		wrapNext: arrivals(arrived, gate),
		newServer: func(h http.Handler) *httptest.Server {
			ts := httptest.NewUnstartedServer(h)
			srv = ts.Config
			return ts
		},
	})
	s.api.Start()

	respc := make(chan response, 1)
	go func() {
		body := event("evt_shutdown", "checkout.session.completed", "2023-10-16")
		req, _ := http.NewRequest(http.MethodPost, s.api.URL, bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", webhooktest.Sign(body, stripeSecret, time.Now()))
		resp, err := s.api.Client().Do(req)
		if err != nil {
			respc <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		respc <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	<-arrived

	// SIGTERM: Shutdown starts while the forward is in flight. The server's
	// BaseContext is not the signal context, so the request context lives on.
	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- srv.Shutdown(ctx)
	}()
	// The listener closes at once; a new connection must be refused.
	waitClosed(t, s.api.Listener.Addr().String())
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned (%v) while a forward was in flight", err)
	default:
	}

	close(gate)
	r := <-respc
	r.rec = s.record(t)
	checkReceived(t, r, true)
	if err := <-shutdownDone; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if got, want := len(s.next.Processed()), 1; got != want {
		t.Errorf("receiver processed %d events, want %d", got, want)
	}
}

// waitClosed waits until addr refuses connections.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the listener still accepts connections after Shutdown started")
}

func TestHandlerPanicsOnMissingDependencies(t *testing.T) {
	for _, opts := range []webhook.Options{
		{Forwarder: nopForwarder{}},
		{Secret: stripeSecret},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handler(%+v) did not panic", opts)
				}
			}()
			webhook.Handler(opts)
		}()
	}
}

type nopForwarder struct{}

func (nopForwarder) Forward(context.Context, string, []byte) (int, error) { return 1, nil }
