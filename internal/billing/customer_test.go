package billing

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

// TestCustomerRule proves where each checkout's customer comes from: the
// store, Customer Search, or a creation that concurrent first checkouts
// share through its idempotency key.
func TestCustomerRule(t *testing.T) {
	mock := stripemock.Start(t)
	body := `{"price_id":"` + priceOnce + `"}`

	// sessionCustomer returns the customer of the last session created.
	sessionCustomer := func(t *testing.T, proxy *stripetest.Proxy) string {
		t.Helper()
		calls := proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")
		if len(calls) == 0 {
			t.Fatal("no session reached Stripe")
		}
		return calls[len(calls)-1].Form.Get("customer")
	}

	t.Run("found by search, then saved in the store", func(t *testing.T) {
		proxy := newProxy(t, mock)
		// One the dashboard made later, and the user's own, older: the oldest wins.
		cus := addCustomer(proxy, ada)
		proxy.AddCustomer("", map[string]string{"clerk_user_id": ada.UserID})
		proxy.AddCustomer("other@example.com", map[string]string{"clerk_user_id": "user_other"})
		store := newMemStore(nil)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), store: store})

		wantSession(t, s.post(ada, body))
		if got := sessionCustomer(t, proxy); got != cus {
			t.Errorf("session customer = %q, want the oldest of the user's, %q", got, cus)
		}
		if n := len(proxy.CallsTo(http.MethodPost, "/v1/customers")); n != 0 {
			t.Errorf("%d customers created, want 0", n)
		}
		if got := store.get(ada.UserID); got != cus {
			t.Errorf("store holds %q, want %q", got, cus)
		}
		if got := s.customers(t, CustomerFound); got != 1 {
			t.Errorf("found = %v, want 1", got)
		}

		// From now on the store answers, and Stripe is not searched.
		wantSession(t, s.post(ada, body))
		if n := len(proxy.CallsTo(http.MethodGet, "/v1/customers/search")); n != 1 {
			t.Errorf("%d searches after the store learned the customer, want 1", n)
		}
		if got := s.customers(t, CustomerFound); got != 2 {
			t.Errorf("found = %v, want 2: a customer from the store counts as found", got)
		}
	})

	t.Run("found by store", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := proxy.AddCustomer(ada.Email, nil) // not searchable by user: only the store knows
		store := newMemStore(map[string]string{ada.UserID: cus})
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), store: store})
		r := newRequest(http.MethodPost, "/stripe/checkout", &ada, "application/json", body, nil)
		wantSession(t, serve(s.checkout, r))
		if got := sessionCustomer(t, proxy); got != cus {
			t.Errorf("session customer = %q, want %q", got, cus)
		}
		for _, path := range []string{"/v1/customers/search", "/v1/customers"} {
			if n := len(proxy.CallsTo(http.MethodGet, path)) + len(proxy.CallsTo(http.MethodPost, path)); n != 0 {
				t.Errorf("%d calls to %s, want 0", n, path)
			}
		}
		if got := s.customers(t, CustomerFound); got != 1 {
			t.Errorf("found = %v, want 1", got)
		}
		if d := store.maxDeadline(); d <= 0 || d > StoreTimeout {
			t.Errorf("store budget = %v, want at most %v", d, StoreTimeout)
		}
	})

	t.Run("store knows nobody: Stripe, then the store learns", func(t *testing.T) {
		proxy := newProxy(t, mock)
		store := newMemStore(nil)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), store: store})
		wantSession(t, s.post(bob, body))
		cus := proxy.Customers()
		if len(cus) != 1 || store.get(bob.UserID) != cus[0].ID {
			t.Fatalf("customers %+v, store %q: want one, saved", cus, store.get(bob.UserID))
		}
		if got := s.customers(t, CustomerCreated); got != 1 {
			t.Errorf("created = %v, want 1", got)
		}
	})

	for _, fault := range []struct {
		name  string
		set   func(*memStore)
		logAs string
	}{
		{"store down", func(m *memStore) { m.fail = true }, "error"},
		{"store too slow", func(m *memStore) { m.block = true }, "timeout"},
	} {
		t.Run(fault.name+": Stripe answers within the budget", func(t *testing.T) {
			proxy := newProxy(t, mock)
			cus := addCustomer(proxy, ada)
			store := newMemStore(nil)
			fault.set(store)
			s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), store: store})

			r := newRequest(http.MethodPost, "/stripe/checkout", &ada, "application/json", body, nil)
			wantSession(t, serve(s.checkout, r))
			if got := sessionCustomer(t, proxy); got != cus {
				t.Errorf("session customer = %q, want %q (found by search)", got, cus)
			}
			// One store call, with a budget of at most a second: a database
			// that never answers costs a checkout about a second, once.
			if d := store.maxDeadline(); d <= 0 || d > StoreTimeout {
				t.Errorf("store budget = %v, want at most %v", d, StoreTimeout)
			}
			if n := store.calls(); n != 1 {
				t.Errorf("%d store calls, want 1: a store that failed is not asked again", n)
			}
			if got := s.customers(t, CustomerFound); got != 1 {
				t.Errorf("found = %v, want 1: a store outage is no customer error", got)
			}
			line := logLine(t, r)
			if !strings.Contains(line, "customer_store="+fault.logAs) || strings.Contains(line, "10.0.0.5") {
				t.Errorf("log line %q: want customer_store=%s and nothing of the store's text", line, fault.logAs)
			}
		})
	}

	t.Run("concurrent first checkouts create one customer", func(t *testing.T) {
		proxy := newProxy(t, mock)
		// Search lags, as Stripe's does for about a minute: only the
		// idempotency key can make the creations one.
		proxy.HoldSearchIndex()
		release := make(chan struct{})
		var arrived sync.WaitGroup
		const n = 6
		arrived.Add(n)
		proxy.Intercept(func(r *http.Request) *stripetest.Answer {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/customers" {
				arrived.Done()
				<-release // every checkout has searched and is creating
			}
			return nil
		})
		// Two replicas: two customer rules over the same Stripe.
		replicas := []*stack{
			newStack(t, config{stripe: newStripeClient(t, proxy.URL, 10*time.Second, -1)}),
			newStack(t, config{stripe: newStripeClient(t, proxy.URL, 10*time.Second, -1)}),
		}
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Go(func() { codes[i] = replicas[i%2].post(ada, body).Code })
		}
		arrived.Wait()
		close(release)
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusOK {
				t.Errorf("checkout %d: status %d, want 200", i, c)
			}
		}
		if got := proxy.Customers(); len(got) != 1 {
			t.Fatalf("%d customers in Stripe, want 1: %+v", len(got), got)
		}
		cus := proxy.Customers()[0].ID
		creates := proxy.CallsTo(http.MethodPost, "/v1/customers")
		for _, c := range creates {
			if c.IdempotencyKey != creates[0].IdempotencyKey {
				t.Errorf("creations carry keys %q and %q, want one", creates[0].IdempotencyKey, c.IdempotencyKey)
			}
		}
		for _, c := range proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions") {
			if got := c.Form.Get("customer"); got != cus {
				t.Errorf("a session went to customer %q, want %q", got, cus)
			}
		}
		// One creation, and every replay counted as a customer found.
		var created, found float64
		for _, r := range replicas {
			created += r.customers(t, CustomerCreated)
			found += r.customers(t, CustomerFound)
		}
		if created != 1 || found != n-1 {
			t.Errorf("customers_total created %v, found %v; want 1 and %d", created, found, n-1)
		}
	})
}

// logLine renders the request's log record as text, as the access log would.
func logLine(t *testing.T, r *http.Request) string {
	t.Helper()
	var b strings.Builder
	for _, a := range requestlog.From(r.Context()).Attrs() {
		b.WriteString(a.String() + " ")
	}
	return b.String()
}

// TestSingleSubscription proves the guard: a subscription checkout is refused
// to a user with a live subscription, and only then.
func TestSingleSubscription(t *testing.T) {
	mock := stripemock.Start(t)
	tests := []struct {
		status string
		price  string
		single bool
		want   int
	}{
		{"active", priceSub, true, http.StatusConflict},
		{"trialing", priceSub, true, http.StatusConflict},
		{"past_due", priceSub, true, http.StatusConflict},
		{"unpaid", priceSub, true, http.StatusConflict},
		{"canceled", priceSub, true, http.StatusOK},
		{"incomplete", priceSub, true, http.StatusOK},
		{"incomplete_expired", priceSub, true, http.StatusOK},
		{"paused", priceSub, true, http.StatusOK},
		{"active", priceOnce, true, http.StatusOK}, // one-time prices are not affected
		{"active", priceSub, false, http.StatusOK}, // the guard is off
		{"", priceSub, true, http.StatusOK},        // a customer without subscriptions
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s single=%v", cmp.Or(tt.status, "none"), tt.price, tt.single), func(t *testing.T) {
			proxy := newProxy(t, mock)
			cus := addCustomer(proxy, ada)
			// Canceled ones beside, which never count.
			proxy.AddSubscription(cus, stripetest.Subscription{Status: "canceled", PriceID: priceSub, Quantity: 1})
			if tt.status != "" {
				proxy.AddSubscription(cus, stripetest.Subscription{Status: tt.status, PriceID: priceSub, Quantity: 1})
			}
			s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), single: tt.single})
			w := s.post(ada, `{"price_id":"`+tt.price+`"}`)
			if tt.want == http.StatusOK {
				wantSession(t, w)
				return
			}
			wantProblem(t, w, http.StatusConflict, "You already have a subscription ("+tt.status+"): use the billing portal to change plans.")
			if n := len(proxy.CallsTo(http.MethodPost, "/v1/checkout/sessions")); n != 0 {
				t.Errorf("%d sessions created, want 0", n)
			}
			if got := s.sessions(t, OutcomeAlreadySubscribed); got != 1 {
				t.Errorf("already_subscribed = %v, want 1", got)
			}
			lists := proxy.CallsTo(http.MethodGet, "/v1/subscriptions")
			if len(lists) != 1 || lists[0].Form.Get("customer") != cus || lists[0].Form.Has("status") || lists[0].Form.Get("limit") != "100" {
				t.Errorf("subscription lists = %+v, want one for %s, without status (canceled left out), limit 100", lists, cus)
			}
		})
	}

	// Customer Search lags behind creations by about a minute: a second
	// checkout within it does not find the customer, and Stripe replays the
	// first creation. That customer is not new: the guard still applies.
	t.Run("search lagging behind the first checkout", func(t *testing.T) {
		proxy := newProxy(t, mock)
		proxy.HoldSearchIndex()
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), single: true})
		body := `{"price_id":"` + priceSub + `"}`
		wantSession(t, s.post(ada, body))
		cus := proxy.Customers()
		if len(cus) != 1 {
			t.Fatalf("customers after the first checkout: %+v, want one", cus)
		}
		proxy.AddSubscription(cus[0].ID, stripetest.Subscription{Status: "active", PriceID: priceSub, Quantity: 1})

		wantProblem(t, s.post(ada, body), http.StatusConflict, "You already have a subscription (active)")
		if n := len(proxy.CallsTo(http.MethodPost, "/v1/customers")); n != 2 {
			t.Errorf("%d customer creations, want 2 (the second replayed)", n)
		}
		if got := len(proxy.Customers()); got != 1 {
			t.Errorf("%d customers, want 1", got)
		}
		for outcome, want := range map[string]float64{CustomerCreated: 1, CustomerFound: 1} {
			if got := s.customers(t, outcome); got != want {
				t.Errorf("customers_total{outcome=%q} = %v, want %v: a replay is a customer found", outcome, got, want)
			}
		}
	})

	t.Run("Stripe fails on the list", func(t *testing.T) {
		proxy := newProxy(t, mock)
		addCustomer(proxy, ada)
		proxy.Intercept(stripeError("GET", "/v1/subscriptions", 500, "api_error", ""))
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), single: true})
		wantProblem(t, s.post(ada, `{"price_id":"`+priceSub+`"}`), http.StatusBadGateway, "payment provider")
	})
}

func TestSearchQuery(t *testing.T) {
	for _, tt := range []struct{ user, want string }{
		{"user_2ada", `metadata['clerk_user_id']:'user_2ada'`},
		{`user_' OR email:'x`, `metadata['clerk_user_id']:'user_\' OR email:\'x'`},
		{`user_\`, `metadata['clerk_user_id']:'user_\\'`},
	} {
		if got := searchQuery(tt.user); got != tt.want {
			t.Errorf("searchQuery(%q) = %q, want %q", tt.user, got, tt.want)
		}
	}
}
