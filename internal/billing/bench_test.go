package billing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/requestlog"
)

// instantStripe is an in-process Stripe port that answers at once. It exists
// to measure the handler's own cost, not to test behaviour.
type instantStripe struct{}

var _ Stripe = instantStripe{}

func (instantStripe) Price(_ context.Context, id string) (Price, error) {
	return Price{ID: id, Active: true, Recurring: true}, nil
}

func (instantStripe) CreateCheckoutSession(context.Context, SessionParams) (Session, error) {
	return Session{ID: "cs_test_bench", URL: "https://checkout.stripe.com/c/pay/cs_test_bench"}, nil
}

// BenchmarkHandler measures one successful checkout through the handler:
// identity, rate limiter, strict decoding, URL checks, idempotency key,
// cached price and the JSON answer, with Stripe answering instantly. The
// baseline is the cost of the request and recorder alone.
func BenchmarkHandler(b *testing.B) {
	body := `{"price_id":"` + priceSub + `","quantity":2,"success_url":"https://app.example.com/ok?session_id={CHECKOUT_SESSION_ID}","cancel_url":"https://app.example.com/pricing"}`
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"session_id":"cs_test_bench","url":"https://checkout.stripe.com/c/pay/cs_test_bench"}` + "\n"))
	})
	for _, bc := range []struct {
		name  string
		limit rate.Limit // 0: the baseline, a handler that only answers
	}{
		{"baseline", 0},
		{"limiter off", rate.Inf},
		{"limiter on", rate.Limit(1e9)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h http.Handler = ok
			if bc.limit != 0 {
				o := testOptions(instantStripe{})
				o.RateLimit, o.RateBurst = bc.limit, 1e9
				h = newStack(b, o).h
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
