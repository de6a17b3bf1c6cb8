package billing

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/stripemock"
)

const (
	testRequestID  = "req-test-1"
	testSuccessURL = "https://app.example.com/checkout/success?session_id={CHECKOUT_SESSION_ID}"
	testCancelURL  = "https://app.example.com/pricing"
	priceSub       = "price_sub123"     // recurring, as stripe-mock answers every price
	priceOnce      = "price_once123"    // rewritten to one-time by the proxy
	priceInactive  = "price_inactive12" // rewritten to active=false by the proxy
	priceMissing   = "price_missing12"  // the proxy answers Stripe's 404
)

var (
	ada = auth.Identity{UserID: "user_2ada", SessionID: "sess_1", Email: "ada@example.com"}
	bob = auth.Identity{UserID: "user_2bob", SessionID: "sess_2"}
)

// leaks are strings of Stripe's or the machine's that must never reach a client.
var leaks = []string{
	"stripe-mock", "validator", "invalid_request_error", "api_error", "idempotency_error",
	"resource_missing", "No such price", "sk_test", "127.0.0.1", "Stripe-Secret-Text", "ada@example.com",
}

// stripeCall is one request that reached (the proxy in front of) Stripe.
type stripeCall struct {
	Method         string
	Path           string
	Form           url.Values
	IdempotencyKey string
	UserAgent      string
}

// cannedAnswer is a response the proxy gives instead of asking stripe-mock.
type cannedAnswer struct {
	status int
	body   string
}

// recordingProxy sits between the adapter and stripe-mock. It records what
// reaches Stripe and bends stripe-mock's fixtures where stripe-mock cannot
// (one-time, inactive and missing prices, Stripe failures).
type recordingProxy struct {
	URL string

	delay      time.Duration                       // before answering anything
	answer     func(r *http.Request) *cannedAnswer // nil or a nil answer: forward
	holdPrices chan struct{}                       // price lookups wait for it to close
	priceSeen  chan struct{}                       // signalled on each price lookup

	mu    sync.Mutex
	calls []stripeCall
}

type proxyOption func(*recordingProxy)

func newRecordingProxy(t *testing.T, mockURL string, opts ...proxyOption) *recordingProxy {
	t.Helper()
	target, err := url.Parse(mockURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	for _, o := range opts {
		o(p)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ModifyResponse: rewritePrice,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("proxy: read body: %v", err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form := r.URL.Query()
		if r.Method == http.MethodPost {
			if form, err = url.ParseQuery(string(body)); err != nil {
				t.Errorf("proxy: body is not a form: %v", err)
			}
		}
		p.mu.Lock()
		p.calls = append(p.calls, stripeCall{
			Method: r.Method, Path: r.URL.Path, Form: form,
			IdempotencyKey: r.Header.Get("Idempotency-Key"), UserAgent: r.Header.Get("User-Agent"),
		})
		p.mu.Unlock()

		if strings.HasPrefix(r.URL.Path, "/v1/prices/") {
			if p.priceSeen != nil {
				p.priceSeen <- struct{}{}
			}
			if p.holdPrices != nil {
				<-p.holdPrices
			}
		}
		if p.delay > 0 {
			select {
			case <-time.After(p.delay):
			case <-r.Context().Done():
				return
			}
		}
		if p.answer != nil {
			if a := p.answer(r); a != nil {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Request-Id", "req_canned")
				w.WriteHeader(a.status)
				_, _ = io.WriteString(w, a.body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// rewritePrice turns stripe-mock's always-recurring, always-active Price into
// the one the test needs.
func rewritePrice(res *http.Response) error {
	id, ok := strings.CutPrefix(res.Request.URL.Path, "/v1/prices/")
	if !ok || res.StatusCode != http.StatusOK || (id != priceOnce && id != priceInactive) {
		return nil
	}
	var price map[string]any
	if err := json.NewDecoder(res.Body).Decode(&price); err != nil {
		return err
	}
	res.Body.Close()
	switch id {
	case priceOnce:
		price["type"] = "one_time"
		price["recurring"] = nil
	case priceInactive:
		price["active"] = false
	}
	b, err := json.Marshal(price)
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	res.ContentLength = int64(len(b))
	res.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return nil
}

// missingPrice answers a lookup of priceMissing as Stripe does.
func missingPrice(r *http.Request) *cannedAnswer {
	if r.URL.Path != "/v1/prices/"+priceMissing {
		return nil
	}
	return &cannedAnswer{http.StatusNotFound, `{"error":{"code":"resource_missing","doc_url":"https://stripe.com/docs/error-codes/resource-missing","message":"No such price: 'price_missing12'","param":"id","type":"invalid_request_error"}}`}
}

func (p *recordingProxy) recorded() []stripeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]stripeCall(nil), p.calls...)
}

// sessionCalls returns the recorded session creations.
func (p *recordingProxy) sessionCalls() []stripeCall {
	var out []stripeCall
	for _, c := range p.recorded() {
		if c.Method == http.MethodPost && c.Path == "/v1/checkout/sessions" {
			out = append(out, c)
		}
	}
	return out
}

func (p *recordingProxy) priceLookups() int {
	n := 0
	for _, c := range p.recorded() {
		if strings.HasPrefix(c.Path, "/v1/prices/") {
			n++
		}
	}
	return n
}

// stack is a handler wired to a Stripe API through the real adapter.
type stack struct {
	h   *handler
	reg *prometheus.Registry
}

func testOptions(s Stripe) Options {
	return Options{
		Stripe:         s,
		PriceIDs:       []string{priceSub, priceOnce, priceInactive, priceMissing},
		SuccessURL:     testSuccessURL,
		CancelURL:      testCancelURL,
		AllowedOrigins: []string{"https://app.example.com", "http://localhost:3000"},
		RateLimit:      rate.Inf,
	}
}

func newStripeClient(t testing.TB, apiURL string, timeout time.Duration, retries int) *StripeClient {
	t.Helper()
	c, err := NewStripeClient(StripeOptions{SecretKey: stripemock.Key, APIURL: apiURL, Timeout: timeout, MaxRetries: retries})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newStack(t testing.TB, o Options) *stack {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	h, err := newHandler(o)
	if err != nil {
		t.Fatalf("newHandler: %v", err)
	}
	return &stack{h: h, reg: reg}
}

// newRequest builds a checkout request as who (nil: no identity), with a
// request log record as the middleware would make.
func newRequest(who *auth.Identity, contentType, body string, header http.Header) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/stripe/checkout", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	ctx, _ := requestlog.New(r.Context(), testRequestID)
	if who != nil {
		ctx = auth.WithIdentity(ctx, *who)
	}
	return r.WithContext(ctx)
}

func (s *stack) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

// call sends one checkout request as who (nil: no identity).
func (s *stack) call(who *auth.Identity, contentType, body string, header http.Header) *httptest.ResponseRecorder {
	return s.serve(newRequest(who, contentType, body, header))
}

func (s *stack) post(who auth.Identity, body string) *httptest.ResponseRecorder {
	return s.call(&who, "application/json", body, nil)
}

// count returns payments_api_checkout_sessions_total{outcome}.
func (s *stack) count(t testing.TB, outcome string) float64 {
	t.Helper()
	return metricstest.Value(t, s.reg, "payments_api_checkout_sessions_total", map[string]string{"outcome": outcome})
}

// wantProblem checks that w is the problem document for status, whose detail
// contains detail, and that nothing of Stripe's leaked into it.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, detail string) problem.Body {
	t.Helper()
	if got := w.Code; got != status {
		t.Fatalf("status = %d, want %d; body %s", got, status, w.Body)
	}
	if got, want := w.Header().Get("Content-Type"), problem.ContentType; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	raw := w.Body.String()
	for _, l := range leaks {
		if strings.Contains(raw, l) {
			t.Errorf("problem body leaks %q: %s", l, raw)
		}
	}
	var got problem.Body
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("problem body %q: %v", raw, err)
	}
	if got.Status != status || got.RequestID != testRequestID || got.Title != http.StatusText(status) {
		t.Errorf("problem = %+v, want status %d, title %q, request_id %q", got, status, http.StatusText(status), testRequestID)
	}
	if !strings.Contains(got.Detail, detail) {
		t.Errorf("detail = %q, want it to contain %q", got.Detail, detail)
	}
	return got
}

// wantSession checks a 200 answer and returns it.
func wantSession(t testing.TB, w *httptest.ResponseRecorder) response {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var got response
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	if !strings.HasPrefix(got.SessionID, "cs_") || !strings.HasPrefix(got.URL, "https://") {
		t.Errorf("response = %+v, want a cs_ id and an https URL", got)
	}
	return got
}

// closedPort returns a loopback URL nobody listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
