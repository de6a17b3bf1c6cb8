// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// variables, and provides what instruments the service where its handlers,
// transports and logger are built: a server middleware whose spans the router
// names by route template, client transports, and an slog handler that puts
// trace_id and span_id on the log lines of a traced request. (Spans of steps
// that are not HTTP calls come from package tracing, which needs no SDK.)
//
// Tracing is off unless an OTLP endpoint is configured. Off means no provider:
// nothing is then wrapped at all, so that the service pays nothing for tracing
// it does not do.
package telemetry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultServiceName is the service.name of every span unless OTEL_SERVICE_NAME
// (or service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "payments-api"

// Protocol is the OTLP transport spans are exported with.
type Protocol string

// The protocols OTEL_EXPORTER_OTLP_PROTOCOL may name.
const (
	ProtocolHTTPProtobuf Protocol = "http/protobuf"
	ProtocolHTTPJSON     Protocol = "http/json"
	ProtocolGRPC         Protocol = "grpc"
)

// The samplers OTEL_TRACES_SAMPLER may name.
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// Config is the tracing configuration. The zero Config is tracing off.
type Config struct {
	// Endpoint is where spans are exported: for OTLP/HTTP the URL spans are
	// POSTed to, path included; for gRPC only its scheme (http: plaintext,
	// https: TLS), host and port count. Nil means tracing is off.
	Endpoint *url.URL
	Protocol Protocol
	// Headers are sent with every export; their values are often credentials
	// of a tracing vendor, so they are never logged.
	Headers map[string]string
	// Timeout bounds one export.
	Timeout time.Duration
	// Gzip compresses exports.
	Gzip bool
	// TLS carries the certificate authority and client certificate from
	// OTEL_EXPORTER_OTLP_CERTIFICATE and _CLIENT_CERTIFICATE/_CLIENT_KEY; nil
	// uses the system's roots and no client certificate.
	TLS *tls.Config

	ServiceName string
	// ResourceAttributes are OTEL_RESOURCE_ATTRIBUTES, service.name excepted
	// (it is ServiceName).
	ResourceAttributes map[string]string

	// Sampler is one of the Sampler… names; SamplerRatio is its argument for
	// the trace-id-ratio samplers.
	Sampler      string
	SamplerRatio float64

	Batch Batch
}

// Batch tunes the batch span processor (OTEL_BSP_*).
type Batch struct {
	ScheduleDelay      time.Duration
	ExportTimeout      time.Duration
	MaxQueueSize       int
	MaxExportBatchSize int
}

// Enabled reports whether spans are exported.
func (c Config) Enabled() bool { return c.Endpoint != nil }

// LogValue is the configuration for the start-up log: header names are shown,
// their values never.
func (c Config) LogValue() slog.Value {
	if !c.Enabled() {
		return slog.GroupValue(slog.Bool("enabled", false))
	}
	return slog.GroupValue(
		slog.Bool("enabled", true),
		slog.String("endpoint", c.Endpoint.String()),
		slog.String("protocol", string(c.Protocol)),
		slog.String("service_name", c.ServiceName),
		slog.String("sampler", c.Sampler),
		slog.Float64("sampler_ratio", c.SamplerRatio),
		slog.Any("header_names", slices.Sorted(maps.Keys(c.Headers))),
		slog.Bool("gzip", c.Gzip),
		slog.Duration("timeout", c.Timeout),
	)
}

// Defaults of the variables, as the OpenTelemetry specification gives them.
const (
	defaultTimeout            = 10 * time.Second
	defaultScheduleDelay      = 5 * time.Second
	defaultExportTimeout      = 30 * time.Second
	defaultMaxQueueSize       = 2048
	defaultMaxExportBatchSize = 512
	tracesPath                = "/v1/traces"
)

// ConfigFromEnv reads the standard OTEL_* variables through getenv, and only
// through it: the caller's environment decides, never the process's (see
// Setup). Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, unless OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none; when it is off, no other variable is looked at.
//
// The error, when not nil, has one line per problem, each naming its variable
// and none echoing a header value.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	l := envReader{getenv: getenv}
	if l.boolean("OTEL_SDK_DISABLED") {
		return Config{}, l.err()
	}
	switch v := l.get("OTEL_TRACES_EXPORTER"); v {
	case "", "otlp":
	case "none":
		return Config{}, nil
	default:
		l.fail("OTEL_TRACES_EXPORTER", "unknown exporter %q (want otlp or none)", v)
		return Config{}, l.err()
	}
	if l.get(l.signal("ENDPOINT")) == "" {
		return Config{}, nil
	}
	c := Config{Protocol: l.protocol()}
	c.Endpoint = l.endpoint(c.Protocol)
	c.Headers = l.keyValues(l.signal("HEADERS"))
	c.Timeout = l.millis(l.signal("TIMEOUT"), defaultTimeout)
	c.Gzip = l.compression()
	c.TLS = l.tlsConfig()
	if c.TLS != nil && c.Endpoint != nil && c.Endpoint.Scheme != "https" {
		l.fail(l.signal("ENDPOINT"), "is a plaintext http:// URL, yet a certificate is configured: use https://")
	}

	c.ResourceAttributes = l.keyValues("OTEL_RESOURCE_ATTRIBUTES")
	c.ServiceName = DefaultServiceName
	if name := c.ResourceAttributes["service.name"]; name != "" {
		c.ServiceName = name
	}
	delete(c.ResourceAttributes, "service.name")
	if name := l.get("OTEL_SERVICE_NAME"); name != "" {
		c.ServiceName = name
	}

	c.Sampler, c.SamplerRatio = l.sampler()
	c.Batch = Batch{
		ScheduleDelay:      l.millis("OTEL_BSP_SCHEDULE_DELAY", defaultScheduleDelay),
		ExportTimeout:      l.millis("OTEL_BSP_EXPORT_TIMEOUT", defaultExportTimeout),
		MaxQueueSize:       l.positive("OTEL_BSP_MAX_QUEUE_SIZE", defaultMaxQueueSize),
		MaxExportBatchSize: l.positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaultMaxExportBatchSize),
	}
	if c.Batch.MaxExportBatchSize > c.Batch.MaxQueueSize {
		l.fail("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "must not exceed OTEL_BSP_MAX_QUEUE_SIZE (%d)", c.Batch.MaxQueueSize)
	}
	if err := l.err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// envReader reads variables and collects every problem instead of stopping at
// the first.
type envReader struct {
	getenv   func(string) string
	problems []error
}

func (l *envReader) fail(name, format string, args ...any) {
	l.problems = append(l.problems, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
}

func (l *envReader) err() error { return errors.Join(l.problems...) }

func (l *envReader) get(name string) string { return strings.TrimSpace(l.getenv(name)) }

// signal returns the name of the traces-specific variable
// (OTEL_EXPORTER_OTLP_TRACES_<suffix>) when it is set, else of the general one
// (OTEL_EXPORTER_OTLP_<suffix>): the specific one wins.
func (l *envReader) signal(suffix string) string {
	if name := "OTEL_EXPORTER_OTLP_TRACES_" + suffix; l.get(name) != "" {
		return name
	}
	return "OTEL_EXPORTER_OTLP_" + suffix
}

func (l *envReader) boolean(name string) bool {
	switch v := strings.ToLower(l.get(name)); v {
	case "true":
		return true
	case "", "false":
		return false
	default:
		l.fail(name, "unknown value %q (want true or false)", v)
		return false
	}
}

func (l *envReader) protocol() Protocol {
	name := l.signal("PROTOCOL")
	switch p := Protocol(l.get(name)); p {
	case "":
		return ProtocolHTTPProtobuf
	case ProtocolHTTPProtobuf, ProtocolHTTPJSON, ProtocolGRPC:
		return p
	default:
		l.fail(name, "unknown protocol %q (want http/protobuf, http/json or grpc)", p)
		return ProtocolHTTPProtobuf
	}
}

// endpoint returns the export URL, or nil when it is invalid. OTEL_EXPORTER_OTLP_ENDPOINT is a base URL that OTLP/HTTP appends
// /v1/traces to; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is.
func (l *envReader) endpoint(p Protocol) *url.URL {
	name := l.signal("ENDPOINT")
	v := l.get(name)
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		// The value is not echoed: a malformed URL may still carry credentials.
		l.fail(name, "is not an http:// or https:// URL (e.g. http://otel-collector:4318)")
		return nil
	case u.User != nil:
		l.fail(name, "must not carry credentials: send them with OTEL_EXPORTER_OTLP_HEADERS")
		return nil
	}
	switch {
	case p == ProtocolGRPC:
		u.Path = ""
	case name == "OTEL_EXPORTER_OTLP_ENDPOINT":
		u.Path = strings.TrimSuffix(u.Path, "/") + tracesPath
	case u.Path == "":
		u.Path = "/"
	}
	u.RawPath = ""
	return u
}

// keyValues parses a comma-separated list of key=value pairs whose values are
// percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES
// are. Problems name the entry by position, never by value: header values are
// credentials.
func (l *envReader) keyValues(name string) map[string]string {
	v := l.get(name)
	if v == "" {
		return nil
	}
	out := make(map[string]string)
	for i, entry := range strings.Split(v, ",") {
		key, value, ok := strings.Cut(entry, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			l.fail(name, "entry %d is not key=value", i+1)
			continue
		}
		decoded, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil {
			l.fail(name, "the value of %q is not percent-encoded correctly", key)
			continue
		}
		out[key] = decoded
	}
	return out
}

// millis reads a number of milliseconds, the unit of every OTEL_* duration.
func (l *envReader) millis(name string, def time.Duration) time.Duration {
	v := l.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		l.fail(name, "%q is not a positive number of milliseconds", v)
		return def
	}
	return time.Duration(n) * time.Millisecond
}

func (l *envReader) positive(name string, def int) int {
	v := l.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		l.fail(name, "%q is not a positive integer", v)
		return def
	}
	return n
}

func (l *envReader) compression() bool {
	name := l.signal("COMPRESSION")
	switch v := strings.ToLower(l.get(name)); v {
	case "gzip":
		return true
	case "", "none":
		return false
	default:
		l.fail(name, "unknown compression %q (want gzip or none)", v)
		return false
	}
}

// tlsConfig loads the certificate authority and the client certificate that
// the OTEL_EXPORTER_OTLP_*CERTIFICATE and *CLIENT_KEY variables name (files).
func (l *envReader) tlsConfig() *tls.Config {
	var c tls.Config
	if name := l.signal("CERTIFICATE"); l.get(name) != "" {
		pem, err := os.ReadFile(l.get(name))
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			l.fail(name, "cannot read the certificate file: %v", err)
		case !pool.AppendCertsFromPEM(pem):
			l.fail(name, "the file holds no PEM certificate")
		default:
			c.RootCAs = pool
		}
	}
	certName, keyName := l.signal("CLIENT_CERTIFICATE"), l.signal("CLIENT_KEY")
	certFile, keyFile := l.get(certName), l.get(keyName)
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		l.fail(certName, "must be set together with %s", keyName)
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			l.fail(certName, "cannot load the client certificate and key: %v", err)
			break
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if c.RootCAs == nil && c.Certificates == nil {
		return nil
	}
	return &c
}

// sampler returns the sampler's name and, for the ratio samplers, its ratio.
func (l *envReader) sampler() (string, float64) {
	name := strings.ToLower(l.get("OTEL_TRACES_SAMPLER"))
	switch name {
	case "":
		return SamplerParentBasedAlwaysOn, 1
	case SamplerAlwaysOn, SamplerAlwaysOff, SamplerParentBasedAlwaysOn, SamplerParentBasedAlwaysOff:
		return name, 1
	case SamplerTraceIDRatio, SamplerParentBasedTraceIDRatio:
	default:
		l.fail("OTEL_TRACES_SAMPLER", "unknown sampler %q (want always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off or parentbased_traceidratio)", name)
		return SamplerParentBasedAlwaysOn, 1
	}
	v := l.get("OTEL_TRACES_SAMPLER_ARG")
	if v == "" {
		return name, 1
	}
	ratio, err := strconv.ParseFloat(v, 64)
	if err != nil || ratio < 0 || ratio > 1 {
		l.fail("OTEL_TRACES_SAMPLER_ARG", "%q is not a ratio between 0 and 1", v)
		return name, 1
	}
	return name, ratio
}
