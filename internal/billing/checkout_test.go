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
)

// TestCheckoutWithStripeMock runs the handler through the real stripe-go
// adapter against the real stripe-mock, with a recording proxy in between. One
// stripe-mock serves every subtest: it is stateless.
func TestCheckoutWithStripeMock(t *testing.T) {
	mock := stripemock.Start(t)

	t.Run("subscription", func(t *testing.T) {
		proxy := newRecordingProxy(t, mock.URL)
		s := newStack(t, testOptions(newStripeClient(t, proxy.URL, 5*time.Second, -1)))

		w := s.call(&ada, "application/json", `{"price_id":"`+priceSub+`"}`,
			http.Header{"Idempotency-Key": {"click-1"}})
		wantSession(t, w)
		if got := w.Header().Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}

		calls := proxy.sessionCalls()
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
			"metadata[user_id]":                    {ada.UserID},
			"subscription_data[metadata][user_id]": {ada.UserID},
			"customer_email":                       {ada.Email},
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
		if got := s.count(t, OutcomeCreated); got != 1 {
			t.Errorf("created = %v, want 1", got)
		}
	})

	t.Run("payment", func(t *testing.T) {
		proxy := newRecordingProxy(t, mock.URL)
		s := newStack(t, testOptions(newStripeClient(t, proxy.URL, 5*time.Second, -1)))

		success := "http://localhost:3000/done?session_id={CHECKOUT_SESSION_ID}&plan=once"
		cancel := "https://APP.example.com:443/back"
		w := s.post(bob, fmt.Sprintf(`{"price_id":%q,"quantity":3,"success_url":%q,"cancel_url":%q}`, priceOnce, success, cancel))
		wantSession(t, w)

		calls := proxy.sessionCalls()
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

	t.Run("accepted variants", func(t *testing.T) {
		proxy := newRecordingProxy(t, mock.URL)
		s := newStack(t, testOptions(newStripeClient(t, proxy.URL, 5*time.Second, -1)))
		tests := []struct {
			name, contentType, body, quantity string
		}{
			{"charset", "application/json; charset=UTF-8", `{"price_id":"` + priceSub + `"}`, "1"},
			{"null fields", "application/json", `{"price_id":"` + priceSub + `","quantity":null,"success_url":null}`, "1"},
			{"whitespace around", "application/json", " \n{\"price_id\":\"" + priceSub + "\",\"quantity\":100}\n ", "100"},
		}
		for i, tt := range tests {
			wantSession(t, s.call(&bob, tt.contentType, tt.body, nil))
			calls := proxy.sessionCalls()
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
		proxy := newRecordingProxy(t, mock.URL)
		s := newStack(t, testOptions(newStripeClient(t, proxy.URL, 5*time.Second, -1)))
		body := `{"price_id":"` + priceSub + `"}`
		key := http.Header{"Idempotency-Key": {"same-click"}}
		for _, who := range []auth.Identity{ada, ada, bob} {
			wantSession(t, s.call(&who, "application/json", body, key))
		}
		// Without a key, two clicks are two sessions: stripe-go makes a new key each time.
		for range 2 {
			wantSession(t, s.post(ada, body))
		}
		calls := proxy.sessionCalls()
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
		proxy := newRecordingProxy(t, mock.URL)
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		o := testOptions(newStripeClient(t, proxy.URL, 5*time.Second, -1))
		o.PriceTTL = time.Minute
		o.Now = func() time.Time { return now }
		s := newStack(t, o)
		body := `{"price_id":"` + priceSub + `"}`
		for range 3 {
			wantSession(t, s.post(ada, body))
		}
		if got, want := proxy.priceLookups(), 1; got != want {
			t.Errorf("price lookups after 3 checkouts = %d, want %d", got, want)
		}
		now = now.Add(time.Minute)
		wantSession(t, s.post(ada, body))
		if got, want := proxy.priceLookups(), 2; got != want {
			t.Errorf("price lookups after the TTL = %d, want %d", got, want)
		}
	})

	t.Run("concurrent misses share one lookup", func(t *testing.T) {
		hold := make(chan struct{})
		seen := make(chan struct{}, 16)
		proxy := newRecordingProxy(t, mock.URL, func(p *recordingProxy) { p.holdPrices = hold; p.priceSeen = seen })
		s := newStack(t, testOptions(newStripeClient(t, proxy.URL, 5*time.Second, -1)))
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
		if got := proxy.priceLookups(); got != 1 {
			t.Errorf("price lookups = %d, want 1", got)
		}
	})

	t.Run("Stripe failures", func(t *testing.T) {
		stripeError := func(status int, typ, code string) func(*http.Request) *cannedAnswer {
			return func(r *http.Request) *cannedAnswer {
				if r.Method != http.MethodPost {
					return nil
				}
				return &cannedAnswer{status, fmt.Sprintf(`{"error":{"type":%q,"code":%q,"message":"Stripe-Secret-Text about ada@example.com"}}`, typ, code)}
			}
		}
		tests := []struct {
			name    string
			price   string
			answer  func(*http.Request) *cannedAnswer
			key     string // secret key; empty: one stripe-mock accepts
			status  int
			detail  string
			outcome string
			cause   string // in the logged cause
		}{
			{"unknown price", priceMissing, missingPrice, "", 400, "price_id is not available", OutcomeInvalidRequest, "get price: not found (status 404, type invalid_request_error, code resource_missing, param id"},
			{"inactive price", priceInactive, nil, "", 400, "price_id is not available", OutcomeInvalidRequest, ""},
			{"bad key", priceSub, nil, "sk_test_bad_key_1", 502, "payment provider", OutcomeStripeError, "get price: unavailable (status 401"},
			{"Stripe 500", priceSub, stripeError(500, "api_error", ""), "", 502, "payment provider", OutcomeStripeError, "create checkout session: unavailable (status 500, type api_error, request_id req_canned)"},
			{"Stripe 503", priceSub, stripeError(503, "api_error", ""), "", 502, "payment provider", OutcomeStripeError, "unavailable (status 503"},
			{"Stripe 400 on create", priceSub, stripeError(400, "invalid_request_error", "parameter_invalid_string"), "", 502, "payment provider", OutcomeStripeError, "create checkout session: invalid request (status 400, type invalid_request_error, code parameter_invalid_string"},
			{"Stripe 429", priceSub, stripeError(429, "invalid_request_error", "rate_limit"), "", 502, "payment provider", OutcomeStripeError, "unavailable (status 429"},
			{"idempotency conflict", priceSub, stripeError(400, "idempotency_error", ""), "", 409, "Idempotency-Key", OutcomeIdempotencyConflict, "idempotency conflict (status 400, type idempotency_error"},
			{"not JSON", priceSub, func(r *http.Request) *cannedAnswer { return &cannedAnswer{502, "<html>Stripe-Secret-Text</html>"} }, "", 502, "payment provider", OutcomeStripeError, "get price: unavailable: Couldn't deserialize JSON"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				proxy := newRecordingProxy(t, mock.URL, func(p *recordingProxy) { p.answer = tt.answer })
				key := tt.key
				if key == "" {
					key = stripemock.Key
				}
				c, err := NewStripeClient(StripeOptions{SecretKey: key, APIURL: proxy.URL, Timeout: 5 * time.Second, MaxRetries: -1})
				if err != nil {
					t.Fatal(err)
				}
				s := newStack(t, testOptions(c))
				r := newRequest(&ada, "application/json", `{"price_id":"`+tt.price+`"}`, http.Header{"Idempotency-Key": {"k1"}})
				wantProblem(t, s.serve(r), tt.status, tt.detail)
				cause := requestlog.From(r.Context()).Err()
				if cause == nil || !strings.Contains(cause.Error(), tt.cause) {
					t.Errorf("logged cause = %v, want it to contain %q", cause, tt.cause)
				}
				if cause != nil && strings.Contains(cause.Error(), ada.Email) {
					t.Errorf("logged cause holds the email: %v", cause)
				}
				if got := s.count(t, tt.outcome); got != 1 {
					t.Errorf("%s = %v, want 1", tt.outcome, got)
				}
			})
		}
	})

	t.Run("Stripe too slow", func(t *testing.T) {
		proxy := newRecordingProxy(t, mock.URL, func(p *recordingProxy) { p.delay = 5 * time.Second })
		s := newStack(t, testOptions(newStripeClient(t, proxy.URL, 150*time.Millisecond, 1)))
		wantProblem(t, s.post(ada, `{"price_id":"`+priceSub+`"}`), http.StatusGatewayTimeout, "did not answer in time")
		if got := s.count(t, OutcomeStripeTimeout); got != 1 {
			t.Errorf("stripe_timeout = %v, want 1", got)
		}
	})
}

func TestStripeDown(t *testing.T) {
	// One retry: stripe-go waits about half a second, then fails again.
	s := newStack(t, testOptions(newStripeClient(t, closedPort(t), 2*time.Second, 1)))
	r := newRequest(&ada, "application/json", `{"price_id":"`+priceSub+`"}`, nil)
	w := s.serve(r)
	wantProblem(t, w, http.StatusBadGateway, "payment provider")
	if got := s.count(t, OutcomeStripeError); got != 1 {
		t.Errorf("stripe_error = %v, want 1", got)
	}
	// The cause reaches the log line, classified, without Stripe's text.
	rec := requestlog.From(r.Context())
	if err := rec.Err(); err == nil || !strings.Contains(err.Error(), "stripe get price: unavailable") {
		t.Errorf("logged cause = %v, want the unavailable price lookup", err)
	}
}
