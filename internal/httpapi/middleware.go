package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/gorilla/handlers"
	"github.com/gorilla/mux"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-ID"

// MaxHeaderBytes bounds a request's line and headers, as sent: beyond it the
// frame answers a 431 problem. The http.Server's own MaxHeaderBytes must be
// well above it, or net/http answers a bare text 431 first.
const MaxHeaderBytes = 32 << 10

// canonicalRequestIDHeader is RequestIDHeader as net/http stores it.
var canonicalRequestIDHeader = http.CanonicalHeaderKey(RequestIDHeader)

// frameHeaders mark every response as not to be sniffed, framed or cached: the
// API serves JSON with per-user content only. Names are canonical and the
// value slices are shared by every response, never modified in place
// (Header.Set replaces a slice, Header.Add copies it): setting them costs no
// allocation.
var frameHeaders = []struct {
	name  string
	value []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Cache-Control", []string{"no-store"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
	{"Referrer-Policy", []string{"no-referrer"}},
}

// server is the frame every request walks through before the router: it
// gives the request its id and its log record, marks the response as not to
// be sniffed, framed or cached, refuses oversized headers, turns a panic into
// a 500 problem, and writes the access-log line and the request metrics.
//
// It is one middleware rather than five so that a request costs one response
// wrapper and one context, and so that the access log and the metrics see every
// request, even one whose handler panicked after the response had started.
type server struct {
	next    http.Handler
	log     *slog.Logger
	metrics *httpMetrics
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(RequestIDHeader)
	if !saneRequestID(id) {
		id = newRequestID()
	}
	ctx, rec := requestlog.New(r.Context(), id)
	r = r.WithContext(ctx)
	h := w.Header()
	h[canonicalRequestIDHeader] = []string{id}
	for _, fh := range frameHeaders {
		h[fh.name] = fh.value
	}

	rw := &responseWriter{ResponseWriter: w}
	start := time.Now()
	aborted := false
	if headerBytes(r) > MaxHeaderBytes {
		// Refused here rather than by net/http, so that the client gets a
		// problem with its request id, and the refusal is logged and counted.
		problem.Write(rw, r, problem.Newf(http.StatusRequestHeaderFieldsTooLarge,
			"The request line and headers must be at most %d bytes.", MaxHeaderBytes))
	} else {
		aborted = s.serveRecovering(rw, r)
	}
	s.record(r, rec, rw, time.Since(start), aborted)
	if aborted {
		// net/http's way to cut a response short, so that the client cannot
		// take a truncated body for a whole one; it is counted and logged above.
		panic(http.ErrAbortHandler)
	}
}

// serveRecovering runs the router and recovers a panic: before the response
// started it becomes a 500 problem; after, the response must be cut, which
// aborted reports. The stack goes to the log, never to the client.
func (s *server) serveRecovering(w *responseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			aborted = s.recovered(w, r, v)
		}
	}()
	s.next.ServeHTTP(w, r)
	return false
}

func (s *server) recovered(w *responseWriter, r *http.Request, v any) (aborted bool) {
	ctx := r.Context()
	if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
		// A handler cutting its own response (a proxy whose upstream broke)
		// is no bug: no stack.
		requestlog.SetError(ctx, errAborted)
		return true
	}
	s.log.LogAttrs(ctx, slog.LevelError, "panic",
		slog.String("request_id", requestlog.ID(ctx)),
		slog.String("panic", fmt.Sprint(v)),
		slog.String("stack", string(debug.Stack())),
	)
	err := fmt.Errorf("panic: %v", v)
	if w.status != 0 {
		requestlog.SetError(ctx, fmt.Errorf("%w after the response started; response cut", err))
		return true
	}
	problem.Write(w, r, err)
	return false
}

var errAborted = errors.New("the handler aborted the response")

// record writes the access-log line, health probes included (filter on route
// to hide them), and counts the request in the metrics.
func (s *server) record(r *http.Request, rec *requestlog.Record, w *responseWriter, elapsed time.Duration, aborted bool) {
	route := rec.Route()
	if route == "" {
		route = unmatchedRoute
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	s.metrics.observe(route, methodLabel(r.Method), status, elapsed)

	level := slog.LevelInfo
	if status >= 500 || aborted {
		level = slog.LevelError
	}
	ctx := r.Context()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	// The record is made here rather than by Logger.LogAttrs, which would look
	// up the caller's program counter for every request, for a source the
	// handler never prints.
	line := slog.NewRecord(time.Now(), level, "request", 0)
	line.AddAttrs(
		slog.String("request_id", rec.ID()),
		slog.String("method", r.Method),
		slog.String("route", route),
		// The path, never the query string: a careless client may put a token there.
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int64("bytes", w.written),
	)
	if aborted {
		line.AddAttrs(slog.Bool("aborted", true))
	}
	line.AddAttrs(rec.Attrs()...)
	_ = h.Handle(ctx, line) // a log destination that fails has nobody to tell
}

// headerBytes is the size of r's request line and headers as they were sent
// (names and values, separators and line ends), whatever order and spelling
// they came in; net/http moved Host out of the map, so it is added back.
func headerBytes(r *http.Request) int {
	const crlf, sep = 2, 2 // "\r\n" and ": "
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + crlf
	if r.Host != "" {
		n += len("Host") + sep + len(r.Host) + crlf
	}
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + sep + len(v) + crlf
		}
	}
	return n + crlf
}

// saneRequestID reports whether a caller's request id may be kept: short, and
// plain enough to be safe in logs and headers ([A-Za-z0-9._:-]{1,128}).
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// withRoute records the route's template for the access log and the metrics,
// and tells matched (the tracing) when there is one to tell.
func withRoute(tmpl string, matched func(*http.Request, string), next http.Handler) http.Handler {
	if matched == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requestlog.SetRoute(r.Context(), tmpl)
			next.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requestlog.SetRoute(r.Context(), tmpl)
		matched(r, tmpl)
		next.ServeHTTP(w, r)
	})
}

// responseWriter remembers the status and the size of the response for the
// access log, and whether it has started (a status is set) for the panic
// recovery. Unwrap lets http.ResponseController reach the connection's own
// writer (flush, deadlines).
type responseWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// Flush sends what is buffered, for handlers that stream.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unmatchedRoute labels requests no route matched (404, 405 on unknown paths).
const unmatchedRoute = "unmatched"

// knownMethods bounds the method label; anything else is counted as OTHER.
var knownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions,
}

func methodLabel(m string) string {
	if slices.Contains(knownMethods, m) {
		return m
	}
	return "OTHER"
}

// corsAllowedHeaders are the request headers a browser may send to the API.
var corsAllowedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", RequestIDHeader}

// corsAllowHeadersValue is the Access-Control-Allow-Headers of every allowed
// preflight: the whole list, spelled as the API documents it (the library
// would echo the headers asked for, canonicalised: X-Request-Id), so that
// what a browser is told is the same whatever it asked.
var corsAllowHeadersValue = []string{strings.Join(corsAllowedHeaders, ", ")}

// allowCORS answers CORS for a browser-facing route with gorilla/handlers,
// allowing method (the route's one) from the exact origins listed. Around the
// library it adds what the library leaves out: Vary: Origin on every response
// (caches must not serve one origin's answer to another); on an allowed
// preflight, Access-Control-Allow-Methods (the library leaves it out for GET
// and POST, which browsers accept, but a client or proxy checking the answer
// reads it) and the allowed headers as documented; and problem documents
// instead of bare statuses for refused preflights, including the disallowed
// origins the library answers with an empty 200.
func allowCORS(origins []string, method string, next http.Handler) http.Handler {
	cors := handlers.CORS(
		handlers.AllowedOrigins(origins),
		handlers.AllowedMethods([]string{method}),
		handlers.AllowedHeaders(corsAllowedHeaders),
		handlers.ExposedHeaders([]string{RequestIDHeader, "Retry-After"}),
		handlers.MaxAge(600),
	)(next)
	// What an allowed preflight is told, made once per route.
	preflight := preflightAnswers{
		allowMethods: []string{method},
		refused: "This cross-origin request is not allowed: this route accepts " + method + " with the headers " +
			strings.Join(corsAllowedHeaders, ", ") + ".",
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Origin")
		if r.Method != http.MethodOptions {
			cors.ServeHTTP(w, r)
			return
		}
		origin := r.Header.Get("Origin")
		if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
			// A plain OPTIONS, not a preflight: the route only serves method.
			problem.Write(w, r, problem.Newf(http.StatusMethodNotAllowed,
				"Method %s is not allowed here.", r.Method).WithHeader("Allow", method+", OPTIONS"))
			return
		}
		if !slices.Contains(origins, origin) {
			problem.Write(w, r, problem.New(http.StatusForbidden, "This origin is not allowed to call the API."))
			return
		}
		cors.ServeHTTP(preflight.wrap(w, r), r)
	})
}

// preflightAnswers are a route's answers to a preflight from an allowed
// origin: an allowed one gets the route's method (allowMethods) and the
// allowed headers, and a bare error status (a method or header the library
// does not allow) becomes a 403 problem whose detail is refused.
type preflightAnswers struct {
	allowMethods []string
	refused      string
}

// wrap wraps w for the CORS library's answer to the preflight r.
func (p preflightAnswers) wrap(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(f httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				if code < 400 {
					h := w.Header()
					h["Access-Control-Allow-Methods"] = p.allowMethods
					h["Access-Control-Allow-Headers"] = corsAllowHeadersValue
					f(code)
					return
				}
				problem.Write(w, r, problem.New(http.StatusForbidden, p.refused))
			}
		},
	})
}

// handleNotFound answers unknown paths with a 404 problem.
func handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "There is nothing at this path."))
	})
}

// handleMethodNotAllowed answers a known path called with the wrong method: a 405
// problem whose Allow header lists the methods the path does serve.
func handleMethodNotAllowed(router *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range knownMethods {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			// A method mismatch also "matches", with MatchErr set.
			if router.Match(probe, &match) && match.MatchErr == nil {
				allowed = append(allowed, m)
			}
		}
		err := problem.Newf(http.StatusMethodNotAllowed, "Method %s is not allowed here.", r.Method)
		if len(allowed) > 0 {
			err = err.WithHeader("Allow", strings.Join(allowed, ", "))
		}
		problem.Write(w, r, err)
	})
}
