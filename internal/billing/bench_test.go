package billing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/ratelimit"
	"github.com/acme/payments-api/internal/requestlog"
)

// instantStripe is an in-process Stripe port that answers at once. It exists
// to measure the handlers' own cost, not to test behaviour.
type instantStripe struct{}

var _ Stripe = instantStripe{}

func (instantStripe) Price(_ context.Context, id string) (Price, error) {
	return Price{ID: id, Active: true, Recurring: true}, nil
}

func (instantStripe) CreateCheckoutSession(context.Context, SessionParams) (Session, error) {
	return Session{ID: "cs_test_bench", URL: "https://checkout.stripe.com/c/pay/cs_test_bench"}, nil
}

func (instantStripe) SearchCustomers(context.Context, string) ([]Customer, error) {
	return []Customer{{ID: "cus_bench", Created: 1}}, nil
}

func (instantStripe) CreateCustomer(context.Context, CustomerParams) (Customer, error) {
	return Customer{ID: "cus_bench", Created: 1}, nil
}

func (instantStripe) Subscriptions(context.Context, SubscriptionQuery) ([]Subscription, error) {
	return []Subscription{{ID: "sub_bench", Status: StatusCanceled, Created: 1, PriceID: "price_bench", Quantity: 1}}, nil
}

func (instantStripe) CreatePortalSession(context.Context, PortalParams) (string, error) {
	return "https://billing.stripe.com/p/session/bench", nil
}

// BenchmarkCheckout measures one successful checkout through the handler:
// identity, rate limiter, strict decoding, URL checks, idempotency key,
// cached price, the customer (found by search), the single-subscription guard
// and the JSON answer, with Stripe answering instantly. The baseline is the
// cost of the request and recorder alone.
func BenchmarkCheckout(b *testing.B) {
	body := `{"price_id":"` + priceSub + `","quantity":2,"success_url":"https://app.example.com/ok?session_id={CHECKOUT_SESSION_ID}","cancel_url":"https://app.example.com/pricing"}`
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"session_id":"cs_test_bench","url":"https://checkout.stripe.com/c/pay/cs_test_bench"}` + "\n"))
	})
	for _, bc := range []struct {
		name    string
		handler bool
		limited bool
	}{
		{"baseline", false, false},
		{"limiter off", true, false},
		{"limiter on", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h http.Handler = ok
			if bc.handler {
				c := config{stripe: instantStripe{}, single: true}
				if bc.limited {
					l, err := ratelimit.NewMemory(ratelimit.MemoryOptions{Rate: ratelimit.Rate{N: 1e9, Per: time.Second}})
					if err != nil {
						b.Fatal(err)
					}
					c.limiter = l
				}
				h = newStack(b, c).checkout
			}
			ctx, _ := requestlog.New(context.Background(), testRequestID)
			ctx = auth.WithIdentity(ctx, ada)
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/stripe/checkout", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Idempotency-Key", "bench-click")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkSubscriptionCached measures GET /stripe/subscription answered from
// the cache, the common case of a page asking on every load.
func BenchmarkSubscriptionCached(b *testing.B) {
	h := newStack(b, config{stripe: instantStripe{}}).subscription
	ctx, _ := requestlog.New(context.Background(), testRequestID)
	ctx = auth.WithIdentity(ctx, ada)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/stripe/subscription", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
