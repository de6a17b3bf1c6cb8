package billing

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/problemtest"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

const (
	testRequestID  = "req-test-1"
	testSuccessURL = "https://app.example.com/checkout/success?session_id={CHECKOUT_SESSION_ID}"
	testCancelURL  = "https://app.example.com/pricing"
	testReturnURL  = "https://app.example.com/account"
	priceSub       = "price_sub123"     // recurring, as stripe-mock answers every price
	priceOnce      = "price_once123"    // one-time, through the proxy
	priceInactive  = "price_inactive12" // inactive, through the proxy
	priceMissing   = "price_missing12"  // the proxy answers Stripe's 404
)

var (
	ada = auth.Identity{UserID: "user_2ada", SessionID: "sess_1", Email: "ada@example.com"}
	bob = auth.Identity{UserID: "user_2bob", SessionID: "sess_2"}
)

// leaks are strings of Stripe's or the machine's that must never reach a client.
var leaks = []string{
	"stripe-mock", "stripetest", "validator", "invalid_request_error", "api_error", "idempotency_error",
	"resource_missing", "No such", "sk_test", "127.0.0.1", "Stripe-Secret-Text", "ada@example.com",
	"cus_", "database",
}

var testOrigins = mustOrigins("https://app.example.com", "http://localhost:3000")

func mustOrigins(list ...string) origin.Set {
	s, err := origin.NewSet(list)
	if err != nil {
		panic(err)
	}
	return s
}

// newProxy starts a stateful proxy in front of mock that knows the test's
// one-time, inactive and missing prices.
func newProxy(t testing.TB, mock *stripemock.Server) *stripetest.Proxy {
	t.Helper()
	p := stripetest.Start(t, mock.URL)
	p.SetPrice(priceOnce, stripetest.Price{OneTime: true})
	p.SetPrice(priceInactive, stripetest.Price{Inactive: true})
	p.SetPrice(priceMissing, stripetest.Price{Missing: true})
	return p
}

// addCustomer gives who a customer in proxy as the service makes it: with
// the token's email and the user id in its metadata, so that search finds it.
// It returns the customer's id.
func addCustomer(proxy *stripetest.Proxy, who auth.Identity) string {
	return proxy.AddCustomer(who.Email, map[string]string{"clerk_user_id": who.UserID})
}

func newStripeClient(t testing.TB, apiURL string, timeout time.Duration, retries int) *StripeClient {
	t.Helper()
	c, err := NewStripeClient(StripeOptions{SecretKey: stripemock.Key, APIURL: mustURL(t, apiURL), Timeout: timeout, MaxRetries: retries})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustURL parses raw, as the configuration hands out STRIPE_API_URL.
func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// config is what a stack is built from; the zero value of a field means the
// test's default.
type config struct {
	stripe             Stripe
	store              CustomerStore
	limiter            Limiter
	promo              bool
	trialDays          int
	single             bool
	portalConfig       string
	now                func() time.Time
	priceTTL, cacheTTL time.Duration
	maxCachedUsers     int
	budget             time.Duration // StripeBudget of the three handlers
}

// stack is the three handlers wired as the service wires them: one Stripe
// port, one customer rule, one limiter, one registry.
type stack struct {
	checkout     http.Handler
	portal       http.Handler
	subscription http.Handler
	reg          *prometheus.Registry
}

func newStack(t testing.TB, c config) *stack {
	t.Helper()
	reg := prometheus.NewRegistry()
	customers, err := NewCustomers(CustomerOptions{Stripe: c.stripe, Store: c.store, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	co := CheckoutOptions{
		Stripe:              c.stripe,
		Customers:           customers,
		Limiter:             c.limiter,
		PriceIDs:            []string{priceSub, priceOnce, priceInactive, priceMissing},
		Origins:             testOrigins,
		SuccessURL:          testSuccessURL,
		CancelURL:           testCancelURL,
		AllowPromotionCodes: c.promo,
		TrialDays:           c.trialDays,
		SingleSubscription:  c.single,
		PriceTTL:            c.priceTTL,
		StripeBudget:        c.budget,
		Registerer:          reg,
		Now:                 c.now,
	}
	s := &stack{reg: reg}
	if s.checkout, err = CheckoutHandler(co); err != nil {
		t.Fatalf("checkout: %v", err)
	}
	if s.portal, err = PortalHandler(PortalOptions{
		Stripe: c.stripe, Customers: customers, Limiter: c.limiter, Origins: testOrigins,
		ReturnURL: testReturnURL, Configuration: c.portalConfig, StripeBudget: c.budget, Registerer: reg,
	}); err != nil {
		t.Fatalf("portal: %v", err)
	}
	if s.subscription, err = SubscriptionHandler(SubscriptionOptions{
		Stripe: c.stripe, Customers: customers, CacheTTL: c.cacheTTL, MaxCachedUsers: c.maxCachedUsers,
		StripeBudget: c.budget, Now: c.now,
	}); err != nil {
		t.Fatalf("subscription: %v", err)
	}
	return s
}

// newRequest builds a request as who (nil: no identity), with a request log
// record as the middleware would make.
func newRequest(method, path string, who *auth.Identity, contentType, body string, header http.Header) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
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

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// call sends one checkout request as who (nil: no identity).
func (s *stack) call(who *auth.Identity, contentType, body string, header http.Header) *httptest.ResponseRecorder {
	return serve(s.checkout, newRequest(http.MethodPost, "/stripe/checkout", who, contentType, body, header))
}

// post sends a JSON checkout request as who.
func (s *stack) post(who auth.Identity, body string) *httptest.ResponseRecorder {
	return s.call(&who, "application/json", body, nil)
}

// openPortal sends POST /stripe/portal as who.
func (s *stack) openPortal(who auth.Identity, contentType, body string) *httptest.ResponseRecorder {
	return serve(s.portal, newRequest(http.MethodPost, "/stripe/portal", &who, contentType, body, nil))
}

// state sends GET /stripe/subscription as who.
func (s *stack) state(who auth.Identity) *httptest.ResponseRecorder {
	return serve(s.subscription, newRequest(http.MethodGet, "/stripe/subscription", &who, "", "", nil))
}

// count returns the counter name{outcome}.
func (s *stack) count(t testing.TB, name, outcome string) float64 {
	t.Helper()
	return metricstest.Value(t, s.reg, name, map[string]string{"outcome": outcome})
}

func (s *stack) sessions(t testing.TB, outcome string) float64 {
	t.Helper()
	return s.count(t, "payments_api_checkout_sessions_total", outcome)
}

func (s *stack) customers(t testing.TB, outcome string) float64 {
	t.Helper()
	return s.count(t, "payments_api_customers_total", outcome)
}

// wantProblem checks that w is the problem document for status, whose detail
// contains detail, and that nothing of Stripe's leaked into it.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, detail string) problem.Body {
	t.Helper()
	if got := w.Code; got != status {
		t.Fatalf("status = %d, want %d; body %s", got, status, w.Body)
	}
	for _, l := range leaks {
		if strings.Contains(w.Body.String(), l) {
			t.Errorf("problem body leaks %q: %s", l, w.Body)
		}
	}
	got := problemtest.Decode(t, problemtest.Recorded(w))
	if got.RequestID != testRequestID {
		t.Errorf("request_id = %q, want %q", got.RequestID, testRequestID)
	}
	if !strings.Contains(got.Detail, detail) {
		t.Errorf("detail = %q, want it to contain %q", got.Detail, detail)
	}
	return got
}

// decodeOK checks a 200 JSON answer and decodes it strictly into v.
func decodeOK(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
}

// wantSession checks a 200 checkout answer and returns it.
func wantSession(t testing.TB, w *httptest.ResponseRecorder) checkoutResponse {
	t.Helper()
	var got checkoutResponse
	decodeOK(t, w, &got)
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

// memStore is a CustomerStore in memory, standing in for the database. fail
// makes every call fail; block makes every call wait for its context, as a
// database that does not answer.
type memStore struct {
	mu        sync.Mutex
	customers map[string]string
	fail      bool
	block     bool
	deadlines []time.Duration // the budget each call was given
	saves     int
}

var _ CustomerStore = (*memStore)(nil)

var errStoreDown = errors.New("database at 10.0.0.5 refused the connection")

func newMemStore(seed map[string]string) *memStore {
	m := &memStore{customers: make(map[string]string)}
	for k, v := range seed {
		m.customers[k] = v
	}
	return m
}

func (m *memStore) enter(ctx context.Context) error {
	m.mu.Lock()
	if d, ok := ctx.Deadline(); ok {
		m.deadlines = append(m.deadlines, time.Until(d))
	} else {
		m.deadlines = append(m.deadlines, -1)
	}
	fail, block := m.fail, m.block
	m.mu.Unlock()
	switch {
	case block:
		<-ctx.Done()
		return ctx.Err()
	case fail:
		return errStoreDown
	}
	return nil
}

func (m *memStore) Customer(ctx context.Context, userID string) (string, error) {
	if err := m.enter(ctx); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.customers[userID], nil
}

func (m *memStore) SaveCustomer(ctx context.Context, userID, customerID string) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	if _, ok := m.customers[userID]; !ok {
		m.customers[userID] = customerID
	}
	return nil
}

func (m *memStore) get(userID string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.customers[userID]
}

// calls returns the number of calls made to the store.
func (m *memStore) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.deadlines)
}

// maxDeadline returns the largest budget a call was given; -1 when a call had
// none.
func (m *memStore) maxDeadline() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var most time.Duration
	for _, d := range m.deadlines {
		if d < 0 {
			return -1
		}
		most = max(most, d)
	}
	return most
}

// stripeError is an intercept that answers Stripe's error for calls matching
// method and path prefix, with a message that must never leak.
func stripeError(method, pathPrefix string, status int, typ, code string) func(*http.Request) *stripetest.Answer {
	return func(r *http.Request) *stripetest.Answer {
		if r.Method != method || !strings.HasPrefix(r.URL.Path, pathPrefix) {
			return nil
		}
		return &stripetest.Answer{Status: status, Body: `{"error":{"type":"` + typ + `","code":"` + code + `","message":"Stripe-Secret-Text about ada@example.com"}}`}
	}
}
