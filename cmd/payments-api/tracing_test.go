package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/oteltest"
)

// Tracing problems are reported with the rest of the configuration's: one
// line each, exit 2, nothing logged, no header value echoed.
func TestRunTracingConfigErrors(t *testing.T) {
	env := map[string]string{
		"LISTEN_ADDR":                 "127.0.0.1:0",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift",
		"OTEL_EXPORTER_OTLP_HEADERS":  "x-api-key=Sekr1t,Sekr1t-without-a-key",
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"payments-api"}, func(k string) string { return env[k] }, &stdout, &stderr)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 2 {
		t.Fatalf("run = %v, want exit code 2", err)
	}
	// One line each, the configuration's own problems among them.
	for _, name := range []string{"CLERK_ISSUER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if n := strings.Count("\n"+stderr.String(), "\n"+name+": "); n != 1 {
			t.Errorf("%d lines name %s, want 1:\n%s", n, name, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "Sekr1t") {
		t.Errorf("stderr echoes a header value:\n%s", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("nothing may be logged before the configuration is valid, got:\n%s", stdout.String())
	}
}

// The start-up line says where spans go, naming the export headers but never
// their values.
func TestRunTracingStartupLine(t *testing.T) {
	receiver := oteltest.Start(t)
	st := startStack(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.GRPCEndpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_EXPORTER_OTLP_HEADERS":  "x-api-key=Sekr1t-vendor-key",
		"OTEL_SERVICE_NAME":           "payments-eu",
	})
	tracing, _ := st.svc.stdout.logLine("starting")["tracing"].(map[string]any)
	want := map[string]any{
		"enabled":      true,
		"endpoint":     receiver.GRPCEndpoint(),
		"protocol":     "grpc",
		"service_name": "payments-eu",
	}
	for k, v := range want {
		if tracing[k] != v {
			t.Errorf("starting line: tracing.%s = %v, want %v (%v)", k, tracing[k], v, tracing)
		}
	}
	if names, _ := tracing["header_names"].([]any); len(names) != 1 || names[0] != "x-api-key" {
		t.Errorf("tracing.header_names = %v, want [x-api-key]", tracing["header_names"])
	}
	if strings.Contains(st.svc.stdout.String(), "Sekr1t") {
		t.Errorf("the log holds a header value:\n%s", st.svc.stdout)
	}
}
