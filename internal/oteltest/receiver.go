// Package oteltest is an in-process OTLP receiver for tests: it accepts the
// spans an OpenTelemetry exporter sends over OTLP/HTTP (protobuf or JSON) and
// OTLP/gRPC on loopback ports, decodes them, and lets a test wait for spans
// and assert the shape of a trace (names, parents, links, attributes). A test
// points the service's OTEL_EXPORTER_OTLP_ENDPOINT at it and runs the real
// thing.
package oteltest

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // exporters may compress
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// maxExportBytes bounds one export request's body.
const maxExportBytes = 32 << 20

// Export is one export request the receiver got.
type Export struct {
	Protocol string      // "http/protobuf", "http/json" or "grpc"
	Path     string      // the URL path (OTLP/HTTP) or the gRPC method
	Header   http.Header // the HTTP headers, or the gRPC metadata
	Gzip     bool        // the body was gzip-compressed
	Spans    int         // how many spans it carried
}

// Receiver collects the spans exported to it. Its methods are safe for
// concurrent use.
type Receiver struct {
	httpURL, grpcURL string

	mu      sync.Mutex
	spans   []Span
	exports []Export
	reject  bool
	changed chan struct{} // closed and replaced at each export
	onSpans func([]Span)
	forget  bool // keep neither spans nor exports
}

// Option configures a Receiver.
type Option func(*Receiver)

// WithOnSpans calls f with the spans of each export as they arrive (the
// sandbox prints them).
func WithOnSpans(f func([]Span)) Option { return func(r *Receiver) { r.onSpans = f } }

// WithoutHistory keeps neither spans nor exports: they only reach the
// WithOnSpans function, so that a receiver running for hours (the sandbox's
// trace view) does not grow. Spans and Exports then return nothing.
func WithoutHistory() Option { return func(r *Receiver) { r.forget = true } }

// New returns a Receiver that listens nowhere yet: serve HTTPHandler and
// GRPCServer where you like, or use Start.
func New(opts ...Option) *Receiver {
	r := &Receiver{changed: make(chan struct{})}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Start returns a Receiver serving OTLP/HTTP and OTLP/gRPC on two loopback
// ports, stopped when the test ends.
func Start(t testing.TB, opts ...Option) *Receiver {
	t.Helper()
	r := New(opts...)

	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oteltest: %v", err)
	}
	srv := &http.Server{Handler: r.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(httpLn) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.httpURL = "http://" + httpLn.Addr().String()

	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oteltest: %v", err)
	}
	gs := r.GRPCServer()
	go func() { _ = gs.Serve(grpcLn) }()
	t.Cleanup(gs.Stop)
	r.grpcURL = "http://" + grpcLn.Addr().String()
	return r
}

// HTTPEndpoint is the base URL of the OTLP/HTTP listener started by Start,
// the value for OTEL_EXPORTER_OTLP_ENDPOINT (exporters append /v1/traces).
func (r *Receiver) HTTPEndpoint() string { return r.httpURL }

// GRPCEndpoint is the URL of the OTLP/gRPC listener started by Start, the
// value for OTEL_EXPORTER_OTLP_ENDPOINT with OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
func (r *Receiver) GRPCEndpoint() string { return r.grpcURL }

// Endpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT when exporting with
// protocol (an OTEL_EXPORTER_OTLP_PROTOCOL value): GRPCEndpoint for "grpc",
// HTTPEndpoint otherwise.
func (r *Receiver) Endpoint(protocol string) string {
	if protocol == "grpc" {
		return r.grpcURL
	}
	return r.httpURL
}

// Reject makes the receiver refuse every export (400 over HTTP,
// InvalidArgument over gRPC, neither of which an exporter retries) until
// called with false: a collector that does not take our spans.
func (r *Receiver) Reject(reject bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reject = reject
}

// Spans returns every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Exports returns every export request received so far, rejected ones too.
func (r *Receiver) Exports() []Export {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Export(nil), r.exports...)
}

// record stores one export and reports whether it is accepted.
func (r *Receiver) record(e Export, req *coltracepb.ExportTraceServiceRequest) bool {
	spans := decode(req)
	e.Spans = len(spans)
	r.mu.Lock()
	accepted := !r.reject
	if !r.forget {
		r.exports = append(r.exports, e)
		if accepted {
			r.spans = append(r.spans, spans...)
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
	onSpans := r.onSpans
	r.mu.Unlock()
	if accepted && onSpans != nil {
		onSpans(spans)
	}
	return accepted
}

// HTTPHandler serves OTLP/HTTP: POST of an ExportTraceServiceRequest as
// protobuf or JSON, optionally gzip-compressed, on any path (Export.Path
// tells which one the exporter used).
func (r *Receiver) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		e := Export{Path: req.URL.Path, Header: req.Header.Clone(), Gzip: req.Header.Get("Content-Encoding") == "gzip"}
		body, err := readBody(req.Body, e.Gzip)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var msg coltracepb.ExportTraceServiceRequest
		switch ct := req.Header.Get("Content-Type"); ct {
		case "application/x-protobuf":
			e.Protocol = "http/protobuf"
			err = proto.Unmarshal(body, &msg)
		case "application/json":
			e.Protocol = "http/json"
			err = unmarshalJSON(body, &msg)
		default:
			err = fmt.Errorf("unsupported content type %q", ct)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !r.record(e, &msg) {
			http.Error(w, "rejected by the test", http.StatusBadRequest)
			return
		}
		if e.Protocol == "http/json" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
			return
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
}

func readBody(body io.Reader, gzipped bool) ([]byte, error) {
	if gzipped {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, maxExportBytes+1))
	if err == nil && len(b) > maxExportBytes {
		err = errors.New("export too large")
	}
	return b, err
}

// unmarshalJSON decodes OTLP/JSON, whose trace and span ids are hex strings
// where protojson expects base64.
func unmarshalJSON(body []byte, msg proto.Message) error {
	var tree any
	if err := json.Unmarshal(body, &tree); err != nil {
		return err
	}
	if err := hexIDsToBase64(tree); err != nil {
		return err
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	return protojson.Unmarshal(b, msg)
}

func hexIDsToBase64(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if s, ok := child.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
				raw, err := hex.DecodeString(s)
				if err != nil {
					return fmt.Errorf("%s %q is not hex", k, s)
				}
				v[k] = base64.StdEncoding.EncodeToString(raw)
				continue
			}
			if err := hexIDsToBase64(child); err != nil {
				return err
			}
		}
	case []any:
		for _, child := range v {
			if err := hexIDsToBase64(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// GRPCServer returns a gRPC server with opts (TLS credentials, say) that
// serves the receiver's OTLP/gRPC trace service.
func (r *Receiver) GRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append(opts, grpc.StatsHandler(compressionRecorder{}))...)
	coltracepb.RegisterTraceServiceServer(s, grpcService{r: r})
	return s
}

type grpcService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	e := Export{Protocol: "grpc", Path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export", Header: http.Header{}}
	for k, vs := range md {
		for _, v := range vs {
			e.Header.Add(k, v)
		}
	}
	if c, ok := ctx.Value(compressionKey{}).(*string); ok {
		e.Gzip = *c == "gzip"
	}
	if !g.r.record(e, req) {
		return nil, status.Error(codes.InvalidArgument, "rejected by the test")
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// compressionRecorder notes the compression of each call, which gRPC keeps out
// of the metadata a handler sees.
type compressionRecorder struct{}

type compressionKey struct{}

func (compressionRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if c, ok := ctx.Value(compressionKey{}).(*string); ok {
			*c = h.Compression
		}
	}
}

func (compressionRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (compressionRecorder) HandleConn(context.Context, stats.ConnStats) {}

// Wait is how long the Wait… methods wait by default: long enough for a
// loaded machine, and for the default 5 s schedule delay of a batch processor.
const Wait = 30 * time.Second

// WaitSpans waits until ok holds for the spans received so far and returns
// them; it fails the test if that has not happened within Wait.
func (r *Receiver) WaitSpans(t testing.TB, ok func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans := append([]Span(nil), r.spans...)
		changed := r.changed
		r.mu.Unlock()
		if ok(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("oteltest: the spans expected did not arrive within %v; received:\n%s", Wait, Format(spans))
			return nil
		}
	}
}

// WaitTree waits until a trace holds the spans want describes (see Tree) and
// binds them; it fails the test with every span received if none does within
// Wait.
func (r *Receiver) WaitTree(t testing.TB, want Tree) {
	t.Helper()
	r.WaitSpans(t, func(spans []Span) bool { return Match(spans, want) })
}
