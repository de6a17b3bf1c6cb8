package tracing

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTracerOff(t *testing.T) {
	tracer := NewTracer(nil)
	if tracer != nil {
		t.Fatalf("NewTracer(nil) = %v, want nil", tracer)
	}
	ctx := context.Background()
	got, span := tracer.Start(ctx, "verify token", trace.SpanKindInternal)
	if got != ctx || span != (Span{}) {
		t.Errorf("Start (off) = %v, %v; want the same context and the zero Span", got, span)
	}
	got, span = tracer.StartLinked(ctx, "deliver", trace.SpanKindConsumer, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if got != ctx || span != (Span{}) {
		t.Errorf("StartLinked (off) = %v, %v; want the same context and the zero Span", got, span)
	}
	span.SetString("k", "v")
	span.SetBool("k", true)
	span.SetInt("k", 1)
	span.End(errors.New("ignored")) // must not panic
	if tp := Traceparent(ctx); tp != "" {
		t.Errorf("Traceparent(no span) = %q, want empty", tp)
	}
}

// With tracing off, a step's span costs no allocation: the service pays
// nothing for tracing it does not do.
func TestTracerOffAllocatesNothing(t *testing.T) {
	var tracer *Tracer
	ctx := context.Background()
	err := errors.New("refused")
	const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	allocs := testing.AllocsPerRun(100, func() {
		_, span := tracer.Start(ctx, "auth.verify_token", trace.SpanKindInternal)
		span.SetString("k", "v")
		span.SetInt("k", 1)
		span.SetBool("k", true)
		span.End(err)
		_, linked := tracer.StartLinked(ctx, "delivery.attempt", trace.SpanKindConsumer, traceparent)
		linked.End(nil)
		sinkString = Traceparent(ctx)
	})
	if allocs != 0 {
		t.Errorf("tracing off: %v allocations per step, want 0", allocs)
	}
}

var sinkString string

func TestTracerSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := NewTracer(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))

	reqCtx, request := tracer.Start(context.Background(), "request", trace.SpanKindServer)
	verifyCtx, verify := tracer.Start(reqCtx, "verify signature", trace.SpanKindInternal)
	verify.SetString("stripe.event_type", "checkout.session.completed")
	verify.SetBool("duplicate", false)
	verify.End(errors.New("no v1 signature matches"))
	queued := Traceparent(verifyCtx)
	request.End(nil)

	// Later, elsewhere: the delivery links back to the request's span.
	_, deliver := tracer.StartLinked(context.Background(), "deliver", trace.SpanKindConsumer, queued)
	deliver.End(nil)
	_, orphan := tracer.StartLinked(context.Background(), "deliver", trace.SpanKindConsumer, "not-a-traceparent")
	orphan.End(nil)

	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	v, d, o := spans[0], spans[2], spans[3]
	if v.Parent().SpanID() != request.span.SpanContext().SpanID() || v.SpanKind() != trace.SpanKindInternal {
		t.Errorf("verify span: parent %v kind %v, want the request's span and internal", v.Parent(), v.SpanKind())
	}
	if v.Status().Code != codes.Error || v.Status().Description != "no v1 signature matches" {
		t.Errorf("verify status = %v, want error with the cause", v.Status())
	}
	if got := v.Attributes(); len(got) != 2 || got[0].Value.AsString() != "checkout.session.completed" || got[1].Value.AsBool() {
		t.Errorf("verify attributes = %v, want the event type and duplicate=false", got)
	}
	if want := "00-" + v.SpanContext().TraceID().String() + "-" + v.SpanContext().SpanID().String() + "-01"; queued != want {
		t.Errorf("Traceparent = %q, want %q", queued, want)
	}
	if d.Parent().IsValid() || d.SpanContext().TraceID() == v.SpanContext().TraceID() {
		t.Errorf("delivery span is in the request's trace (parent %v): want a trace of its own", d.Parent())
	}
	if links := d.Links(); len(links) != 1 || !links[0].SpanContext.Equal(trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: v.SpanContext().TraceID(), SpanID: v.SpanContext().SpanID(), TraceFlags: trace.FlagsSampled, Remote: true,
	})) {
		t.Errorf("delivery links = %v, want one to the verify span %v", links, v.SpanContext())
	}
	if len(o.Links()) != 0 {
		t.Errorf("a malformed traceparent gave links %v, want none", o.Links())
	}
}

var sinkCtx context.Context

// BenchmarkTracer compares a step's span with tracing off against no span at
// all: off must cost nothing.
func BenchmarkTracer(b *testing.B) {
	b.Run("unwrapped", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			sinkCtx = ctx
		}
	})
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, c := range []struct {
		name   string
		tracer *Tracer
	}{{"off", NewTracer(nil)}, {"on", NewTracer(tp)}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var span Span
				sinkCtx, span = c.tracer.Start(ctx, "auth.verify_token", trace.SpanKindInternal)
				span.End(nil)
			}
		})
	}
}
