package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
)

// Setup starts exporting spans as cfg says and returns the provider that the
// instrumented places take, and shutdown, which flushes the spans still queued
// and stops the exporter (call it once the servers have stopped, with a
// deadline: a collector that does not answer would otherwise hold the exit).
// When cfg is off the provider is nil and shutdown does nothing.
//
// Setup never touches the OpenTelemetry globals; the caller passes the provider
// on. Export failures go to log at warn, at most once a minute, instead of to
// the global error handler.
//
// Every setting is passed to the SDK as an explicit option, because the SDK
// and the exporters also read OTEL_* from the process environment and an
// explicit option is the one thing that wins over it: so cfg, built from the
// caller's getenv by ConfigFromEnv, decides alone. Span limits are the SDK's
// defaults (the OTEL_*_LIMIT variables are not read). Two exceptions remain,
// beyond reach of any option: the SDK merges the process's
// OTEL_RESOURCE_ATTRIBUTES under the resource given here (every attribute set
// here wins), and reads its OTEL_GO_X_* experiment switches. In production
// getenv is the process environment, so the two always agree.
func Setup(ctx context.Context, cfg Config, version string, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	if !cfg.Enabled() {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res, err := newResource(ctx, cfg, version)
	if err != nil {
		return nil, nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(newSampler(cfg.Sampler, cfg.SamplerRatio)),
		sdktrace.WithRawSpanLimits(defaultSpanLimits()),
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log},
			sdktrace.WithBatchTimeout(cfg.Batch.ScheduleDelay),
			sdktrace.WithExportTimeout(cfg.Batch.ExportTimeout),
			sdktrace.WithMaxQueueSize(cfg.Batch.MaxQueueSize),
			sdktrace.WithMaxExportBatchSize(cfg.Batch.MaxExportBatchSize),
		),
	)
	return tp, tp.Shutdown, nil
}

func newExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	if cfg.Protocol == ProtocolGRPC {
		return newGRPCExporter(ctx, cfg)
	}
	compression, encoding := otlptracehttp.NoCompression, otlptracehttp.EncodingProtobuf
	if cfg.Gzip {
		compression = otlptracehttp.GzipCompression
	}
	if cfg.Protocol == ProtocolHTTPJSON {
		encoding = otlptracehttp.EncodingJSON
	}
	return otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(cfg.Endpoint.String()), // its scheme decides TLS
		otlptracehttp.WithTLSClientConfig(cfg.TLS),
		otlptracehttp.WithHeaders(cfg.Headers),
		otlptracehttp.WithTimeout(cfg.Timeout),
		otlptracehttp.WithCompression(compression),
		otlptracehttp.WithEncoding(encoding),
	)
}

// newGRPCExporter dials the collector itself: given its own connection, the
// gRPC exporter reads neither the endpoint, nor the TLS settings, nor the
// compression from the process environment.
func newGRPCExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	creds := insecure.NewCredentials()
	if cfg.Endpoint.Scheme == "https" {
		creds = credentials.NewTLS(cfg.TLS) // nil: the system's roots
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("OTel OTLP Exporter Go/" + otlptrace.Version()),
	}
	if cfg.Gzip {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	}
	conn, err := grpc.NewClient(cfg.Endpoint.Host, opts...)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracegrpc.New(ctx,
		otlptracegrpc.WithGRPCConn(conn),
		otlptracegrpc.WithHeaders(cfg.Headers),
		otlptracegrpc.WithTimeout(cfg.Timeout),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return connExporter{SpanExporter: exp, conn: conn}, nil
}

// connExporter closes the connection it was given once its exporter stops.
type connExporter struct {
	sdktrace.SpanExporter
	conn *grpc.ClientConn
}

func (e connExporter) Shutdown(ctx context.Context) error {
	return errors.Join(e.SpanExporter.Shutdown(ctx), e.conn.Close())
}

// newResource describes this process: service name and version, the
// OTEL_RESOURCE_ATTRIBUTES, the host (the pod's name in Kubernetes) and the SDK.
// The build's version wins over a service.version given in the variables.
func newResource(ctx context.Context, cfg Config, version string) (*resource.Resource, error) {
	attrs := make([]attribute.KeyValue, 0, len(cfg.ResourceAttributes)+2)
	for _, k := range slices.Sorted(maps.Keys(cfg.ResourceAttributes)) {
		attrs = append(attrs, attribute.String(k, cfg.ResourceAttributes[k]))
	}
	attrs = append(attrs, semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version))
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(attrs...),
	)
	if errors.Is(err, resource.ErrPartialResource) {
		err = nil // a detector (host name) failed: keep what was found
	}
	return res, err
}

func newSampler(name string, ratio float64) sdktrace.Sampler {
	switch name {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample()
	case SamplerAlwaysOff:
		return sdktrace.NeverSample()
	case SamplerTraceIDRatio:
		return sdktrace.TraceIDRatioBased(ratio)
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case SamplerParentBasedTraceIDRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// defaultSpanLimits are the SDK's own defaults, spelled out so that the
// OTEL_*_LIMIT variables of the process environment do not apply.
func defaultSpanLimits() sdktrace.SpanLimits {
	return sdktrace.SpanLimits{
		AttributeValueLengthLimit:   sdktrace.DefaultAttributeValueLengthLimit,
		AttributeCountLimit:         sdktrace.DefaultAttributeCountLimit,
		EventCountLimit:             sdktrace.DefaultEventCountLimit,
		LinkCountLimit:              sdktrace.DefaultLinkCountLimit,
		AttributePerEventCountLimit: sdktrace.DefaultAttributePerEventCountLimit,
		AttributePerLinkCountLimit:  sdktrace.DefaultAttributePerLinkCountLimit,
		AttributeValueDepthLimit:    sdktrace.DefaultAttributeValueDepthLimit,
	}
}

// exportLogInterval bounds how often a failing export is logged: a collector
// that is down must not flood the service's own log.
const exportLogInterval = time.Minute

// loggingExporter logs failed exports through the service's logger. It reports
// them as handled, so that the SDK does not print them a second time through
// the global error handler.
type loggingExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger

	mu         sync.Mutex
	lastLogged time.Time
	suppressed int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil || e.log == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if now.Sub(e.lastLogged) < exportLogInterval {
		e.suppressed++
		return nil
	}
	e.lastLogged = now
	e.log.Warn("trace export failed; these spans are lost",
		slog.Int("spans", len(spans)),
		slog.Int("failures_not_logged", e.suppressed),
		slog.String("error", err.Error()),
	)
	e.suppressed = 0
	return nil
}
