// Package tracing starts the spans of the service's own steps, those that are
// not HTTP calls (token verification, the webhook's signature check and
// queueing, a delivery attempt), for the packages that take a *Tracer. It
// uses the OpenTelemetry API only; the SDK that records and exports the spans
// is set up by package telemetry, and a nil *Tracer (tracing off) costs a nil
// check.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the service's own spans' instrumentation scope.
const instrumentationName = "github.com/acme/payments-api"

// Tracer starts the spans of the service's steps that are not HTTP calls (token
// verification, the webhook's signature check and queueing, a delivery
// attempt). A nil *Tracer is tracing off: it starts nothing and allocates
// nothing.
type Tracer struct{ tracer trace.Tracer }

// NewTracer returns the Tracer of tp, or nil when tp is nil (tracing off).
func NewTracer(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{tracer: tp.Tracer(instrumentationName)}
}

// Start starts a span named name, a child of ctx's span if it holds one.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, Span) {
	if t == nil {
		return ctx, Span{} // small enough to inline: off costs a nil check
	}
	return t.start(ctx, name, kind)
}

func (t *Tracer) start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, Span) {
	ctx, s := t.tracer.Start(ctx, name, trace.WithSpanKind(kind))
	return ctx, Span{s}
}

// StartLinked is Start with a link to the span that traceparent (a W3C
// traceparent value, see Traceparent) names. Work done long after the request
// that asked for it, such as a queued delivery, runs in a trace of its own
// that points back to that request, instead of stretching the request's trace
// over minutes or days. An empty or malformed traceparent gives no link.
func (t *Tracer) StartLinked(ctx context.Context, name string, kind trace.SpanKind, traceparent string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	return t.startLinked(ctx, name, kind, traceparent)
}

func (t *Tracer) startLinked(ctx context.Context, name string, kind trace.SpanKind, traceparent string) (context.Context, Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(kind)}
	if linked := parseTraceparent(traceparent); linked.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: linked}))
	}
	ctx, s := t.tracer.Start(ctx, name, opts...)
	return ctx, Span{s}
}

// Span is a span started by a Tracer; the zero Span (tracing off) does nothing.
type Span struct{ span trace.Span }

// SetString records a string attribute on the span.
func (s Span) SetString(key, value string) {
	if s.span != nil {
		s.span.SetAttributes(attribute.String(key, value))
	}
}

// SetInt records an integer attribute on the span.
func (s Span) SetInt(key string, value int) {
	if s.span != nil {
		s.span.SetAttributes(attribute.Int(key, value))
	}
}

// SetBool records a boolean attribute on the span.
func (s Span) SetBool(key string, value bool) {
	if s.span != nil {
		s.span.SetAttributes(attribute.Bool(key, value))
	}
}

// End ends the span, marked failed with err's text when err is not nil.
func (s Span) End(err error) {
	if s.span != nil {
		s.end(err)
	}
}

func (s Span) end(err error) {
	if err != nil {
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}

// Traceparent returns the W3C traceparent value of ctx's span, or "" when ctx
// holds none: what a queued job carries so that its delivery can link back to
// the request that queued it (see Tracer.StartLinked).
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	var c traceparentCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	return c.value
}

func parseTraceparent(v string) trace.SpanContext {
	if v == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), &traceparentCarrier{value: v})
	return trace.SpanContextFromContext(ctx)
}

// traceparentCarrier carries the traceparent header alone (no tracestate).
type traceparentCarrier struct{ value string }

func (c *traceparentCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.value
	}
	return ""
}

func (c *traceparentCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.value = value
	}
}

func (c *traceparentCarrier) Keys() []string { return []string{"traceparent"} }
