package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/problemtest"
	"github.com/acme/payments-api/internal/requestlog"
)

const allowedOrigin = "https://app.example.com"

// testServer builds the real server with simple feature handlers: checkout
// answers 200 (or panics when asked), webhook answers 200, and authentication
// lets every request through with a user id on the log line.
type testServer struct {
	handler http.Handler
	reg     *prometheus.Registry
	logs    *bytes.Buffer
	ready   *Readiness
}

func newTestServer(t *testing.T, tweaks ...func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}, ready: &Readiness{}}
	logger := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{
		Logger:         logger,
		Registerer:     ts.reg,
		Readiness:      ts.ready,
		AllowedOrigins: []string{allowedOrigin, "https://admin.example.com"},
		Authenticate: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requestlog.Add(r.Context(), slog.String("user_id", "user_123"))
				next.ServeHTTP(w, r)
			})
		},
		Checkout: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Panic") != "" {
				panic("boom: secret internals")
			}
			if r.Header.Get("X-Fail") != "" {
				problem.Write(w, r, errors.New("stripe said: sk_test_leak"))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		}),
		Portal: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"url":"https://billing.stripe.com/p/session/x"}`)
		}),
		Subscription: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"customer_id":null,"subscriptions":[]}`)
		}),
		Webhook: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"received":true}`)
		}),
		CheckoutMaxBody: 16 << 10,
		PortalMaxBody:   16 << 10,
		WebhookMaxBody:  512 << 10,
	}
	for _, tweak := range tweaks {
		tweak(&opts)
	}
	ts.handler = NewServer(opts)
	return ts
}

func (ts *testServer) do(method, target string, header map[string]string) *http.Response {
	req := httptest.NewRequest(method, target, strings.NewReader(`{}`))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, req)
	return rec.Result()
}

func decodeProblem(t *testing.T, resp *http.Response) problem.Body {
	t.Helper()
	return problemtest.Decode(t, problemtest.Read(t, resp))
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"sane id kept", "req-123_abc.DEF:9", true},
		{"none sent", "", false},
		{"too long", strings.Repeat("a", 129), false},
		{"header injection", "abc\r\nX-Evil: 1", false},
		{"spaces", "a b", false},
		{"json breaking", `a"b`, false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			if tt.sent != "" {
				req.Header[http.CanonicalHeaderKey(RequestIDHeader)] = []string{tt.sent}
			}
			rec := httptest.NewRecorder()
			ts.handler.ServeHTTP(rec, req)
			got := rec.Header().Get(RequestIDHeader)
			if tt.keep && got != tt.sent {
				t.Errorf("X-Request-ID = %q, want the caller's %q", got, tt.sent)
			}
			if !tt.keep && (got == tt.sent || !saneRequestID(got) || len(got) != 32) {
				t.Errorf("X-Request-ID = %q, want a fresh 32-hex id", got)
			}
			if seen[got] {
				t.Errorf("X-Request-ID %q was reused", got)
			}
			seen[got] = true
		})
	}
}

func TestPanicBecomesProblemAndServerKeepsServing(t *testing.T) {
	ts := newTestServer(t)
	resp := ts.do(http.MethodPost, "/stripe/checkout", map[string]string{"X-Panic": "1"})
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", resp.StatusCode)
	}
	raw, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(raw), "boom") || strings.Contains(string(raw), "goroutine") {
		t.Errorf("panic leaked to the client: %s", raw)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	decodeProblem(t, resp)
	if !strings.Contains(ts.logs.String(), "boom: secret internals") || !strings.Contains(ts.logs.String(), "goroutine") {
		t.Errorf("panic and stack not logged:\n%s", ts.logs)
	}
	if got := ts.do(http.MethodPost, "/stripe/checkout", nil).StatusCode; got != http.StatusOK {
		t.Errorf("after a panic, status = %d, want 200", got)
	}
	if got := counterValue(t, ts.reg, "payments_api_http_requests_total", "/stripe/checkout", "POST", "500"); got != 1 {
		t.Errorf("500s counted = %v, want 1", got)
	}
}

func TestInternalErrorIsGeneric(t *testing.T) {
	ts := newTestServer(t)
	resp := ts.do(http.MethodPost, "/stripe/checkout", map[string]string{"X-Fail": "1"})
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || strings.Contains(string(raw), "sk_test_leak") {
		t.Errorf("status %d body %s: want a generic 500", resp.StatusCode, raw)
	}
	if !strings.Contains(ts.logs.String(), `"error":"stripe said: sk_test_leak"`) {
		t.Errorf("the cause is not on the log line:\n%s", ts.logs)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodPost, "/stripe/checkout/extra", 404, ""},
		{http.MethodGet, "/stripe/checkout", 405, "POST, OPTIONS"},
		{http.MethodDelete, "/stripe/webhook", 405, "POST"},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
		{http.MethodOptions, "/stripe/checkout", 405, "POST, OPTIONS"}, // OPTIONS that is no preflight
		{http.MethodGet, "/stripe/portal", 405, "POST, OPTIONS"},
		{http.MethodPost, "/stripe/subscription", 405, "GET, OPTIONS"},
		{http.MethodOptions, "/stripe/subscription", 405, "GET, OPTIONS"},
		// Paths not in their clean form are unknown paths, never redirects.
		{http.MethodGet, "//healthz", 404, ""},
		{http.MethodPost, "/stripe/../stripe/checkout", 404, ""},
		{http.MethodPost, "/stripe/./webhook", 404, ""},
		{http.MethodGet, "/readyz/..", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := ts.do(tt.method, tt.path, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			decodeProblem(t, resp)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
	// Scanners probing random paths must not create metric series.
	if got := counterValue(t, ts.reg, "payments_api_http_requests_total", unmatchedRoute, "GET", "404"); got != 3 {
		t.Errorf("unmatched GET 404 count = %v, want 3", got)
	}
}

func TestCORS(t *testing.T) {
	ts := newTestServer(t)
	preflight := func(origin, method, headers string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
	}
	tests := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		status      int
		allowOrigin string
	}{
		{"preflight allowed", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "POST", "authorization,content-type,idempotency-key,x-request-id"), 200, allowedOrigin},
		{"preflight second origin", http.MethodOptions, "/stripe/checkout", preflight("https://admin.example.com", "POST", "authorization"), 200, "https://admin.example.com"},
		{"preflight asking for no header", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "POST", ""), 200, allowedOrigin},
		{"preflight spelling headers its own way", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "POST", "X-REQUEST-ID, Content-Type"), 200, allowedOrigin},
		{"preflight foreign origin", http.MethodOptions, "/stripe/checkout", preflight("https://evil.example.com", "POST", "authorization"), 403, ""},
		{"preflight origin suffix trick", http.MethodOptions, "/stripe/checkout", preflight("https://app.example.com.evil.com", "POST", ""), 403, ""},
		{"preflight null origin", http.MethodOptions, "/stripe/checkout", preflight("null", "POST", ""), 403, ""},
		{"preflight wrong method", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "DELETE", ""), 403, ""},
		// gorilla's defaults would allow GET and HEAD: only POST is configured.
		{"preflight GET", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "GET", ""), 403, ""},
		{"preflight HEAD", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "HEAD", ""), 403, ""},
		{"preflight extra header", http.MethodOptions, "/stripe/checkout", preflight(allowedOrigin, "POST", "authorization,x-evil"), 403, ""},
		{"actual allowed", http.MethodPost, "/stripe/checkout", map[string]string{"Origin": allowedOrigin}, 200, allowedOrigin},
		{"actual foreign", http.MethodPost, "/stripe/checkout", map[string]string{"Origin": "https://evil.example.com"}, 200, ""},
		{"webhook gets no CORS", http.MethodPost, "/stripe/webhook", map[string]string{"Origin": allowedOrigin}, 200, ""},
		{"portal preflight", http.MethodOptions, "/stripe/portal", preflight(allowedOrigin, "POST", "authorization,content-type"), 200, allowedOrigin},
		{"portal preflight foreign origin", http.MethodOptions, "/stripe/portal", preflight("https://evil.example.com", "POST", "authorization"), 403, ""},
		{"portal preflight GET", http.MethodOptions, "/stripe/portal", preflight(allowedOrigin, "GET", ""), 403, ""},
		{"portal actual allowed", http.MethodPost, "/stripe/portal", map[string]string{"Origin": allowedOrigin}, 200, allowedOrigin},
		{"subscription preflight", http.MethodOptions, "/stripe/subscription", preflight(allowedOrigin, "GET", "authorization,x-request-id"), 200, allowedOrigin},
		{"subscription preflight foreign origin", http.MethodOptions, "/stripe/subscription", preflight("https://evil.example.com", "GET", "authorization"), 403, ""},
		{"subscription preflight POST", http.MethodOptions, "/stripe/subscription", preflight(allowedOrigin, "POST", "authorization"), 403, ""},
		{"subscription actual allowed", http.MethodGet, "/stripe/subscription", map[string]string{"Origin": allowedOrigin}, 200, allowedOrigin},
		{"subscription actual foreign", http.MethodGet, "/stripe/subscription", map[string]string{"Origin": "https://evil.example.com"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.allowOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.allowOrigin)
			}
			if resp.StatusCode >= 400 {
				decodeProblem(t, resp)
			}
			if tt.path != "/stripe/webhook" {
				if got := resp.Header.Values("Vary"); len(got) != 1 || got[0] != "Origin" {
					t.Errorf("Vary = %q, want exactly Origin", got)
				}
			}
			if tt.status == 200 && tt.method == http.MethodOptions {
				// The route's method, and every allowed header spelled as
				// documented, whatever the preflight asked for.
				if got, want := resp.Header.Values("Access-Control-Allow-Methods"), []string{tt.header["Access-Control-Request-Method"]}; !slices.Equal(got, want) {
					t.Errorf("Access-Control-Allow-Methods = %q, want %q", got, want)
				}
				if got, want := resp.Header.Values("Access-Control-Allow-Headers"), []string{"Authorization, Content-Type, Idempotency-Key, X-Request-ID"}; !slices.Equal(got, want) {
					t.Errorf("Access-Control-Allow-Headers = %q, want %q", got, want)
				}
			}
			if tt.method == http.MethodOptions && tt.status != 200 {
				for _, h := range []string{"Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
					if got := resp.Header.Get(h); got != "" {
						t.Errorf("refused preflight: %s = %q, want none", h, got)
					}
				}
			}
			if strings.Contains(tt.name, "actual allowed") && !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
				t.Errorf("X-Request-ID not exposed to the browser: %q", resp.Header.Get("Access-Control-Expose-Headers"))
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/healthz", "/nope"} {
		resp := ts.do(http.MethodGet, path, nil)
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v lack nosniff / no-store", path, resp.Header)
		}
	}
}

func TestAccessLogAndMetrics(t *testing.T) {
	ts := newTestServer(t)
	ts.do(http.MethodPost, "/stripe/checkout?token=eyJhbGciOi", map[string]string{
		RequestIDHeader: "req-42", "Authorization": "Bearer eyJhbGciOi.secret",
	})
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(ts.logs.String()), "\n") {
		if strings.Contains(l, "req-42") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line is not JSON: %v: %s", err, l)
			}
		}
	}
	if line == nil {
		t.Fatalf("no access log line for req-42:\n%s", ts.logs)
	}
	for k, want := range map[string]any{"request_id": "req-42", "method": "POST", "route": "/stripe/checkout", "status": 200.0, "user_id": "user_123", "msg": "request"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["duration_ms"].(float64); !ok {
		t.Errorf("log duration_ms = %v, want a number", line["duration_ms"])
	}
	if strings.Contains(ts.logs.String(), "eyJhbGciOi") {
		t.Errorf("a token reached the log:\n%s", ts.logs)
	}
	if got := counterValue(t, ts.reg, "payments_api_http_requests_total", "/stripe/checkout", "POST", "200"); got != 1 {
		t.Errorf("requests_total = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(ts.reg, "payments_api_http_request_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d, want 1", n)
	}
	// Exactly route and method: Value matches the whole label set.
	if got := metricstest.Value(t, ts.reg, "payments_api_http_request_duration_seconds", map[string]string{"route": "/stripe/checkout", "method": "POST"}); got != 1 {
		t.Errorf("duration{route,method} observations = %v, want 1", got)
	}
}

// traceKey marks a request context as traced, as a span would.
type traceKey struct{}

// The tracing hooks: Trace wraps the whole frame, so that the access-log line
// is logged in the traced context; RouteMatched hears each matched route, in
// that same context, and nothing for a path no route matched.
func TestTraceHooks(t *testing.T) {
	var matched []string
	ts := newTestServer(t, func(o *Options) {
		o.Logger = slog.New(tracedOnly{o.Logger.Handler()})
		o.Trace = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), traceKey{}, true)))
			})
		}
		o.RouteMatched = func(r *http.Request, route string) {
			if r.Context().Value(traceKey{}) != true {
				t.Errorf("RouteMatched(%s) outside the traced context", route)
			}
			matched = append(matched, r.Method+" "+route)
		}
	})
	ts.do(http.MethodPost, "/stripe/checkout", nil)
	ts.do(http.MethodGet, "/nowhere/123", nil)
	ts.do(http.MethodGet, "/healthz", nil)
	if want := []string{"POST /stripe/checkout", "GET /healthz"}; !slices.Equal(matched, want) {
		t.Errorf("RouteMatched heard %q, want %q", matched, want)
	}
	if n := strings.Count(ts.logs.String(), `"msg":"request"`); n != 3 {
		t.Errorf("%d access-log lines logged in the traced context, want 3:\n%s", n, ts.logs)
	}
}

// tracedOnly passes on only the records logged in a traced context.
type tracedOnly struct{ slog.Handler }

func (h tracedOnly) Handle(ctx context.Context, r slog.Record) error {
	if ctx.Value(traceKey{}) != true {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func TestHealthAndReadiness(t *testing.T) {
	ts := newTestServer(t)
	keysLoaded := false
	ts.ready.AddCheck(func() error {
		if !keysLoaded {
			return errors.New("clerk keys not loaded yet")
		}
		return nil
	})
	steps := []struct {
		name   string
		before func()
		path   string
		status int
		detail string
	}{
		{"live", func() {}, "/healthz", 200, ""},
		{"keys missing", func() {}, "/readyz", 503, "not ready: clerk keys not loaded yet"},
		{"keys loaded", func() { keysLoaded = true }, "/readyz", 200, ""},
		{"draining", ts.ready.Drain, "/readyz", 503, "not ready: draining: the server is shutting down"},
		{"still live while draining", func() {}, "/healthz", 200, ""},
	}
	for _, s := range steps {
		s.before()
		resp := ts.do(http.MethodGet, s.path, nil)
		if resp.StatusCode != s.status {
			t.Fatalf("%s: status = %d, want %d", s.name, resp.StatusCode, s.status)
		}
		if s.status != 200 {
			if got := decodeProblem(t, resp).Detail; got != s.detail {
				t.Errorf("%s: detail = %q, want %q", s.name, got, s.detail)
			}
		}
	}
}

func BenchmarkMiddlewareChain(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	chain := NewServer(Options{
		Logger:          slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registerer:      prometheus.NewRegistry(),
		Readiness:       &Readiness{},
		AllowedOrigins:  []string{allowedOrigin},
		Authenticate:    func(h http.Handler) http.Handler { return h },
		Checkout:        ok,
		Portal:          ok,
		Subscription:    ok,
		Webhook:         ok,
		CheckoutMaxBody: 16 << 10,
		PortalMaxBody:   16 << 10,
		WebhookMaxBody:  512 << 10,
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", ok}, {"chain", chain}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", nil)
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// counterValue reads one counter series (route, method, code) from the registry.
func counterValue(t *testing.T, g prometheus.Gatherer, name, route, method, code string) float64 {
	t.Helper()
	return metricstest.Value(t, g, name, map[string]string{"route": route, "method": method, "code": code})
}

// TestHeaderBytes proves that the frame measures a request's line and headers
// as the bytes that were sent.
func TestHeaderBytes(t *testing.T) {
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /healthz?x=1 HTTP/1.1\r\nHost: api.example.com:8001\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
		"POST /stripe/checkout HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nx-request-id: abc\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	} {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got, want := headerBytes(r), len(raw); got != want {
			t.Errorf("headerBytes(%q) = %d, want %d", raw, got, want)
		}
	}
}

// TestOversizedHeaders proves that headers beyond MaxHeaderBytes get a 431
// problem from the frame, with the request id, logged and counted, and that
// headers at the limit pass.
func TestOversizedHeaders(t *testing.T) {
	ts := newTestServer(t)
	// request returns a request to path whose line and headers are size bytes.
	request := func(path string, size int) *http.Request {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set(RequestIDHeader, "req-big")
		r.Header.Set("X-Filler", "")
		r.Header.Set("X-Filler", strings.Repeat("a", size-headerBytes(r)))
		if got := headerBytes(r); got != size {
			t.Fatalf("built a request of %d header bytes, want %d", got, size)
		}
		return r
	}
	tests := []struct {
		name   string
		path   string
		size   int
		status int
	}{
		{"at the limit", "/healthz", MaxHeaderBytes, http.StatusOK},
		{"one byte over", "/healthz", MaxHeaderBytes + 1, http.StatusRequestHeaderFieldsTooLarge},
		{"40 000 bytes", "/healthz", 40_000, http.StatusRequestHeaderFieldsTooLarge},
		// A GET the router would refuse with 405: the size is checked first.
		{"before routing", "/stripe/checkout", 40_000, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ts.handler.ServeHTTP(rec, request(tt.path, tt.size))
			resp := rec.Result()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get(RequestIDHeader); got != "req-big" {
				t.Errorf("X-Request-ID = %q, want the caller's", got)
			}
			if tt.status != http.StatusOK {
				if p := decodeProblem(t, resp); !strings.Contains(p.Detail, "at most 32768 bytes") {
					t.Errorf("detail = %q, want the limit", p.Detail)
				}
			}
		})
	}
	// Refused before routing: no route label, whatever the path.
	if got := counterValue(t, ts.reg, "payments_api_http_requests_total", unmatchedRoute, "GET", "431"); got != 3 {
		t.Errorf("431s counted as unmatched = %v, want 3", got)
	}
	if !strings.Contains(ts.logs.String(), `"status":431`) {
		t.Errorf("no access-log line for the 431:\n%s", ts.logs)
	}
}
