package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The benchmarks compare each building block with tracing off against the
// same code not wrapped at all: "off" must cost nothing. (Off, the service
// does not even install the log wrapper or call NameServerSpan.) "on" (every span
// sampled, exported to nowhere) is there for scale.

func benchProvider(b *testing.B) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// discardWriter is a ResponseWriter that keeps nothing, so that only the
// middleware's own cost is measured.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkMiddleware(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NameServerSpan(r, "/stripe/checkout") // as the router does when tracing is on
		w.WriteHeader(http.StatusOK)
	})
	cases := []struct {
		name string
		h    http.Handler
	}{
		{"unwrapped", &okHandler{status: http.StatusOK}},
		{"off", Middleware(nil)(&okHandler{status: http.StatusOK})},
		{"on", Middleware(benchProvider(b))(h)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodPost, "/stripe/checkout", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}

func BenchmarkTransport(b *testing.B) {
	base := &roundTripper{}
	cases := []struct {
		name string
		rt   http.RoundTripper
	}{
		{"unwrapped", base},
		{"off", Transport(nil, base, TransportOptions{Peer: "nextjs", Propagate: true})},
		{"on", Transport(benchProvider(b), base, TransportOptions{Peer: "nextjs", Propagate: true})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodPost, "http://nextjs:3000/api/payments/webhook", http.NoBody)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

func BenchmarkLogHandler(b *testing.B) {
	traced, span := benchProvider(b).Tracer("bench").Start(context.Background(), "request")
	defer span.End()
	json := slog.NewJSONHandler(io.Discard, nil)
	cases := []struct {
		name string
		log  *slog.Logger
		ctx  context.Context
	}{
		{"unwrapped", slog.New(json), context.Background()},
		// Tracing on, a line logged outside any request: the wrapper's whole
		// cost is one context lookup.
		{"wrapped/no span", slog.New(LogHandler(json)), context.Background()},
		{"wrapped/span", slog.New(LogHandler(json)), traced},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.log.LogAttrs(c.ctx, slog.LevelInfo, "request",
					slog.String("request_id", "0af7651916cd43dd"), slog.String("route", "/stripe/checkout"), slog.Int("status", 200))
			}
		})
	}
}
