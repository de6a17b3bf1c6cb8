package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorder returns a provider that keeps every ended span in memory.
func recorder() (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), rec
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

type okHandler struct{ status int }

func (h *okHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(h.status) }

func TestMiddlewareOffReturnsTheHandler(t *testing.T) {
	h := &okHandler{status: http.StatusOK}
	if got := Middleware(nil)(h); got != http.Handler(h) {
		t.Errorf("Middleware(nil) wrapped the handler: %T", got)
	}
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		route       string // what the router "matched"
		status      int
		traceparent string
		wantName    string
		wantStatus  string
	}{
		{"named by the route template the router reports", http.MethodPost, "/stripe/checkout", 200, "", "POST /stripe/checkout", "Unset"},
		{"no route: method alone, never the raw path", http.MethodGet, "", 404, "", "GET", "Unset"},
		{"server error marks the span failed", http.MethodPost, "/stripe/webhook", 503, "", "POST /stripe/webhook", "Error"},
		{"continues the caller's trace", http.MethodPost, "/stripe/checkout", 200,
			"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "POST /stripe/checkout", "Unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, rec := recorder()
			var logs bytes.Buffer
			log := slog.New(LogHandler(slog.NewJSONHandler(&logs, nil)))
			var inner trace.SpanContext
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inner = trace.SpanContextFromContext(r.Context())
				if tt.route != "" { // the router matched
					NameServerSpan(r, tt.route)
				}
				w.WriteHeader(tt.status)
			})
			// The access log sits inside the middleware, as in the service.
			accessLog := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					next.ServeHTTP(w, r)
					log.InfoContext(r.Context(), "request")
				})
			}
			srv := Middleware(tp)(accessLog(h))

			req := httptest.NewRequest(tt.method, "/stripe/checkout?token=secret", nil)
			if tt.traceparent != "" {
				req.Header.Set("traceparent", tt.traceparent)
			}
			srv.ServeHTTP(httptest.NewRecorder(), req)

			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != tt.wantName || s.SpanKind() != trace.SpanKindServer || s.Status().Code.String() != tt.wantStatus {
				t.Errorf("span = %q %v %v, want %q server %s", s.Name(), s.SpanKind(), s.Status().Code, tt.wantName, tt.wantStatus)
			}
			if got := attr(s, "http.route").AsString(); got != tt.route {
				t.Errorf("http.route = %q, want %q", got, tt.route)
			}
			if got := attr(s, "http.response.status_code").AsInt64(); got != int64(tt.status) {
				t.Errorf("http.response.status_code = %d, want %d", got, tt.status)
			}
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.String(), "secret") {
					t.Errorf("attribute %s carries the query string: %s", kv.Key, kv.Value.String())
				}
			}
			if !inner.Equal(s.SpanContext()) {
				t.Errorf("the handler saw span %v, want the request's %v", inner, s.SpanContext())
			}
			if tt.traceparent != "" {
				if got := s.Parent(); got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || got.SpanID().String() != "b7ad6b7169203331" {
					t.Errorf("parent = %v, want the caller's span", got)
				}
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			if line["trace_id"] != s.SpanContext().TraceID().String() || line["span_id"] != s.SpanContext().SpanID().String() {
				t.Errorf("access log %s does not name span %v", logs.String(), s.SpanContext())
			}
		})
	}
}

// roundTripper answers every request itself and keeps the last one.
type roundTripper struct{ last *http.Request }

func (rt *roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.last = r
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

func TestTransportOffReturnsBase(t *testing.T) {
	base := &roundTripper{}
	if got := Transport(nil, base, TransportOptions{Peer: "stripe"}); got != http.RoundTripper(base) {
		t.Errorf("Transport(nil) wrapped the base: %T", got)
	}
	if got := Transport(nil, nil, TransportOptions{}); got != nil {
		t.Errorf("Transport(nil, nil) = %T, want nil (the client's default)", got)
	}
}

func TestTransport(t *testing.T) {
	tests := []struct {
		name      string
		url       string
		propagate bool
		wantName  string
	}{
		{"to Next.js, with traceparent", "http://nextjs:3000/api/payments/webhook", true, "POST /api/payments/webhook"},
		{"to Stripe, ids templated, no traceparent", "https://api.stripe.com/v1/prices/price_1Qx9ZtLkdIwHu7ix", false, "POST /v1/prices/{id}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, rec := recorder()
			base := &roundTripper{}
			client := &http.Client{Transport: Transport(tp, base, TransportOptions{Peer: "peer", Propagate: tt.propagate})}
			ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tt.url, strings.NewReader("{}"))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			parent.End()

			var s sdktrace.ReadOnlySpan
			for _, e := range rec.Ended() {
				if e.Name() != "parent" {
					s = e
				}
			}
			if s == nil || s.Name() != tt.wantName || s.SpanKind() != trace.SpanKindClient {
				t.Fatalf("client span = %v, want %q", s, tt.wantName)
			}
			if s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("client span's parent = %v, want the caller's span", s.Parent())
			}
			if got := attr(s, "peer.service").AsString(); got != "peer" {
				t.Errorf("peer.service = %q, want peer", got)
			}
			if got, want := attr(s, "url.template").AsString(), strings.TrimPrefix(tt.wantName, "POST "); got != want {
				t.Errorf("url.template = %q, want %q", got, want)
			}
			got := base.last.Header.Get("traceparent")
			want := ""
			if tt.propagate {
				want = "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
			}
			if got != want {
				t.Errorf("traceparent sent = %q, want %q", got, want)
			}
		})
	}
}

func TestPathTemplate(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/v1/prices/price_1Qx9ZtLkdIwHu7ix", "/v1/prices/{id}"},
		{"/v1/customers/cus_NffrFeUfNV2Hib", "/v1/customers/{id}"},
		{"/v1/checkout/sessions", "/v1/checkout/sessions"},
		{"/v1/billing_portal/sessions", "/v1/billing_portal/sessions"},
		{"/v1/customers/search", "/v1/customers/search"},
		{"/v1/subscriptions/sub_1MowQVLkdIwHu7ixeRlqHVzs/items", "/v1/subscriptions/{id}/items"},
		{"/api/payments/webhook", "/api/payments/webhook"},
		{"/", "/"},
	}
	for _, tt := range tests {
		if got := PathTemplate(tt.path); got != tt.want {
			t.Errorf("PathTemplate(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestNameServerSpanNotRecording(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	NameServerSpan(r, "/healthz") // no span: nothing to do, no panic
	_, span := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("t").Start(r.Context(), "GET")
	sampledOut := r.WithContext(trace.ContextWithSpan(r.Context(), span))
	NameServerSpan(sampledOut, "/healthz")
	if span.IsRecording() {
		t.Fatal("a span sampled out records")
	}
	// A request sampled out pays nothing for its name: no string built, no
	// attribute made.
	for _, req := range []*http.Request{r, sampledOut} {
		if allocs := testing.AllocsPerRun(100, func() { NameServerSpan(req, "/healthz") }); allocs != 0 {
			t.Errorf("NameServerSpan on a span not recording: %v allocations, want 0", allocs)
		}
	}
}
