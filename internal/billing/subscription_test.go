package billing

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

func TestSubscriptionState(t *testing.T) {
	mock := stripemock.Start(t)

	t.Run("a user without customer", func(t *testing.T) {
		proxy := newProxy(t, mock)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		w := s.state(ada)
		if got, want := w.Body.String(), `{"customer_id":null,"subscriptions":[]}`+"\n"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		decodeOK(t, w, &subscriptionState{}) // status and headers
		if n := len(proxy.CallsTo(http.MethodGet, "/v1/subscriptions")); n != 0 {
			t.Errorf("%d subscription lists for users without customer, want 0", n)
		}
	})

	t.Run("shape: every key, null when none", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := addCustomer(proxy, ada)
		full := proxy.AddSubscription(cus, stripetest.Subscription{
			Status: "trialing", PriceID: priceSub, Quantity: 3, Created: 1767300000,
			CurrentPeriodEnd: 1769900000, CancelAtPeriodEnd: true, TrialEnd: 1768500000,
		})
		bare := proxy.AddSubscription(cus, stripetest.Subscription{Status: "incomplete", Created: 1767200000, NoItems: true})
		metered := proxy.AddSubscription(cus, stripetest.Subscription{Status: "active", PriceID: "price_metered", Created: 1767100000, CurrentPeriodEnd: 1769800000})
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})

		w := s.state(ada)
		var doc map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("%s: %v", w.Body, err)
		}
		want := map[string]any{
			"customer_id": cus,
			"subscriptions": []any{
				map[string]any{
					"id": full, "status": "trialing", "price_id": priceSub, "quantity": 3.0,
					"current_period_end": 1769900000.0, "cancel_at_period_end": true, "trial_end": 1768500000.0,
				},
				map[string]any{
					"id": bare, "status": "incomplete", "price_id": nil, "quantity": nil,
					"current_period_end": nil, "cancel_at_period_end": false, "trial_end": nil,
				},
				map[string]any{
					"id": metered, "status": "active", "price_id": "price_metered", "quantity": nil,
					"current_period_end": 1769800000.0, "cancel_at_period_end": false, "trial_end": nil,
				},
			},
		}
		if !reflect.DeepEqual(doc, want) {
			t.Errorf("state:\n got %v\nwant %v", doc, want)
		}
		lists := proxy.CallsTo(http.MethodGet, "/v1/subscriptions")
		if len(lists) != 1 || lists[0].Form.Get("customer") != cus || lists[0].Form.Get("status") != "all" || lists[0].Form.Get("limit") != "100" {
			t.Errorf("lists = %+v, want one for %s with status=all, limit=100", lists, cus)
		}
	})

	t.Run("newest first, at most 10, every status but incomplete_expired", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := addCustomer(proxy, ada)
		statuses := []string{
			"canceled", "active", "incomplete_expired", "past_due", "canceled", "paused", "unpaid",
			"incomplete", "trialing", "canceled", "incomplete_expired", "active", "canceled", "incomplete_expired",
		}
		var want []string // newest first, without incomplete_expired
		for i, st := range statuses {
			id := proxy.AddSubscription(cus, stripetest.Subscription{Status: st, PriceID: priceSub, Quantity: 1, Created: 1767000000 + int64(i)*1000})
			if st != "incomplete_expired" {
				want = append([]string{id + " " + st}, want...)
			}
		}
		want = want[:10]
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		var state subscriptionState
		decodeOK(t, s.state(ada), &state)
		var got []string
		for _, sub := range state.Subscriptions {
			got = append(got, sub.ID+" "+sub.Status)
		}
		if !slices.Equal(got, want) {
			t.Errorf("subscriptions:\n got %v\nwant %v", got, want)
		}
	})

	t.Run("cached per user for 10 s", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := addCustomer(proxy, ada)
		sub := proxy.AddSubscription(cus, stripetest.Subscription{Status: "active", PriceID: priceSub, Quantity: 1})
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), now: func() time.Time { return now }})
		status := func(who auth.Identity) string {
			t.Helper()
			var st subscriptionState
			decodeOK(t, s.state(who), &st)
			if len(st.Subscriptions) == 0 {
				return "none"
			}
			return st.Subscriptions[0].Status
		}
		lists := func() int { return len(proxy.CallsTo(http.MethodGet, "/v1/subscriptions")) }

		if got := status(ada); got != "active" {
			t.Fatalf("status = %s, want active", got)
		}
		proxy.SetSubscriptionStatus(sub, "canceled")
		now = now.Add(MaxSubscriptionCacheTTL - time.Millisecond)
		if got := status(ada); got != "active" || lists() != 1 {
			t.Errorf("within 10 s: status %s after %d lists, want the cached active after 1", got, lists())
		}
		if got := status(bob); got != "none" {
			t.Errorf("another user: %s, want none: the cache is per user", got)
		}
		now = now.Add(time.Millisecond)
		if got := status(ada); got != "canceled" || lists() != 2 {
			t.Errorf("after 10 s: status %s after %d lists, want canceled after 2", got, lists())
		}
	})

	t.Run("failures are not cached and leak nothing", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := addCustomer(proxy, ada)
		proxy.AddSubscription(cus, stripetest.Subscription{Status: "active", PriceID: priceSub, Quantity: 1})
		proxy.Intercept(stripeError("GET", "/v1/subscriptions", 500, "api_error", ""))
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		wantProblem(t, s.state(ada), http.StatusBadGateway, "could not tell your subscription state")
		proxy.Intercept(nil)
		var st subscriptionState
		decodeOK(t, s.state(ada), &st)
		if len(st.Subscriptions) != 1 {
			t.Errorf("after the outage: %+v, want the subscription", st)
		}
	})

	t.Run("search fails", func(t *testing.T) {
		proxy := newProxy(t, mock)
		proxy.Intercept(stripeError("GET", "/v1/customers/search", 503, "api_error", ""))
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		wantProblem(t, s.state(ada), http.StatusBadGateway, "payment provider")
	})
}

// TestSubscriptionCacheBound fills the cache with more users than its cap.
func TestSubscriptionCacheBound(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxUsers = 20
	s := newStack(t, config{stripe: instantStripe{}, maxCachedUsers: maxUsers, now: func() time.Time { return now }})
	cache := s.subscription.(*subscriptionHandler).cache
	for i := range 1000 {
		decodeOK(t, s.state(auth.Identity{UserID: fmt.Sprintf("user_%d", i)}), &subscriptionState{})
		if n := cache.len(); n > maxUsers {
			t.Fatalf("after %d users: %d cached, want at most %d", i+1, n, maxUsers)
		}
	}
	// Once expired, entries go with the next answer.
	now = now.Add(MaxSubscriptionCacheTTL)
	decodeOK(t, s.state(ada), &subscriptionState{})
	if got := cache.len(); got != 1 {
		t.Errorf("cached after everyone expired = %d, want 1", got)
	}
}
