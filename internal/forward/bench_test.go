package forward_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/forward"
)

// BenchmarkForward delivers a 3 KB event to a local receiver over a reused
// loopback connection: the forwarder's own cost plus one HTTP round trip.
func BenchmarkForward(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"received":true}`)
	}))
	defer srv.Close()
	f, err := forward.New(forward.Options{URL: mustURL(b, srv.URL), Secret: secret, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer f.CloseIdleConnections()
	event := []byte(`{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"pad":"` + strings.Repeat("x", 3000) + `"}}}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(event)))
	for b.Loop() {
		if _, err := f.Forward(ctx, "evt_1", event); err != nil {
			b.Fatal(err)
		}
	}
}
