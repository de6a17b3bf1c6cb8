package telemetry

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Middleware returns the server middleware that starts a span for each request,
// continuing the caller's trace when it sent a W3C traceparent. Place it outside
// the access log, so that the log line carries the span, and have the router
// call NameServerSpan once it matched a route: until then the span is named by
// the method alone, and a request no route matched keeps that name, so that
// raw paths never become span names.
//
// With tp nil (tracing off) the middleware returns the handler it is given.
func Middleware(tp trace.TracerProvider) func(http.Handler) http.Handler {
	if tp == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	return otelhttp.NewMiddleware("",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics are Prometheus's job
	)
}

// NameServerSpan names the server span of r's context "METHOD route" after the
// route template the router matched, and records it as http.route. It does
// nothing to a span that is not recording.
func NameServerSpan(r *http.Request, route string) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	span.SetName(r.Method + " " + route)
	span.SetAttributes(semconv.HTTPRoute(route))
}

// TransportOptions describe the service a client transport calls.
type TransportOptions struct {
	// Peer names the service called, as the peer.service attribute (e.g.
	// "stripe", "nextjs").
	Peer string
	// Propagate sends the W3C traceparent header with each request, so that the
	// service called can continue the trace. Leave it off for third parties
	// that have no use for our trace ids.
	Propagate bool
}

// Transport returns base (http.DefaultTransport when nil) wrapped so that each
// request it sends, each retry included, is a client span named
// "METHOD /path/template" (see PathTemplate).
//
// With tp nil (tracing off) it returns base itself.
func Transport(tp trace.TracerProvider, base http.RoundTripper, o TransportOptions) http.RoundTripper {
	if tp == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	propagator := propagation.NewCompositeTextMapPropagator() // sends nothing
	if o.Propagate {
		propagator = propagation.TraceContext{}
	}
	return otelhttp.NewTransport(templateAttribute{base},
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + PathTemplate(r.URL.Path)
		}),
		otelhttp.WithSpanOptions(trace.WithAttributes(attribute.String("peer.service", o.Peer))),
	)
}

// templateAttribute records the path template on the client span that the
// request's context carries.
type templateAttribute struct{ base http.RoundTripper }

func (t templateAttribute) RoundTrip(r *http.Request) (*http.Response, error) {
	trace.SpanFromContext(r.Context()).SetAttributes(semconv.URLTemplate(PathTemplate(r.URL.Path)))
	return t.base.RoundTrip(r)
}

// PathTemplate replaces the object ids in an API path by "{id}", so that
// client spans are named after the operation, not the object
// ("/v1/prices/price_1Qx9Zt" → "/v1/prices/{id}"). An id is a segment with an
// underscore and a digit or a capital letter, as Stripe's ids are; words such
// as "billing_portal" stay.
func PathTemplate(path string) string {
	if !strings.Contains(path, "_") {
		return path
	}
	segments := strings.Split(path, "/")
	for i, s := range segments {
		if isID(s) {
			segments[i] = "{id}"
		}
	}
	return strings.Join(segments, "/")
}

func isID(segment string) bool {
	if !strings.Contains(segment, "_") {
		return false
	}
	return strings.ContainsFunc(segment, func(r rune) bool {
		return ('0' <= r && r <= '9') || ('A' <= r && r <= 'Z')
	})
}
