package main

import (
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/oteltest"
)

func TestTracePrinter(t *testing.T) {
	var buf logtest.Buffer
	p := newTracePrinter(&console{w: &buf})
	// The children end, and are exported, before their root.
	p.add([]oteltest.Span{
		{TraceID: "t1", SpanID: "c1", ParentSpanID: "r1", Name: "POST /v1/checkout/sessions", Kind: "client",
			Attributes: map[string]any{"peer.service": "stripe", "http.response.status_code": int64(200), "url.full": "https://api.stripe.com/v1/checkout/sessions"}},
		{TraceID: "t2", SpanID: "h1", Name: "GET /readyz", Kind: "server"},
	})
	if got := buf.String(); got != "" {
		t.Errorf("printed before the root arrived, or a health probe: %q", got)
	}
	p.add([]oteltest.Span{{TraceID: "t1", SpanID: "r1", Name: "POST /stripe/checkout", Kind: "server"}})
	want := "trace: POST /stripe/checkout [server, 0s] (trace t1)\n" +
		"trace:   POST /v1/checkout/sessions [client, 0s] http.response.status_code=200 peer.service=stripe\n"
	if got := buf.String(); got != want {
		t.Errorf("printed\n%s\nwant\n%s", got, want)
	}
	if len(p.pending) != 0 {
		t.Errorf("%d traces still pending, want none", len(p.pending))
	}
	for i := range maxPendingTraces + 2 {
		p.add([]oteltest.Span{{TraceID: strings.Repeat("x", i+1), SpanID: "c", ParentSpanID: "never"}})
	}
	if len(p.pending) > maxPendingTraces {
		t.Errorf("%d traces pending, want at most %d", len(p.pending), maxPendingTraces)
	}
}
