package billing

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

// TestCheckoutWithStripeMock runs the handler through the real stripe-go
// adapter against the real stripe-mock, with internal/stripetest's stateful
// Proxy in between. One stripe-mock serves every subtest: it is stateless.
func TestCheckoutWithStripeMock(t *testing.T) {
	mock := stripemock.Start(t)

	t.Run("subscription, first checkout creates the customer", func(t *testing.T) {
		proxy := newProxy(t, mock)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})

		w := s.call(&ada, "application/json", `{"price_id":"`+priceSub+`"}`, http.Header{"Idempotency-Key": {"click-1"}})
		wantSession(t, w)

		customers := proxy.Customers()
		if len(customers) != 1 {
			t.Fatalf("%d customers in Stripe, want 1", len(customers))
		}
		cus := customers[0].ID
		creates := proxy.CallsTo(http.MethodPost, "/v1/customers")
		if len(creates) != 1 {
			t.Fatalf("%d customer creations, want 1", len(creates))
		}
		wantCustomer := url.Values{"email": {ada.Email}, "metadata[clerk_user_id]": {ada.UserID}}
		if got := creates[0].Form; !reflect.DeepEqual(got, wantCustomer) {
			t.Errorf("customer form reaching Stripe:\n got %v\nwant %v", got, wantCustomer)
		}
		if got, want := creates[0].IdempotencyKey, customerParams(ada).IdempotencyKey; got != want || !strings.HasPrefix(got, "customer:") {
			t.Errorf("customer Idempotency-Key = %q, want %q", got, want)
		}
		searches := proxy.CallsTo(http.MethodGet, "/v1/customers/search")
		if len(searches) != 1 || searches[0].Form.Get("query") != `metadata['clerk_user_id']:'user_2ada'` {
			t.Errorf("searches = %+v, want one for metadata['clerk_user_id']:'user_2ada'", searches)
		}

		calls := proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
		if len(calls) != 1 {
			t.Fatalf("%d session creations reached Stripe, want 1", len(calls))
		}
		want := url.Values{
			"mode":                                 {"subscription"},
			"line_items[0][price]":                 {priceSub},
			"line_items[0][quantity]":              {"1"},
			"success_url":                          {testSuccessURL},
			"cancel_url":                           {testCancelURL},
			"client_reference_id":                  {ada.UserID},
			"customer":                             {cus},
			"metadata[user_id]":                    {ada.UserID},
			"subscription_data[metadata][user_id]": {ada.UserID},
		}
		if got := calls[0].Form; !reflect.DeepEqual(got, want) {
			t.Errorf("form reaching Stripe:\n got %v\nwant %v", got, want)
		}
		if got, want := calls[0].IdempotencyKey, scopedIdempotencyKey(ada.UserID, "click-1"); got != want {
			t.Errorf("Idempotency-Key = %q, want %q", got, want)
		}
		if !strings.HasSuffix(calls[0].UserAgent, " payments-api") {
			t.Errorf("User-Agent = %q, want it to end in payments-api", calls[0].UserAgent)
		}
		// The guard does not ask about a customer created just now.
		if got := proxy.CallsTo(http.MethodGet, "/v1/subscriptions"); len(got) != 0 {
			t.Errorf("%d subscription lists for a new customer, want 0", len(got))
		}
		if got := s.sessions(t, OutcomeCreated); got != 1 {
			t.Errorf("sessions created = %v, want 1", got)
		}
		if got := s.customers(t, CustomerCreated); got != 1 {
			t.Errorf("customers created = %v, want 1", got)
		}

		// The next checkout finds the customer, here through search.
		wantSession(t, s.post(ada, `{"price_id":"`+priceOnce+`"}`))
		calls = proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
		if got := calls[len(calls)-1].Form.Get("customer"); got != cus {
			t.Errorf("second checkout customer = %q, want %q", got, cus)
		}
		if n := len(proxy.CallsTo(http.MethodPost, "/v1/customers")); n != 1 {
			t.Errorf("%d customer creations after two checkouts, want 1", n)
		}
		if got := s.customers(t, CustomerFound); got != 1 {
			t.Errorf("customers found = %v, want 1", got)
		}
	})

	t.Run("payment, user without email", func(t *testing.T) {
		proxy := newProxy(t, mock)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})

		success := "http://localhost:3000/done?session_id={CHECKOUT_SESSION_ID}&plan=once"
		cancel := "https://APP.example.com:443/back"
		wantSession(t, s.post(bob, fmt.Sprintf(`{"price_id":%q,"quantity":3,"success_url":%q,"cancel_url":%q}`, priceOnce, success, cancel)))

		creates := proxy.CallsTo(http.MethodPost, "/v1/customers")
		if len(creates) != 1 {
			t.Fatalf("%d customer creations, want 1", len(creates))
		}
		if got, want := creates[0].Form, (url.Values{"metadata[clerk_user_id]": {bob.UserID}}); !reflect.DeepEqual(got, want) {
			t.Errorf("customer form:\n got %v\nwant %v", got, want)
		}
		calls := proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
		if len(calls) != 1 {
			t.Fatalf("%d session creations reached Stripe, want 1", len(calls))
		}
		want := url.Values{
			"mode":                    {"payment"},
			"line_items[0][price]":    {priceOnce},
			"line_items[0][quantity]": {"3"},
			"success_url":             {success},
			"cancel_url":              {cancel},
			"client_reference_id":     {bob.UserID},
			"customer":                {proxy.Customers()[0].ID},
			"metadata[user_id]":       {bob.UserID},
		}
		if got := calls[0].Form; !reflect.DeepEqual(got, want) {
			t.Errorf("form reaching Stripe:\n got %v\nwant %v", got, want)
		}
		// No client key: stripe-go's own random key, never one of ours.
		if k := calls[0].IdempotencyKey; k == "" || strings.HasPrefix(k, "checkout:") {
			t.Errorf("Idempotency-Key = %q, want stripe-go's generated key", k)
		}
	})

	t.Run("promotion codes and trial days", func(t *testing.T) {
		proxy := newProxy(t, mock)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), promo: true, trialDays: 14})
		wantSession(t, s.post(ada, `{"price_id":"`+priceSub+`"}`))
		wantSession(t, s.post(ada, `{"price_id":"`+priceOnce+`"}`))
		calls := proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
		if len(calls) != 2 {
			t.Fatalf("%d session creations, want 2", len(calls))
		}
		cus := proxy.Customers()[0].ID
		want := []url.Values{{
			"mode":                                 {"subscription"},
			"line_items[0][price]":                 {priceSub},
			"line_items[0][quantity]":              {"1"},
			"success_url":                          {testSuccessURL},
			"cancel_url":                           {testCancelURL},
			"client_reference_id":                  {ada.UserID},
			"customer":                             {cus},
			"metadata[user_id]":                    {ada.UserID},
			"allow_promotion_codes":                {"true"},
			"subscription_data[metadata][user_id]": {ada.UserID},
			"subscription_data[trial_period_days]": {"14"},
		}, {
			// A one-time price has no trial: the field would be refused.
			"mode":                    {"payment"},
			"line_items[0][price]":    {priceOnce},
			"line_items[0][quantity]": {"1"},
			"success_url":             {testSuccessURL},
			"cancel_url":              {testCancelURL},
			"client_reference_id":     {ada.UserID},
			"customer":                {cus},
			"metadata[user_id]":       {ada.UserID},
			"allow_promotion_codes":   {"true"},
		}}
		for i := range want {
			if got := calls[i].Form; !reflect.DeepEqual(got, want[i]) {
				t.Errorf("session %d form:\n got %v\nwant %v", i, got, want[i])
			}
		}
	})

	t.Run("accepted variants", func(t *testing.T) {
		proxy := newProxy(t, mock)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		tests := []struct {
			name, contentType, body, quantity string
		}{
			{"charset", "application/json; charset=UTF-8", `{"price_id":"` + priceSub + `"}`, "1"},
			{"null fields", "application/json", `{"price_id":"` + priceSub + `","quantity":null,"success_url":null}`, "1"},
			{"whitespace around", "application/json", " \n{\"price_id\":\"" + priceSub + "\",\"quantity\":100}\n ", "100"},
		}
		for i, tt := range tests {
			wantSession(t, s.call(&bob, tt.contentType, tt.body, nil))
			calls := proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
			if len(calls) != i+1 {
				t.Fatalf("%s: %d session creations, want %d", tt.name, len(calls), i+1)
			}
			f := calls[i].Form
			if f.Get("line_items[0][quantity]") != tt.quantity || f.Get("success_url") != testSuccessURL || f.Has("customer_email") {
				t.Errorf("%s: form %v, want quantity %s, the default success URL and no email", tt.name, f, tt.quantity)
			}
		}
	})

	t.Run("idempotency keys are stable per user and scoped", func(t *testing.T) {
		proxy := newProxy(t, mock)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		body := `{"price_id":"` + priceSub + `"}`
		key := http.Header{"Idempotency-Key": {"same-click"}}
		for _, who := range []auth.Identity{ada, ada, bob} {
			wantSession(t, s.call(&who, "application/json", body, key))
		}
		// Without a key, two clicks are two sessions: stripe-go makes a new key each time.
		for range 2 {
			wantSession(t, s.post(ada, body))
		}
		calls := proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
		if len(calls) != 5 {
			t.Fatalf("%d session creations, want 5", len(calls))
		}
		k := func(i int) string { return calls[i].IdempotencyKey }
		if k(0) != k(1) {
			t.Errorf("a double click sent keys %q and %q, want one key", k(0), k(1))
		}
		if k(0) == k(2) {
			t.Errorf("two users with the same client key share Stripe key %q", k(0))
		}
		if k(0) == "same-click" || k(2) == "same-click" {
			t.Error("the client's key reached Stripe unscoped")
		}
		if k(3) == k(4) {
			t.Errorf("two clicks without a key share Stripe key %q", k(3))
		}
	})

	t.Run("price cached", func(t *testing.T) {
		proxy := newProxy(t, mock)
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		s := newStack(t, config{
			stripe:   newStripeClient(t, proxy.URL, 5*time.Second, -1),
			priceTTL: time.Minute,
			now:      func() time.Time { return now },
		})
		body := `{"price_id":"` + priceSub + `"}`
		for range 3 {
			wantSession(t, s.post(ada, body))
		}
		if got, want := len(proxy.CallsTo(http.MethodGet, "/v1/prices/")), 1; got != want {
			t.Errorf("price lookups after 3 checkouts = %d, want %d", got, want)
		}
		now = now.Add(time.Minute)
		wantSession(t, s.post(ada, body))
		if got, want := len(proxy.CallsTo(http.MethodGet, "/v1/prices/")), 2; got != want {
			t.Errorf("price lookups after the TTL = %d, want %d", got, want)
		}
	})

	t.Run("concurrent misses share one lookup", func(t *testing.T) {
		proxy := newProxy(t, mock)
		hold := make(chan struct{})
		seen := make(chan struct{}, 16)
		proxy.Intercept(func(r *http.Request) *stripetest.Answer {
			if strings.HasPrefix(r.URL.Path, "/v1/prices/") {
				seen <- struct{}{}
				<-hold
			}
			return nil
		})
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		const n = 8
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Go(func() {
				codes[i] = s.post(ada, `{"price_id":"`+priceOnce+`"}`).Code
			})
		}
		<-seen
		// Give the other requests time to reach the cache while the first
		// lookup is held: without coalescing each would look the price up too.
		time.Sleep(100 * time.Millisecond)
		close(hold)
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusOK {
				t.Errorf("request %d: status %d, want 200", i, c)
			}
		}
		if got := len(proxy.CallsTo(http.MethodGet, "/v1/prices/")); got != 1 {
			t.Errorf("price lookups = %d, want 1", got)
		}
	})

	t.Run("Stripe failures", func(t *testing.T) {
		tests := []struct {
			name      string
			price     string
			intercept func(*http.Request) *stripetest.Answer
			key       string // secret key; empty: one stripe-mock accepts
			status    int
			detail    string
			outcome   string
			customers string // the customers_total outcome counted; "" none
			cause     string // in the logged cause
		}{
			{"unknown price", priceMissing, nil, "", 400, "price_id is not available", OutcomeInvalidRequest, "", "get price: not found (status 404, type invalid_request_error, code resource_missing, param id"},
			{"inactive price", priceInactive, nil, "", 400, "price_id is not available", OutcomeInvalidRequest, "", ""},
			{"bad key", priceSub, nil, "sk_test_bad_key_1", 502, "payment provider", OutcomeStripeError, "", "get price: unavailable (status 401"},
			{"Stripe 500 on create", priceSub, stripeError("POST", "/v1/checkout/", 500, "api_error", ""), "", 502, "payment provider", OutcomeStripeError, CustomerCreated, "create checkout session: unavailable (status 500, type api_error, request_id req_intercepted)"},
			{"Stripe 503", priceSub, stripeError("POST", "/v1/checkout/", 503, "api_error", ""), "", 502, "payment provider", OutcomeStripeError, CustomerCreated, "unavailable (status 503"},
			{"Stripe 400 on create", priceSub, stripeError("POST", "/v1/checkout/", 400, "invalid_request_error", "parameter_invalid_string"), "", 502, "payment provider", OutcomeStripeError, CustomerCreated, "create checkout session: invalid request (status 400, type invalid_request_error, code parameter_invalid_string"},
			{"Stripe 429", priceSub, stripeError("POST", "/v1/checkout/", 429, "invalid_request_error", "rate_limit"), "", 502, "payment provider", OutcomeStripeError, CustomerCreated, "unavailable (status 429"},
			{"idempotency conflict", priceSub, stripeError("POST", "/v1/checkout/", 400, "idempotency_error", ""), "", 409, "Idempotency-Key", OutcomeIdempotencyConflict, CustomerCreated, "idempotency conflict (status 400, type idempotency_error"},
			{"search fails", priceSub, stripeError("GET", "/v1/customers/search", 500, "api_error", ""), "", 502, "payment provider", OutcomeStripeError, CustomerError, "search customers: unavailable (status 500"},
			{"customer create fails", priceSub, stripeError("POST", "/v1/customers", 500, "api_error", ""), "", 502, "payment provider", OutcomeStripeError, CustomerError, "create customer: unavailable (status 500"},
			{"customer key still in use", priceSub, stripeError("POST", "/v1/customers", 409, "invalid_request_error", "idempotency_key_in_use"), "", 502, "payment provider", OutcomeStripeError, CustomerError, "create customer: unavailable (status 409"},
			{"customer key with other parameters", priceSub, stripeError("POST", "/v1/customers", 400, "idempotency_error", ""), "", 409, "try again in a minute", OutcomeIdempotencyConflict, CustomerError, "create customer: idempotency conflict"},
			{"not JSON", priceSub, func(r *http.Request) *stripetest.Answer {
				return &stripetest.Answer{Status: 502, Body: "<html>Stripe-Secret-Text</html>"}
			}, "", 502, "payment provider", OutcomeStripeError, "", "get price: unavailable: Couldn't deserialize JSON"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				proxy := newProxy(t, mock)
				proxy.Intercept(tt.intercept)
				key := tt.key
				if key == "" {
					key = stripemock.Key
				}
				c, err := NewStripeClient(StripeOptions{SecretKey: key, APIURL: mustURL(t, proxy.URL), Timeout: 5 * time.Second, MaxRetries: -1})
				if err != nil {
					t.Fatal(err)
				}
				s := newStack(t, config{stripe: c})
				r := newRequest(http.MethodPost, "/stripe/checkout", &ada, "application/json", `{"price_id":"`+tt.price+`"}`, http.Header{"Idempotency-Key": {"k1"}})
				wantProblem(t, serve(s.checkout, r), tt.status, tt.detail)
				cause := requestlog.From(r.Context()).Err()
				if cause == nil || !strings.Contains(cause.Error(), tt.cause) {
					t.Errorf("logged cause = %v, want it to contain %q", cause, tt.cause)
				}
				if cause != nil && strings.Contains(cause.Error(), ada.Email) {
					t.Errorf("logged cause holds the email: %v", cause)
				}
				if got := s.sessions(t, tt.outcome); got != 1 {
					t.Errorf("%s = %v, want 1", tt.outcome, got)
				}
				for _, o := range []string{CustomerFound, CustomerCreated, CustomerError} {
					want := 0.0
					if o == tt.customers {
						want = 1
					}
					if got := s.customers(t, o); got != want {
						t.Errorf("customers %s = %v, want %v", o, got, want)
					}
				}
			})
		}
	})

	t.Run("Stripe too slow", func(t *testing.T) {
		proxy := newProxy(t, mock)
		proxy.Intercept(func(r *http.Request) *stripetest.Answer {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return nil
		})
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 150*time.Millisecond, 1)})
		wantProblem(t, s.post(ada, `{"price_id":"`+priceSub+`"}`), http.StatusGatewayTimeout, "did not answer in time")
		if got := s.sessions(t, OutcomeStripeTimeout); got != 1 {
			t.Errorf("stripe_timeout = %v, want 1", got)
		}
	})
}

func TestStripeDown(t *testing.T) {
	// One retry: stripe-go waits about half a second, then fails again.
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), 2*time.Second, 1)})
	r := newRequest(http.MethodPost, "/stripe/checkout", &ada, "application/json", `{"price_id":"`+priceSub+`"}`, nil)
	wantProblem(t, serve(s.checkout, r), http.StatusBadGateway, "payment provider")
	if got := s.sessions(t, OutcomeStripeError); got != 1 {
		t.Errorf("stripe_error = %v, want 1", got)
	}
	// The cause reaches the log line, classified, without Stripe's text.
	if err := requestlog.From(r.Context()).Err(); err == nil || !strings.Contains(err.Error(), "stripe get price: unavailable") {
		t.Errorf("logged cause = %v, want the unavailable price lookup", err)
	}
}
