package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testHeaderSecret is a vendor API key in OTEL_EXPORTER_OTLP_HEADERS; no
// message or log line may ever contain it.
const testHeaderSecret = "hny-Sekr1t-team-key"

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestConfigFromEnvOff(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"nothing set", nil},
		{"no endpoint, other variables set", map[string]string{
			"OTEL_SERVICE_NAME": "billing", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		}},
		// Off means nothing else is read, so an invalid value cannot stop the
		// service from starting.
		{"no endpoint, invalid variables", map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon", "OTEL_TRACES_SAMPLER": "sometimes",
		}},
		{"SDK disabled", map[string]string{
			"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
		}},
		{"exporter none", map[string]string{
			"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromEnv(getenv(tt.env))
			if err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if c.Enabled() {
				t.Errorf("Enabled() = true, want false (config %+v)", c)
			}
		})
	}
}

func TestConfigFromEnvDefaults(t *testing.T) {
	c, err := ConfigFromEnv(getenv(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Endpoint:     c.Endpoint,
		Protocol:     ProtocolHTTPProtobuf,
		Timeout:      10 * time.Second,
		ServiceName:  "payments-api",
		Sampler:      SamplerParentBasedAlwaysOn,
		SamplerRatio: 1,
		Batch: Batch{
			ScheduleDelay:      5 * time.Second,
			ExportTimeout:      30 * time.Second,
			MaxQueueSize:       2048,
			MaxExportBatchSize: 512,
		},
	}
	if got := c.Endpoint.String(); got != "http://collector:4318/v1/traces" {
		t.Errorf("Endpoint = %s, want http://collector:4318/v1/traces", got)
	}
	if got := c.LogValue().String(); got != want.LogValue().String() || c.Gzip || c.TLS != nil || c.Headers != nil || c.Batch != want.Batch {
		t.Errorf("config = %+v, want %+v", c, want)
	}
}

func TestConfigFromEnvEndpoint(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"base URL gets /v1/traces", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com:4318",
		}, "https://collector.example.com:4318/v1/traces"},
		{"base URL with a path and a trailing slash", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "https://vendor.example.com/otlp/",
		}, "https://vendor.example.com/otlp/v1/traces"},
		{"traces URL used as it is", map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/custom/traces",
		}, "http://collector:4318/custom/traces"},
		{"traces URL without a path gets /", map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318",
		}, "http://collector:4318/"},
		{"traces URL wins over the base URL", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://general:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/v1/traces",
		}, "http://traces:4318/v1/traces"},
		{"grpc keeps scheme, host and port", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317/ignored", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		}, "http://collector:4317"},
		{"traces protocol wins over the general one", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://collector:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
		}, "http://collector:4317"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromEnv(getenv(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Endpoint.String(); got != tt.want {
				t.Errorf("Endpoint = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestConfigFromEnvSettings(t *testing.T) {
	c, err := ConfigFromEnv(getenv(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://collector:4318",
		"OTEL_EXPORTER_OTLP_HEADERS":         "general=1",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS":  "x-honeycomb-team=" + testHeaderSecret + ", authorization = Basic%20dXNlcjpwYXNz",
		"OTEL_EXPORTER_OTLP_TIMEOUT":         "2500",
		"OTEL_EXPORTER_OTLP_COMPRESSION":     "gzip",
		"OTEL_RESOURCE_ATTRIBUTES":           "deployment.environment.name=prod,service.name=from-attributes,team=pay%2Cments",
		"OTEL_TRACES_SAMPLER":                "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":            "0.25",
		"OTEL_BSP_SCHEDULE_DELAY":            "100",
		"OTEL_BSP_EXPORT_TIMEOUT":            "2000",
		"OTEL_BSP_MAX_QUEUE_SIZE":            "100",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE":     "10",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
	}))
	if err != nil {
		t.Fatal(err)
	}
	wantHeaders := map[string]string{"x-honeycomb-team": testHeaderSecret, "authorization": "Basic dXNlcjpwYXNz"}
	if !maps.Equal(c.Headers, wantHeaders) {
		t.Errorf("Headers = %v, want %v (the traces variable replaces the general one)", c.Headers, wantHeaders)
	}
	wantAttrs := map[string]string{"deployment.environment.name": "prod", "team": "pay,ments"}
	if !maps.Equal(c.ResourceAttributes, wantAttrs) {
		t.Errorf("ResourceAttributes = %v, want %v", c.ResourceAttributes, wantAttrs)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Protocol", c.Protocol, ProtocolHTTPJSON},
		{"Timeout", c.Timeout, 2500 * time.Millisecond},
		{"Gzip", c.Gzip, true},
		{"ServiceName", c.ServiceName, "from-attributes"},
		{"Sampler", c.Sampler, SamplerParentBasedTraceIDRatio},
		{"SamplerRatio", c.SamplerRatio, 0.25},
		{"Batch", c.Batch, Batch{ScheduleDelay: 100 * time.Millisecond, ExportTimeout: 2 * time.Second, MaxQueueSize: 100, MaxExportBatchSize: 10}},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// OTEL_SERVICE_NAME wins over service.name in the attributes.
	c, err = ConfigFromEnv(getenv(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
		"OTEL_RESOURCE_ATTRIBUTES":    "service.name=from-attributes",
		"OTEL_SERVICE_NAME":           "payments-eu",
	}))
	if err != nil || c.ServiceName != "payments-eu" {
		t.Errorf("ServiceName = %q (err %v), want payments-eu", c.ServiceName, err)
	}
}

func TestConfigLogValueHidesHeaderValues(t *testing.T) {
	c, err := ConfigFromEnv(getenv(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "https://api.honeycomb.io",
		"OTEL_EXPORTER_OTLP_HEADERS":  "x-honeycomb-team=" + testHeaderSecret,
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("tracing", c))
	var line struct {
		Tracing map[string]any `json:"tracing"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), testHeaderSecret) {
		t.Errorf("log line holds a header value: %s", buf.String())
	}
	if got := line.Tracing["header_names"]; len(got.([]any)) != 1 || got.([]any)[0] != "x-honeycomb-team" {
		t.Errorf("header_names = %v, want [x-honeycomb-team]", got)
	}
	if got := line.Tracing["endpoint"]; got != "https://api.honeycomb.io/v1/traces" {
		t.Errorf("endpoint = %v, want https://api.honeycomb.io/v1/traces", got)
	}
}

func TestConfigFromEnvProblems(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	tests := []struct {
		name     string
		env      map[string]string
		wantVars []string // each must start a line of the error
	}{
		{"unknown protocol", map[string]string{endpoint: "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
			[]string{"OTEL_EXPORTER_OTLP_PROTOCOL"}},
		{"endpoint without a scheme", map[string]string{endpoint: "collector:4317"}, []string{endpoint}},
		{"endpoint over another scheme", map[string]string{endpoint: "unix:///tmp/otel.sock"}, []string{endpoint}},
		{"endpoint with credentials", map[string]string{endpoint: "https://user:" + testHeaderSecret + "@collector"}, []string{endpoint}},
		{"malformed endpoint holding a secret", map[string]string{endpoint: "https://user:" + testHeaderSecret + "@col lector:x"}, []string{endpoint}},
		{"header without =", map[string]string{endpoint: "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "a=1," + testHeaderSecret}, []string{"OTEL_EXPORTER_OTLP_HEADERS"}},
		{"header badly percent-encoded", map[string]string{endpoint: "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "key=" + testHeaderSecret + "%zz"}, []string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS"}},
		{"timeout not in milliseconds", map[string]string{endpoint: "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, []string{"OTEL_EXPORTER_OTLP_TIMEOUT"}},
		{"unknown compression", map[string]string{endpoint: "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "br"}, []string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"}},
		{"unknown sampler", map[string]string{endpoint: "http://c:4318", "OTEL_TRACES_SAMPLER": "jaeger_remote"}, []string{"OTEL_TRACES_SAMPLER"}},
		{"ratio out of range", map[string]string{endpoint: "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, []string{"OTEL_TRACES_SAMPLER_ARG"}},
		{"batch larger than queue", map[string]string{endpoint: "http://c:4318", "OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"}, []string{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE"}},
		{"negative queue", map[string]string{endpoint: "http://c:4318", "OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, []string{"OTEL_BSP_MAX_QUEUE_SIZE"}},
		{"resource attribute without =", map[string]string{endpoint: "http://c:4318", "OTEL_RESOURCE_ATTRIBUTES": "team"}, []string{"OTEL_RESOURCE_ATTRIBUTES"}},
		{"certificate file missing", map[string]string{endpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_CERTIFICATE": filepath.Join(dir, "missing.pem")}, []string{"OTEL_EXPORTER_OTLP_CERTIFICATE"}},
		{"certificate file not PEM", map[string]string{endpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": notPEM}, []string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"}},
		{"client certificate without key", map[string]string{endpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM}, []string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"}},
		{"client certificate not loadable", map[string]string{endpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": notPEM, "OTEL_EXPORTER_OTLP_CLIENT_KEY": notPEM}, []string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"}},
		{"unknown exporter", map[string]string{endpoint: "http://c:4318", "OTEL_TRACES_EXPORTER": "console"}, []string{"OTEL_TRACES_EXPORTER"}},
		{"SDK disabled not a boolean", map[string]string{endpoint: "http://c:4318", "OTEL_SDK_DISABLED": "yes"}, []string{"OTEL_SDK_DISABLED"}},
		{"every problem at once", map[string]string{endpoint: "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "x", "OTEL_TRACES_SAMPLER": "x", "OTEL_BSP_SCHEDULE_DELAY": "x"},
			[]string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_TRACES_SAMPLER", "OTEL_BSP_SCHEDULE_DELAY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromEnv(getenv(tt.env))
			if err == nil {
				t.Fatalf("err = nil, want problems with %v (config %+v)", tt.wantVars, c)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantVars) {
				t.Errorf("problems = %q, want one for each of %v", lines, tt.wantVars)
			}
			for _, v := range tt.wantVars {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, v+": ")
				}
				if !found {
					t.Errorf("problems = %q, want a line starting %q", lines, v+": ")
				}
			}
			if strings.Contains(err.Error(), testHeaderSecret) {
				t.Errorf("problems echo a secret: %q", err)
			}
			if c.Enabled() {
				t.Errorf("config with problems is enabled: %+v", c)
			}
		})
	}
}
