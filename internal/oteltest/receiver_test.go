package oteltest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestWithoutHistory: a receiver without history hands each export's spans
// to its WithOnSpans function and keeps nothing; one with history keeps both.
func TestWithoutHistory(t *testing.T) {
	export, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), Name: "POST /stripe/webhook",
		}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, forget := range []bool{false, true} {
		var (
			mu     sync.Mutex
			handed int
		)
		opts := []Option{WithOnSpans(func(s []Span) { mu.Lock(); handed += len(s); mu.Unlock() })}
		if forget {
			opts = append(opts, WithoutHistory())
		}
		r := New(opts...)
		srv := httptest.NewServer(r.HTTPHandler())
		for range 3 {
			resp, err := http.Post(srv.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader(export))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("export answered %d", resp.StatusCode)
			}
		}
		srv.Close()

		kept := 3
		if forget {
			kept = 0
		}
		mu.Lock()
		if handed != 3 {
			t.Errorf("forget=%v: %d spans handed on, want 3", forget, handed)
		}
		mu.Unlock()
		if got := len(r.Spans()); got != kept {
			t.Errorf("forget=%v: %d spans kept, want %d", forget, got, kept)
		}
		if got := len(r.Exports()); got != kept {
			t.Errorf("forget=%v: %d exports kept, want %d", forget, got, kept)
		}
	}
}
