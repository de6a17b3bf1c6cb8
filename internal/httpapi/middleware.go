package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/gorilla/handlers"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-ID"

// saneRequestID is what a caller's request id must look like to be kept: short,
// and plain enough to be safe in logs and headers.
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// assignRequestID keeps the caller's X-Request-ID when it is sane, else makes a
// new one, and echoes it on every response.
func assignRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !saneRequestID.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx, _ := requestlog.New(r.Context(), id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// recordRoute is router middleware: it runs once mux has matched a route and
// records the route's template for the access log and the metrics.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if tmpl, err := route.GetPathTemplate(); err == nil {
				requestlog.SetRoute(r.Context(), tmpl)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// httpMetrics are the request metrics, labelled by route template, never by the
// raw path, so that scanners probing random URLs cannot blow up cardinality.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_api_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "payments_api_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

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

// logAndMeasure writes one access-log line per request, health probes included
// (the contract says every request; filter on route to hide them), and records
// the request metrics.
func logAndMeasure(log *slog.Logger, m *httpMetrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := requestlog.From(r.Context())
		start := time.Now()
		snoop := httpsnoop.CaptureMetricsFn(w, func(w http.ResponseWriter) { next.ServeHTTP(w, r) })
		elapsed := time.Since(start)

		route := rec.Route()
		if route == "" {
			route = unmatchedRoute
		}
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(route, method, strconv.Itoa(snoop.Code)).Inc()
		m.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())

		level := slog.LevelInfo
		if snoop.Code >= 500 {
			level = slog.LevelError
		}
		if !log.Enabled(r.Context(), level) {
			return
		}
		attrs := append([]slog.Attr{
			slog.String("request_id", rec.ID()),
			slog.String("method", r.Method),
			slog.String("route", route),
			// The path, never the query string: a careless client may put a token there.
			slog.String("path", r.URL.Path),
			slog.Int("status", snoop.Code),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.Int64("bytes", snoop.Written),
		}, rec.Attrs()...)
		log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// recoverPanics turns a panic into a 500 problem. The stack goes to the log and
// never to the client, and the server keeps serving. gorilla/handlers'
// RecoveryHandler writes a bare 500 before its logger runs, which leaves no room
// for a problem document, hence this small middleware.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wrote := false
		w = httpsnoop.Wrap(w, httpsnoop.Hooks{
			WriteHeader: func(f httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
				return func(code int) { wrote = true; f(code) }
			},
			Write: func(f httpsnoop.WriteFunc) httpsnoop.WriteFunc {
				return func(b []byte) (int, error) { wrote = true; return f(b) }
			},
		})
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
				panic(v) // net/http's way to abort a response; let it do its job
			}
			log.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("request_id", requestlog.ID(r.Context())),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())),
			)
			if wrote {
				// Too late for a problem document; make net/http cut the response.
				panic(http.ErrAbortHandler)
			}
			problem.Write(w, r, fmt.Errorf("panic: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}

// secureHeaders marks every response as not to be sniffed, framed or cached:
// the API serves JSON with per-user content only.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// corsAllowedHeaders are the request headers a browser may send to the API.
var corsAllowedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", RequestIDHeader}

// allowCORS answers CORS for a browser-facing route with gorilla/handlers,
// allowing POST from the exact origins listed. Around the library it adds what
// the contract asks and the library leaves out: Vary: Origin on every response
// (caches must not serve one origin's answer to another), and problem documents
// instead of bare statuses for refused preflights, including the disallowed
// origins the library answers with an empty 200.
func allowCORS(origins []string, next http.Handler) http.Handler {
	cors := handlers.CORS(
		handlers.AllowedOrigins(origins),
		handlers.AllowedMethods([]string{http.MethodPost}),
		handlers.AllowedHeaders(corsAllowedHeaders),
		handlers.ExposedHeaders([]string{RequestIDHeader, "Retry-After"}),
		handlers.MaxAge(600),
	)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Origin")
		if r.Method != http.MethodOptions {
			cors.ServeHTTP(w, r)
			return
		}
		origin := r.Header.Get("Origin")
		if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
			// A plain OPTIONS, not a preflight: the route only serves POST.
			problem.Write(w, r, problem.Newf(http.StatusMethodNotAllowed,
				"Method %s is not allowed here.", r.Method).WithHeader("Allow", "POST, OPTIONS"))
			return
		}
		if !slices.Contains(origins, origin) {
			problem.Write(w, r, problem.New(http.StatusForbidden, "This origin is not allowed to call the API."))
			return
		}
		cors.ServeHTTP(problemOnRefusal(w, r), r)
	})
}

// problemOnRefusal wraps w so that a bare error status written by the CORS
// library (a method or header it does not allow) becomes a 403 problem.
func problemOnRefusal(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(f httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				if code < 400 {
					f(code)
					return
				}
				problem.Write(w, r, problem.New(http.StatusForbidden,
					"This cross-origin request is not allowed: the API accepts POST with the headers "+
						strings.Join(corsAllowedHeaders, ", ")+"."))
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
