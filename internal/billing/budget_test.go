package billing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

// TestStripeBudget proves that a request's Stripe calls share one budget: a
// Stripe that answers every call slowly, each well within the per-call
// timeout, makes the request a 504 once the budget is spent, not an answer
// later than the server can still write.
func TestStripeBudget(t *testing.T) {
	mock := stripemock.Start(t)
	const perCall = 30 * time.Second // never what ends a request here

	// route sends one request as ada; metric is its outcome counter ("" for
	// the subscription state, which has none).
	type route struct {
		send    func(s *stack) *httptest.ResponseRecorder
		metric  string
		outcome string
	}
	checkout := func(price, outcome string) route {
		return route{
			send:   func(s *stack) *httptest.ResponseRecorder { return s.post(ada, `{"price_id":"`+price+`"}`) },
			metric: "payments_api_checkout_sessions_total", outcome: outcome,
		}
	}
	portal := route{
		send:   func(s *stack) *httptest.ResponseRecorder { return s.openPortal(ada, "", "") },
		metric: "payments_api_portal_sessions_total", outcome: OutcomeStripeTimeout,
	}
	state := route{send: func(s *stack) *httptest.ResponseRecorder { return s.state(ada) }}

	tests := []struct {
		name     string
		route    route
		known    bool          // ada has a customer (and a canceled subscription) already
		delay    time.Duration // of every Stripe answer
		hang     string        // a path whose calls are never answered
		budget   time.Duration
		wantCode int
	}{
		// A new user: price, search, create, session at 400 ms each.
		{"checkout of a new user", checkout(priceOnce, OutcomeStripeTimeout), false, 400 * time.Millisecond, "", 700 * time.Millisecond, 504},
		// The budget ends while the request waits for the shared price lookup.
		{"checkout, budget spent on the price", checkout(priceOnce, OutcomeStripeTimeout), false, 400 * time.Millisecond, "", 150 * time.Millisecond, 504},
		// A subscriber: price, search, subscription list (the guard), session.
		{"checkout of a subscriber", checkout(priceSub, OutcomeStripeTimeout), true, 400 * time.Millisecond, "", 1000 * time.Millisecond, 504},
		{"checkout, one call never answers", checkout(priceOnce, OutcomeStripeTimeout), true, 0, "/v1/customers/search", 300 * time.Millisecond, 504},
		{"portal", portal, true, 400 * time.Millisecond, "", 600 * time.Millisecond, 504},
		{"subscription state", state, true, 400 * time.Millisecond, "", 600 * time.Millisecond, 504},
		// The same slow Stripe within a budget that allows it: slow calls
		// alone are no failure.
		{"checkout within the budget", checkout(priceSub, OutcomeCreated), true, 100 * time.Millisecond, "", 10 * time.Second, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := newProxy(t, mock)
			if tt.known {
				cus := addCustomer(proxy, ada)
				proxy.AddSubscription(cus, stripetest.Subscription{Status: "canceled", PriceID: priceSub, Quantity: 1})
			}
			proxy.Intercept(func(r *http.Request) *stripetest.Answer {
				wait := time.After(tt.delay)
				if tt.hang != "" && r.URL.Path == tt.hang {
					wait = nil // never
				}
				select {
				case <-wait:
				case <-r.Context().Done():
				}
				return nil
			})
			s := newStack(t, config{
				stripe: newStripeClient(t, proxy.URL, perCall, -1),
				single: true,
				budget: tt.budget,
			})

			start := time.Now()
			w := tt.route.send(s)
			elapsed := time.Since(start)
			if tt.wantCode == http.StatusOK {
				if w.Code != http.StatusOK {
					t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
				}
			} else {
				wantProblem(t, w, http.StatusGatewayTimeout, "did not answer in time")
				// Far below the per-call timeout: no call outlived the budget.
				if elapsed > perCall/3 {
					t.Errorf("answered after %v, want about the %v budget", elapsed, tt.budget)
				}
			}
			if tt.route.metric != "" {
				if got := s.count(t, tt.route.metric, tt.route.outcome); got != 1 {
					t.Errorf("%s{outcome=%q} = %v, want 1", tt.route.metric, tt.route.outcome, got)
				}
			}
			if tt.wantCode != http.StatusOK && strings.Contains(w.Body.String(), "context deadline") {
				t.Errorf("the problem tells Go's error: %s", w.Body)
			}
		})
	}
}
