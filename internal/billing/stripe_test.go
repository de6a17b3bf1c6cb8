package billing

import (
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
