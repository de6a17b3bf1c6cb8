package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestLogHandler(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	recorded, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	notSampled, unsampledSpan := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).
		Tracer("test").Start(context.Background(), "request")
	defer unsampledSpan.End()
	remoteOnly := trace.ContextWithRemoteSpanContext(context.Background(), span.SpanContext())

	tests := []struct {
		name      string
		ctx       context.Context
		wantTrace bool
	}{
		{"recording span", recorded, true},
		{"no span", context.Background(), false},
		{"span not sampled", notSampled, false},
		{"remote span context only (nothing of ours to find)", remoteOnly, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("request_id", "r-1")
			log.InfoContext(tt.ctx, "request", slog.Int("status", 200))

			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			if line["request_id"] != "r-1" || line["status"] != float64(200) {
				t.Errorf("line lost its own attributes: %s", buf.String())
			}
			wantTrace, wantSpan := any(nil), any(nil)
			if tt.wantTrace {
				wantTrace, wantSpan = span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String()
			}
			if line["trace_id"] != wantTrace || line["span_id"] != wantSpan {
				t.Errorf("trace_id, span_id = %v, %v; want %v, %v", line["trace_id"], line["span_id"], wantTrace, wantSpan)
			}
		})
	}
}

// A record with more attributes than slog keeps inline must not lose any, nor
// corrupt the caller's copy.
func TestLogHandlerManyAttributes(t *testing.T) {
	ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "request")
	defer span.End()
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil)))
	log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.Int("a", 1), slog.Int("b", 2), slog.Int("c", 3), slog.Int("d", 4), slog.Int("e", 5), slog.Int("f", 6))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "trace_id", "span_id"} {
		if _, ok := line[k]; !ok {
			t.Errorf("line has no %s: %s", k, buf.String())
		}
	}
}

func TestLogHandlerEnabled(t *testing.T) {
	h := LogHandler(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow the wrapped handler's level")
	}
	var buf bytes.Buffer
	slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).WithGroup("g").Info("m", "k", "v")
	if got := buf.String(); !bytes.Contains([]byte(got), []byte(`"g":{"k":"v"}`)) {
		t.Errorf("WithGroup lost: %s", got)
	}
}
