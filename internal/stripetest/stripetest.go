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
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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

func (p *Proxy) price(w http.ResponseWriter, id string, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	pr, ok := p.prices[id]
	p.mu.Unlock()
	if !ok {
		return fixture, nil
	}
	if pr.Missing {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such price: '"+id+"'")
		return nil, nil
	}
	return rewrite(fixture, func(m map[string]any) {
		m["id"] = id
		if pr.OneTime {
			m["type"] = "one_time"
			m["recurring"] = nil
		}
		if pr.Inactive {
			m["active"] = false
		}
	})
}

func (p *Proxy) createCustomer(w http.ResponseWriter, key string, form url.Values, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var c Customer
	if prev, ok := p.keys[key]; ok && key != "" {
		if !sameForm(prev.form, form) {
			writeError(w, http.StatusBadRequest, "idempotency_error", "", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.")
			return nil, nil
		}
		c = p.customer(prev.customerID).Customer
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		c = p.newCustomer(form.Get("email"), metadataOf(form), !p.holdSearch).Customer
		if key != "" {
			p.keys[key] = keyedCreate{form: form, customerID: c.ID}
		}
	}
	return customerJSON(fixture, c)
}

func (p *Proxy) searchCustomers(w http.ResponseWriter, query string, fixture []byte) ([]byte, error) {
	key, value, ok := parseMetadataQuery(query)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "query",
			"stripetest understands only metadata['key']:'value' queries")
		return nil, nil
	}
	p.mu.Lock()
	var found []Customer
	for _, c := range p.customers {
		if c.searchable && c.Metadata[key] == value {
			found = append(found, c.Customer)
		}
	}
	p.mu.Unlock()
	template, err := firstOf(fixture)
	if err != nil {
		return nil, err
	}
	data := make([]json.RawMessage, 0, len(found))
	for _, c := range found {
		b, err := customerJSON(template, c)
		if err != nil {
			return nil, err
		}
		data = append(data, b)
	}
	return rewrite(fixture, func(m map[string]any) {
		m["data"] = data
		m["has_more"] = false
		m["next_page"] = nil
		m["total_count"] = nil
	})
}

func (p *Proxy) getCustomer(w http.ResponseWriter, id string, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	c := p.customer(id)
	p.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such customer: '"+id+"'")
		return nil, nil
	}
	return customerJSON(fixture, c.Customer)
}

func (p *Proxy) listSubscriptions(form url.Values, fixture []byte) ([]byte, error) {
	limit := 10
	if n, err := strconv.Atoi(form.Get("limit")); err == nil && n > 0 {
		limit = n
	}
	status := form.Get("status")
	p.mu.Lock()
	var subs []Subscription
	for _, s := range p.subs[form.Get("customer")] {
		switch {
		case status == "all",
			status == "" && s.Status != "canceled",
			status == "ended" && (s.Status == "canceled" || s.Status == "incomplete_expired"),
			status == s.Status:
			subs = append(subs, s)
		}
	}
	p.mu.Unlock()
	slices.SortStableFunc(subs, func(a, b Subscription) int { return cmp.Compare(b.Created, a.Created) })
	more := len(subs) > limit
	subs = subs[:min(len(subs), limit)]

	template, err := firstOf(fixture)
	if err != nil {
		return nil, err
	}
	data := make([]json.RawMessage, 0, len(subs))
	for _, s := range subs {
		b, err := subscriptionJSON(template, form.Get("customer"), s)
		if err != nil {
			return nil, err
		}
		data = append(data, b)
	}
	return rewrite(fixture, func(m map[string]any) {
		m["data"] = data
		m["has_more"] = more
	})
}

func (p *Proxy) getSubscription(w http.ResponseWriter, id string, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	customerID, s, ok := p.subscription(id)
	p.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such subscription: '"+id+"'")
		return nil, nil
	}
	return subscriptionJSON(fixture, customerID, s)
}

// subscription returns the subscription id and its customer; p.mu must be held.
func (p *Proxy) subscription(id string) (customerID string, s Subscription, ok bool) {
	for c, subs := range p.subs {
		for _, s := range subs {
			if s.ID == id {
				return c, s, true
			}
		}
	}
	return "", Subscription{}, false
}

func (p *Proxy) portalSession(w http.ResponseWriter, form url.Values, fixture []byte) ([]byte, error) {
	if !p.knowsCustomer(w, form.Get("customer")) {
		return nil, nil
	}
	p.mu.Lock()
	p.seq++
	n := p.seq
	p.mu.Unlock()
	return rewrite(fixture, func(m map[string]any) {
		m["id"] = fmt.Sprintf("bps_test%06d", n)
		m["customer"] = form.Get("customer")
		m["return_url"] = form.Get("return_url")
		m["configuration"] = cmp.Or(form.Get("configuration"), "bpc_default")
		m["url"] = fmt.Sprintf("https://billing.stripe.com/p/session/test_%06d", n)
		m["flow"] = nil
	})
}

func (p *Proxy) checkoutSession(w http.ResponseWriter, form url.Values, fixture []byte) ([]byte, error) {
	if c := form.Get("customer"); c != "" && !p.knowsCustomer(w, c) {
		return nil, nil
	}
	return fixture, nil
}

// knowsCustomer reports whether id is a known customer, answering Stripe's 400
// when it is not.
func (p *Proxy) knowsCustomer(w http.ResponseWriter, id string) bool {
	p.mu.Lock()
	c := p.customer(id)
	p.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "customer", "No such customer: '"+id+"'")
		return false
	}
	return true
}

// newCustomer adds a customer; p.mu must be held.
func (p *Proxy) newCustomer(email string, metadata map[string]string, searchable bool) *customerState {
	p.seq++
	c := &customerState{
		Customer: Customer{
			ID:       fmt.Sprintf("cus_test%06d", p.seq),
			Email:    email,
			Metadata: metadata,
			Created:  firstCreated + p.seq,
		},
		searchable: searchable,
	}
	p.customers = append(p.customers, c)
	return c
}

// customer returns the customer id, or nil; p.mu must be held.
func (p *Proxy) customer(id string) *customerState {
	for _, c := range p.customers {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func metadataOf(form url.Values) map[string]string {
	md := make(map[string]string)
	for k, vs := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(vs) > 0 {
			md[strings.TrimSuffix(name, "]")] = vs[0]
		}
	}
	return md
}

// sameForm compares two forms as Stripe compares the parameters of requests
// with one idempotency key.
func sameForm(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if !slices.Equal(va, b[k]) {
			return false
		}
	}
	return true
}

var metadataQueryRe = regexp.MustCompile(`^metadata\['([^'\\]+)'\]:'((?:[^'\\]|\\.)*)'$`)

// parseMetadataQuery reads metadata['key']:'value', where the value may
// escape a quote or a backslash with a backslash.
func parseMetadataQuery(q string) (key, value string, ok bool) {
	m := metadataQueryRe.FindStringSubmatch(q)
	if m == nil {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(m[2]); i++ {
		if m[2][i] == '\\' {
			i++
		}
		b.WriteByte(m[2][i])
	}
	return m[1], b.String(), true
}

func customerJSON(template []byte, c Customer) ([]byte, error) {
	return rewrite(template, func(m map[string]any) {
		m["id"] = c.ID
		m["email"] = nilIfEmpty(c.Email)
		m["metadata"] = c.Metadata
		m["created"] = c.Created
		m["deleted"] = nil
	})
}

func subscriptionJSON(template []byte, customerID string, s Subscription) ([]byte, error) {
	return rewrite(template, func(m map[string]any) {
		m["id"] = s.ID
		m["status"] = s.Status
		m["customer"] = customerID
		m["created"] = s.Created
		m["current_period_end"] = nilIfZero(s.CurrentPeriodEnd)
		m["cancel_at_period_end"] = s.CancelAtPeriodEnd
		m["trial_end"] = nilIfZero(s.TrialEnd)
		m["metadata"] = map[string]string{}
		if s.Metadata != nil {
			m["metadata"] = s.Metadata
		}
		items, _ := m["items"].(map[string]any)
		if items == nil {
			return
		}
		list, _ := items["data"].([]any)
		if s.NoItems || len(list) == 0 {
			items["data"] = []any{}
			return
		}
		item, _ := list[0].(map[string]any)
		if item == nil {
			return
		}
		item["quantity"] = s.Quantity
		item["subscription"] = s.ID
		if price, ok := item["price"].(map[string]any); ok {
			price["id"] = s.PriceID
		}
		items["data"] = []any{item}
	})
}

// firstOf returns the first object of a list or search answer, to serve as
// the template of the objects the Proxy lists.
func firstOf(list []byte) ([]byte, error) {
	var l struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(list, &l); err != nil {
		return nil, fmt.Errorf("stripe-mock list: %w", err)
	}
	if len(l.Data) == 0 {
		return nil, fmt.Errorf("stripe-mock list has no fixture object")
	}
	return l.Data[0], nil
}

// rewrite decodes a JSON object, lets edit change it, and encodes it again.
func rewrite(object []byte, edit func(map[string]any)) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(object, &m); err != nil {
		return nil, fmt.Errorf("stripe-mock answer: %w", err)
	}
	edit(m)
	return json.Marshal(m)
}

func writeJSON(w http.ResponseWriter, status int, requestID string, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", cmp.Or(requestID, "req_stripetest"))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError answers a Stripe error object.
func writeError(w http.ResponseWriter, status int, typ, code, param, message string) {
	e := map[string]string{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	writeJSON(w, status, "req_stripetest", b)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfZero(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
