package billing

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	stripe "github.com/stripe/stripe-go/v76"
)

// TestSubscriptionOf pins where the state answer's price_id and quantity come
// from: the subscription's first item, even when it has more.
func TestSubscriptionOf(t *testing.T) {
	item := func(price string, quantity int64) *stripe.SubscriptionItem {
		it := &stripe.SubscriptionItem{Quantity: quantity}
		if price != "" {
			it.Price = &stripe.Price{ID: price}
		}
		return it
	}
	tests := []struct {
		name         string
		items        *stripe.SubscriptionItemList
		wantPrice    string
		wantQuantity int64
	}{
		{"one item", &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{item("price_a", 2)}}, "price_a", 2},
		{"several items: the first", &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{item("price_a", 2), item("price_b", 5)}}, "price_a", 2},
		{"first item without price: not the second's", &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{item("", 0), item("price_b", 5)}}, "", 0},
		{"empty items", &stripe.SubscriptionItemList{}, "", 0},
		{"no items list", nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := subscriptionOf(&stripe.Subscription{ID: "sub_1", Status: stripe.SubscriptionStatusActive, Items: tt.items})
			if got.PriceID != tt.wantPrice || got.Quantity != tt.wantQuantity {
				t.Errorf("price_id %q, quantity %d; want %q, %d", got.PriceID, got.Quantity, tt.wantPrice, tt.wantQuantity)
			}
			if got.ID != "sub_1" || got.Status != StatusActive {
				t.Errorf("id %q, status %q; want sub_1, active", got.ID, got.Status)
			}
		})
	}
}

// TestStripeClientReusesConnections: rounds of calls to Stripe at once
// reuse the connections of the rounds before. With net/http's default of two
// idle connections per host, each round would open all but two again.
func TestStripeClientReusesConnections(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"price_a","object":"price","active":true,"type":"one_time"}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL) // httptest's URL always parses
	c, err := NewStripeClient(StripeOptions{SecretKey: "sk_test_abc", APIURL: u})
	if err != nil {
		t.Fatal(err)
	}

	const atOnce = 32
	round := func() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range atOnce {
			wg.Go(func() {
				<-start
				if _, err := c.Price(t.Context(), "price_a"); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
	}
	const rounds = 10
	for range rounds {
		round()
	}
	// A round may open more than it needs when a connection whose answer was
	// just read is not back in the pool yet; each stays for later rounds.
	if got := opened.Load(); got > 2*atOnce {
		t.Errorf("%d rounds of %d calls at once opened %d connections, want at most %d", rounds, atOnce, got, 2*atOnce)
	}
}
