// Package stripetest is a stateful, recording stand-in for the Stripe API, in
// front of the real stripe-mock.
//
// stripe-mock validates every request against Stripe's OpenAPI spec but
// answers from fixtures: its Customer Search always finds one customer, a
// created customer is never seen again, every price is recurring and every
// customer has an active subscription. A Proxy passes each call to stripe-mock
// first, so that request shapes stay validated (stripe-mock's 400 for an
// unknown parameter comes back as is), then answers what Stripe itself would
// from the state it keeps:
//
//   - POST /v1/customers creates a customer; its Idempotency-Key replays the
//     same customer for the same parameters (Idempotent-Replayed: true) and is
//     an idempotency_error for other ones, as Stripe does.
//   - GET /v1/customers/search finds only customers created through the
//     Proxy or added with AddCustomer, on metadata['key']:'value' queries.
//     After HoldSearchIndex, new customers stay out of search until
//     IndexSearch, as Stripe's index lags by about a minute.
//   - GET /v1/customers/{id} knows only those customers (else 404).
//   - GET /v1/subscriptions lists the subscriptions added with
//     AddSubscription, newest first, all statuses with status=all, else those
//     not canceled; GET /v1/subscriptions/{id} knows only those (else 404).
//   - POST /v1/billing_portal/sessions and POST /v1/checkout/sessions refuse
//     an unknown customer (400 resource_missing).
//   - GET /v1/prices/{id} plays the one-time, inactive and missing prices set
//     with SetPrice.
//
// Everything else is stripe-mock's answer. Every call is recorded with its
// form fields (Calls). Intercept plays failures, delays and held calls.
//
// The package is for tests and the local sandbox; the production binary never
// contains it.
package stripetest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxCalls bounds the calls kept (the oldest are dropped), so that a
// long-running sandbox does not grow without end. No test makes as many.
const maxCalls = 10_000

// firstCreated is the creation time of the first object the Proxy makes; each
// later one is a second newer, so that "newest first" is well defined.
const firstCreated = 1767225600 // 2026-01-01T00:00:00Z

// Call is one request that reached the Proxy.
type Call struct {
	Method string
	Path   string
	// Form holds the form fields of a POST, or the query of any other method.
	Form           url.Values
	IdempotencyKey string
	UserAgent      string
}

// Answer is a response the Proxy gives instead of asking stripe-mock.
type Answer struct {
	Status int
	Body   string // JSON
}

// Price is how SetPrice bends a price id.
type Price struct {
	OneTime  bool // type one_time instead of stripe-mock's recurring
	Inactive bool
	Missing  bool // 404 resource_missing
}

// Customer is a customer the Proxy knows.
type Customer struct {
	ID       string
	Email    string
	Metadata map[string]string
	Created  int64
}

// Subscription is a subscription the Proxy lists. Zero times are null in the
// answer. ID and Created are made up when zero.
type Subscription struct {
	ID                string
	Status            string
	PriceID           string
	Quantity          int64
	Created           int64
	CurrentPeriodEnd  int64
	CancelAtPeriodEnd bool
	TrialEnd          int64
	Metadata          map[string]string
	NoItems           bool // an answer whose items list is empty
}

// Proxy is the stand-in. Serve it (it is an http.Handler), or use Start in a
// test. Its methods are safe for concurrent use.
type Proxy struct {
	// URL is the Proxy's base URL when started with Start.
	URL string

	upstream *url.URL
	client   *http.Client

	mu         sync.Mutex
	calls      []Call
	intercept  func(*http.Request) *Answer
	prices     map[string]Price
	customers  []*customerState
	keys       map[string]keyedCreate // Idempotency-Key → first create
	subs       map[string][]Subscription
	holdSearch bool
	seq        int64
}

type customerState struct {
	Customer
	searchable bool
}

type keyedCreate struct {
	form       url.Values
	customerID string
}

// New returns a Proxy in front of the stripe-mock at upstream.
func New(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("stripetest: upstream %q is not an absolute http(s) URL", upstream)
	}
	return &Proxy{
		upstream: u,
		client:   &http.Client{Timeout: 30 * time.Second},
		prices:   make(map[string]Price),
		keys:     make(map[string]keyedCreate),
		subs:     make(map[string][]Subscription),
	}, nil
}

// Start serves a new Proxy in front of the stripe-mock at upstream on a
// loopback port until the test ends.
func Start(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	p, err := New(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Intercept sets f to see every call after it is recorded and before anything
// else: f may block (to hold a call), and a non-nil Answer is sent instead of
// the Proxy's own. nil removes it.
func (p *Proxy) Intercept(f func(r *http.Request) *Answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept = f
}

// SetPrice makes the price id one-time, inactive or missing.
func (p *Proxy) SetPrice(id string, pr Price) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prices[id] = pr
}

// AddCustomer adds a customer with metadata, as if created long ago (already
// searchable), and returns its id.
func (p *Proxy) AddCustomer(email string, metadata map[string]string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.newCustomer(email, metadata, true).ID
}

// HoldSearchIndex keeps customers created from now on out of Customer Search
// until IndexSearch is called.
func (p *Proxy) HoldSearchIndex() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdSearch = true
}

// IndexSearch makes every customer searchable, and new ones searchable at once.
func (p *Proxy) IndexSearch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdSearch = false
	for _, c := range p.customers {
		c.searchable = true
	}
}

// Customers returns the customers the Proxy knows, oldest first.
func (p *Proxy) Customers() []Customer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Customer, len(p.customers))
	for i, c := range p.customers {
		out[i] = c.Customer
	}
	return out
}

// AddSubscription gives the customer a subscription and returns its id.
func (p *Proxy) AddSubscription(customerID string, s Subscription) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	if s.ID == "" {
		s.ID = fmt.Sprintf("sub_test%06d", p.seq)
	}
	if s.Created == 0 {
		s.Created = firstCreated + p.seq
	}
	p.subs[customerID] = append(p.subs[customerID], s)
	return s.ID
}

// SetSubscriptionStatus changes the status of the subscription id; it
// reports whether there is one.
func (p *Proxy) SetSubscriptionStatus(id, status string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, subs := range p.subs {
		for i := range subs {
			if subs[i].ID == id {
				subs[i].Status = status
				return true
			}
		}
	}
	return false
}

// Subscriptions returns the customer's subscriptions, in the order added.
func (p *Proxy) Subscriptions(customerID string) []Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.subs[customerID])
}

// Calls returns the calls recorded so far, in order (the last 10 000 at most).
func (p *Proxy) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// CallsTo returns the recorded calls with this method whose path is path, or
// starts with it when path ends with "/".
func (p *Proxy) CallsTo(method, path string) []Call {
	var out []Call
	for _, c := range p.Calls() {
		if c.Method != method {
			continue
		}
		if c.Path == path || (strings.HasSuffix(path, "/") && strings.HasPrefix(c.Path, path)) {
			out = append(out, c)
		}
	}
	return out
}

// ServeHTTP records the call, then answers it as described in the package
// documentation.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "stripetest: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	form := r.URL.Query()
	if r.Method == http.MethodPost {
		if form, err = url.ParseQuery(string(body)); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "", "stripetest: the body is not a form")
			return
		}
	}
	p.mu.Lock()
	if len(p.calls) == maxCalls {
		p.calls = slices.Delete(p.calls, 0, maxCalls/10)
	}
	p.calls = append(p.calls, Call{
		Method: r.Method, Path: r.URL.Path, Form: form,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), UserAgent: r.Header.Get("User-Agent"),
	})
	intercept := p.intercept
	p.mu.Unlock()

	if intercept != nil {
		if a := intercept(r); a != nil {
			writeJSON(w, a.Status, "req_intercepted", []byte(a.Body))
			return
		}
	}
	up, err := p.forward(r, body)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		http.Error(w, "stripetest: stripe-mock: "+err.Error(), http.StatusBadGateway)
		return
	}
	if up.status != http.StatusOK {
		// stripe-mock refused the request's shape: that is the answer.
		writeJSON(w, up.status, up.requestID, up.body)
		return
	}
	p.answer(w, r, form, up)
}

// upstreamAnswer is stripe-mock's answer.
type upstreamAnswer struct {
	status    int
	requestID string
	body      []byte
}

func (p *Proxy) forward(r *http.Request, body []byte) (upstreamAnswer, error) {
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return upstreamAnswer{}, err
	}
	for _, h := range []string{"Authorization", "Content-Type", "Stripe-Version", "Idempotency-Key", "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	res, err := p.client.Do(req)
	if err != nil {
		return upstreamAnswer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return upstreamAnswer{}, err
	}
	return upstreamAnswer{status: res.StatusCode, requestID: res.Header.Get("Request-Id"), body: b}, nil
}

// answer replaces stripe-mock's fixture with the state's answer, for the calls
// the Proxy keeps state for.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, form url.Values, up upstreamAnswer) {
	path := r.URL.Path
	var (
		out []byte
		err error
	)
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/prices/"):
		out, err = p.price(w, strings.TrimPrefix(path, "/v1/prices/"), up.body)
	case r.Method == http.MethodPost && path == "/v1/customers":
		out, err = p.createCustomer(w, r.Header.Get("Idempotency-Key"), form, up.body)
	case r.Method == http.MethodGet && path == "/v1/customers/search":
		out, err = p.searchCustomers(w, form.Get("query"), up.body)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/customers/"):
		out, err = p.getCustomer(w, strings.TrimPrefix(path, "/v1/customers/"), up.body)
	case r.Method == http.MethodGet && path == "/v1/subscriptions":
		out, err = p.listSubscriptions(form, up.body)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/subscriptions/"):
		out, err = p.getSubscription(w, strings.TrimPrefix(path, "/v1/subscriptions/"), up.body)
	case r.Method == http.MethodPost && path == "/v1/billing_portal/sessions":
		out, err = p.portalSession(w, form, up.body)
	case r.Method == http.MethodPost && path == "/v1/checkout/sessions":
		out, err = p.checkoutSession(w, form, up.body)
	default:
		out = up.body
	}
	if err != nil {
		http.Error(w, "stripetest: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if out != nil { // nil: an error was written already
		writeJSON(w, http.StatusOK, up.requestID, out)
	}
}
