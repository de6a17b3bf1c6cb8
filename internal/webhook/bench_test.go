package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/webhook"
	"github.com/acme/payments-api/internal/webhooktest"
)

func fixture(b *testing.B) ([]byte, string) {
	b.Helper()
	body, err := os.ReadFile("testdata/checkout_session_completed.json")
	if err != nil {
		b.Fatal(err)
	}
	return body, webhooktest.Sign(body, stripeSecret, time.Now())
}

// BenchmarkConstructEvent is the baseline: stripe-go's verification and decoding
// alone, which the handler's own cost is measured against.
func BenchmarkConstructEvent(b *testing.B) {
	body, header := fixture(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := stripewebhook.ConstructEventWithOptions(body, header, stripeSecret,
			stripewebhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchHandler(b *testing.B, h http.Handler, wantBody string) {
	body, header := fixture(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", header)
		ctx, _ := requestlog.New(req.Context(), "req-bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req.WithContext(ctx))
		if w.Code != http.StatusOK || w.Body.String() != wantBody {
			b.Fatalf("status %d body %s", w.Code, w.Body)
		}
	}
}

// BenchmarkHandlerIgnored verifies and routes a 3 KB checkout.session.completed
// event whose type is not in the forward list.
func BenchmarkHandlerIgnored(b *testing.B) {
	h := webhook.Handler(webhook.Options{
		Secret: stripeSecret, ForwardTypes: []string{"invoice.paid"},
		Forwarder: nopForwarder{}, Registerer: prometheus.NewRegistry(),
	})
	benchHandler(b, h, `{"received":true,"forwarded":false}`+"\n")
}

// BenchmarkHandlerForwardPath verifies and routes the same event to an in-memory
// forwarder: the handler's cost on the forward path, network excluded.
func BenchmarkHandlerForwardPath(b *testing.B) {
	h := webhook.Handler(webhook.Options{
		Secret: stripeSecret, ForwardTypes: forwardTypes,
		Forwarder: nopForwarder{}, Registerer: prometheus.NewRegistry(),
	})
	benchHandler(b, h, `{"received":true,"forwarded":true}`+"\n")
}

// BenchmarkHandlerForwardHTTP is the whole path: verification, routing, and a
// real forward over loopback HTTP to fakenext, which verifies the new signature.
func BenchmarkHandlerForwardHTTP(b *testing.B) {
	next := httptest.NewServer(fakenext.New(nextSecret))
	defer next.Close()
	nextURL, err := url.Parse(next.URL)
	if err != nil {
		b.Fatal(err)
	}
	fwd, err := forward.New(forward.Options{URL: nextURL, Secret: nextSecret, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.CloseIdleConnections()
	h := webhook.Handler(webhook.Options{
		Secret: stripeSecret, ForwardTypes: forwardTypes,
		Forwarder: fwd, Registerer: prometheus.NewRegistry(),
	})
	benchHandler(b, h, `{"received":true,"forwarded":true}`+"\n")
}
