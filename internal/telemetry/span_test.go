package telemetry

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
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
	span.End(errors.New("ignored")) // must not panic
	if tp := Traceparent(ctx); tp != "" {
		t.Errorf("Traceparent(no span) = %q, want empty", tp)
	}
}

func TestTracerSpans(t *testing.T) {
	tp, rec := recorder()
	tracer := NewTracer(tp)

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
	if got := attr(v, "stripe.event_type").AsString(); got != "checkout.session.completed" {
		t.Errorf("stripe.event_type = %q", got)
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
