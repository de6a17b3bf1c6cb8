package main

import (
	"strings"
	"sync"

	"github.com/acme/payments-api/internal/oteltest"
)

// traceAttributes are the span attributes the trace view shows: enough to
// follow a payment, short enough for a terminal.
var traceAttributes = []string{
	"http.response.status_code", "peer.service", "stripe.event_type", "duplicate", "delivery.attempt",
}

// maxPendingTraces bounds the spans kept while waiting for their trace's root.
const maxPendingTraces = 1000

// tracePrinter prints each trace as an indented tree once its root span
// arrives (a root ends last: the request, or the delivery attempt). Health
// probes are left out: the sandbox polls /readyz while it starts.
type tracePrinter struct {
	out *console

	mu      sync.Mutex
	pending map[string][]oteltest.Span // by trace id
}

func newTracePrinter(out *console) *tracePrinter {
	return &tracePrinter{out: out, pending: make(map[string][]oteltest.Span)}
}

// add takes the spans of one export.
func (p *tracePrinter) add(spans []oteltest.Span) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) > maxPendingTraces {
		clear(p.pending) // roots that never came; forget them
	}
	var roots []oteltest.Span
	for _, s := range spans {
		p.pending[s.TraceID] = append(p.pending[s.TraceID], s)
		if s.ParentSpanID == "" {
			roots = append(roots, s)
		}
	}
	for _, r := range roots {
		trace := p.pending[r.TraceID]
		delete(p.pending, r.TraceID)
		if r.Name == "GET /readyz" || r.Name == "GET /healthz" {
			continue
		}
		for _, line := range strings.Split(strings.TrimSuffix(oteltest.Outline(trace, traceAttributes...), "\n"), "\n") {
			p.out.printf("trace: %s", line)
		}
	}
}

// serveTraceView starts, with -traces, an OTLP/HTTP receiver on a free
// loopback port that prints what the service exports, and points the
// service's OTEL_EXPORTER_OTLP_ENDPOINT at it (s.tracesURL).
func serveTraceView(s *settings, out *console, stops *cleanup) error {
	if !s.traces {
		return nil
	}
	receiver := oteltest.New(oteltest.WithOnSpans(newTracePrinter(out).add), oteltest.WithoutHistory())
	var err error
	s.tracesURL, err = serveLoopback("the trace view", receiver.HTTPHandler(), stops)
	return err
}
