package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/oteltest"
)

const testVersion = "v1.2.3-test"

// startTracing runs ConfigFromEnv and Setup as the service does, and returns
// the provider, its shutdown and the log the exporter writes to. Read the log
// only after a flush or the shutdown returned: the export that writes it has
// then finished.
func startTracing(t *testing.T, env map[string]string) (trace.TracerProvider, func(context.Context) error, *bytes.Buffer) {
	t.Helper()
	cfg, err := ConfigFromEnv(getenv(env))
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	var logs bytes.Buffer
	tp, shutdown, err := Setup(context.Background(), cfg, testVersion, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return tp, shutdown, &logs
}

// emit ends one span named name and flushes it by shutting tracing down.
func emit(t *testing.T, tp trace.TracerProvider, shutdown func(context.Context) error, name string) {
	t.Helper()
	_, span := tp.Tracer("test").Start(context.Background(), name)
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), oteltest.Wait)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestSetupExports(t *testing.T) {
	tests := []struct {
		name         string
		env          func(r *oteltest.Receiver) map[string]string
		wantProtocol string
		wantPath     string
		wantGzip     bool
	}{
		{"OTLP/HTTP protobuf by default", func(r *oteltest.Receiver) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.HTTPEndpoint()}
		}, "http/protobuf", "/v1/traces", false},
		{"OTLP/HTTP JSON, gzip", func(r *oteltest.Receiver) map[string]string {
			return map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":    r.HTTPEndpoint(),
				"OTEL_EXPORTER_OTLP_PROTOCOL":    "http/json",
				"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
			}
		}, "http/json", "/v1/traces", true},
		{"OTLP/HTTP to a traces URL used as it is", func(r *oteltest.Receiver) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": r.HTTPEndpoint() + "/custom/spans"}
		}, "http/protobuf", "/custom/spans", false},
		{"OTLP/gRPC", func(r *oteltest.Receiver) map[string]string {
			return map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": r.GRPCEndpoint(),
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			}
		}, "grpc", "/opentelemetry.proto.collector.trace.v1.TraceService/Export", false},
		{"OTLP/gRPC, gzip, traces variables", func(r *oteltest.Receiver) map[string]string {
			return map[string]string{
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":    r.GRPCEndpoint(),
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":    "grpc",
				"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
			}
		}, "grpc", "/opentelemetry.proto.collector.trace.v1.TraceService/Export", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := oteltest.Start(t)
			env := tt.env(r)
			env["OTEL_EXPORTER_OTLP_HEADERS"] = "authorization=Bearer%20" + testHeaderSecret
			tp, shutdown, _ := startTracing(t, env)
			emit(t, tp, shutdown, "step")

			spans := r.Spans()
			if len(spans) != 1 || spans[0].Name != "step" {
				t.Fatalf("spans = %s, want one named step", oteltest.Format(spans))
			}
			wantResource := map[string]any{"service.name": "payments-api", "service.version": testVersion}
			for k, v := range wantResource {
				if got := spans[0].Resource[k]; got != v {
					t.Errorf("resource %s = %v, want %v", k, got, v)
				}
			}
			e := r.Exports()[0]
			if e.Protocol != tt.wantProtocol || e.Path != tt.wantPath || e.Gzip != tt.wantGzip {
				t.Errorf("export = %s %s gzip=%v, want %s %s gzip=%v", e.Protocol, e.Path, e.Gzip, tt.wantProtocol, tt.wantPath, tt.wantGzip)
			}
			if got, want := e.Header.Get("Authorization"), "Bearer "+testHeaderSecret; got != want {
				t.Errorf("Authorization header = %q, want %q", got, want)
			}
		})
	}
}

func TestSetupResource(t *testing.T) {
	r := oteltest.Start(t)
	tp, shutdown, _ := startTracing(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": r.HTTPEndpoint(),
		"OTEL_SERVICE_NAME":           "payments-eu",
		"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name=prod,service.version=ignored,k8s.namespace.name=pay",
	})
	emit(t, tp, shutdown, "step")
	got := r.Spans()[0].Resource
	want := map[string]any{
		"service.name":                "payments-eu",
		"service.version":             testVersion, // the build's version wins
		"deployment.environment.name": "prod",
		"k8s.namespace.name":          "pay",
		"telemetry.sdk.language":      "go",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("resource %s = %v, want %v (resource %v)", k, got[k], v, got)
		}
	}
	if _, ok := got["host.name"]; !ok {
		t.Errorf("resource has no host.name (the pod's name in Kubernetes): %v", got)
	}
}

// The SDK and the exporters read OTEL_* from the process environment on their
// own; Setup must override every such setting with what the caller's getenv
// said, so that a test (or any caller of run) gets exactly its environment.
func TestSetupIgnoresTheProcessEnvironment(t *testing.T) {
	dir := t.TempDir()
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			poison := map[string]string{
				"OTEL_SERVICE_NAME":                     "poisoned",
				"OTEL_RESOURCE_ATTRIBUTES":              "team=poisoned",
				"OTEL_EXPORTER_OTLP_ENDPOINT":           "http://127.0.0.1:1",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":    "http://127.0.0.1:1/nowhere",
				"OTEL_EXPORTER_OTLP_PROTOCOL":           "http/json",
				"OTEL_EXPORTER_OTLP_HEADERS":            "x-poisoned=1",
				"OTEL_EXPORTER_OTLP_TRACES_HEADERS":     "x-poisoned=2",
				"OTEL_EXPORTER_OTLP_COMPRESSION":        "gzip",
				"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
				"OTEL_EXPORTER_OTLP_CERTIFICATE":        dir + "/missing.pem",
				"OTEL_EXPORTER_OTLP_INSECURE":           "false",
				"OTEL_TRACES_SAMPLER":                   "always_off",
				"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT":       "0",
				"OTEL_BSP_MAX_QUEUE_SIZE":               "1",
			}
			for k, v := range poison {
				t.Setenv(k, v)
			}
			r := oteltest.Start(t)
			tp, shutdown, _ := startTracing(t, map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": r.Endpoint(protocol),
				"OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
				"OTEL_RESOURCE_ATTRIBUTES":    "team=payments",
			})
			tracer := tp.Tracer("test")
			for range 3 { // more than the poisoned queue holds
				_, span := tracer.Start(context.Background(), "step", trace.WithAttributes(attribute.String("kept", "yes")))
				span.End()
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}

			spans := r.Spans()
			if len(spans) != 3 {
				t.Fatalf("received %d spans, want 3:\n%s", len(spans), oteltest.Format(spans))
			}
			s := spans[0]
			if s.Resource["service.name"] != "payments-api" || s.Resource["team"] != "payments" || s.Attr("kept") != "yes" {
				t.Errorf("span = %s resource %v", oteltest.Format(spans[:1]), s.Resource)
			}
			for _, e := range r.Exports() {
				if e.Gzip || e.Header.Get("X-Poisoned") != "" || e.Protocol != protocol {
					t.Errorf("export %+v follows the process environment", e)
				}
			}
		})
	}
}

func TestSetupOff(t *testing.T) {
	tp, shutdown, err := Setup(context.Background(), Config{}, testVersion, nil)
	if err != nil || tp != nil {
		t.Fatalf("Setup(off) = %v, %v; want a nil provider and no error", tp, err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown(off) = %v, want nil", err)
	}
}

func TestShutdownFlushes(t *testing.T) {
	r := oteltest.Start(t)
	tp, shutdown, _ := startTracing(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": r.HTTPEndpoint(),
		"OTEL_BSP_SCHEDULE_DELAY":     "3600000", // an hour: only shutdown can send it
	})
	_, span := tp.Tracer("test").Start(context.Background(), "last words")
	span.End()
	if n := len(r.Exports()); n != 0 {
		t.Fatalf("%d exports before shutdown, want 0 (the batch waits an hour)", n)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans := r.Spans(); len(spans) != 1 || spans[0].Name != "last words" {
		t.Errorf("after shutdown received %s, want the one span", oteltest.Format(spans))
	}
}

func TestSampler(t *testing.T) {
	tests := []struct {
		sampler, arg string
		want         int
	}{
		{"always_off", "", 0},
		{"traceidratio", "0", 0},
		{"parentbased_traceidratio", "1", 1},
		{"always_on", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.sampler+"/"+tt.arg, func(t *testing.T) {
			r := oteltest.Start(t)
			tp, shutdown, _ := startTracing(t, map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": r.HTTPEndpoint(),
				"OTEL_TRACES_SAMPLER":         tt.sampler,
				"OTEL_TRACES_SAMPLER_ARG":     tt.arg,
			})
			emit(t, tp, shutdown, "step")
			if got := len(r.Spans()); got != tt.want {
				t.Errorf("received %d spans, want %d", got, tt.want)
			}
		})
	}
}

func TestExportFailuresLoggedOncePerInterval(t *testing.T) {
	r := oteltest.Start(t)
	r.Reject(true)
	tp, _, logs := startTracing(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": r.HTTPEndpoint(),
		"OTEL_EXPORTER_OTLP_HEADERS":  "x-api-key=" + testHeaderSecret,
	})
	sdk := tp.(*sdktrace.TracerProvider)
	tracer := tp.Tracer("test")
	for range 3 {
		_, span := tracer.Start(context.Background(), "step")
		span.End()
		ctx, cancel := context.WithTimeout(context.Background(), oteltest.Wait)
		err := sdk.ForceFlush(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ForceFlush: %v (a failed export must be reported as handled)", err)
		}
	}
	if got := len(r.Exports()); got != 3 {
		t.Fatalf("%d exports, want 3", got)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[0], "trace export failed") {
		t.Errorf("log = %q, want one warning for three failed exports", lines)
	}
	if strings.Contains(logs.String(), testHeaderSecret) {
		t.Errorf("log holds a header value: %s", logs)
	}
	r.Reject(false)
}

func TestSetupTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		for _, mutual := range []bool{false, true} {
			name := protocol + map[bool]string{false: "/server certificate", true: "/client certificate too"}[mutual]
			t.Run(name, func(t *testing.T) {
				r := oteltest.New()
				endpoint := pki.serve(t, r, protocol, mutual)
				env := map[string]string{
					"OTEL_EXPORTER_OTLP_ENDPOINT":    endpoint,
					"OTEL_EXPORTER_OTLP_PROTOCOL":    protocol,
					"OTEL_EXPORTER_OTLP_CERTIFICATE": pki.caFile,
				}
				if mutual {
					env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] = pki.clientCertFile
					env["OTEL_EXPORTER_OTLP_CLIENT_KEY"] = pki.clientKeyFile
				}
				tp, shutdown, logs := startTracing(t, env)
				emit(t, tp, shutdown, "over tls")
				if spans := r.Spans(); len(spans) != 1 {
					t.Errorf("received %d spans over TLS, want 1; log: %s", len(spans), logs)
				}
			})
		}
	}

	// Without the CA, the exporter does not trust the receiver: nothing
	// arrives and the failure is logged.
	r := oteltest.New()
	endpoint := pki.serve(t, r, "http/protobuf", false)
	tp, shutdown, logs := startTracing(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
		"OTEL_EXPORTER_OTLP_TIMEOUT":  "2000",
		"OTEL_BSP_EXPORT_TIMEOUT":     "2000",
	})
	emit(t, tp, shutdown, "untrusted")
	if len(r.Spans()) != 0 || !strings.Contains(logs.String(), "certificate") {
		t.Errorf("spans = %d, log = %s; want none and a certificate error", len(r.Spans()), logs)
	}
}
