// Package httpapi is the service's HTTP surface: every route in one place
// (routes.go), the middleware each request walks through, and the health and
// readiness endpoints. The feature handlers (billing, webhook) and the
// authentication middleware are passed in, so this package knows their shape,
// not their insides.
package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the parts NewServer assembles.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Readiness  *Readiness

	// AllowedOrigins are the exact browser origins that may call checkout,
	// the portal and the subscription state (CORS).
	AllowedOrigins []string

	// Authenticate verifies the caller of checkout, the portal and the
	// subscription state and puts the identity in the request context, or
	// answers 401 itself.
	Authenticate func(http.Handler) http.Handler
	Checkout     http.Handler // POST /stripe/checkout
	Portal       http.Handler // POST /stripe/portal
	Subscription http.Handler // GET /stripe/subscription
	Webhook      http.Handler // POST /stripe/webhook

	// CheckoutMaxBody, PortalMaxBody and WebhookMaxBody are the largest
	// request bodies the routes take; each handler answers 413 beyond its
	// own. All are required: the server reads past them so that the client
	// can read that answer (see limitBody).
	CheckoutMaxBody int64
	PortalMaxBody   int64
	WebhookMaxBody  int64

	// Trace, when set, wraps every request, outside the frame, so that the
	// access-log line is logged within the request's span (tracing). Nil
	// wraps nothing.
	Trace func(http.Handler) http.Handler
	// RouteMatched, when set, is told the route template of each request the
	// router matched (the span is named after it). Nil is never called.
	RouteMatched func(r *http.Request, route string)
}

// NewServer returns the public API handler with all middleware applied. It
// panics when a body limit is missing: a wiring mistake to be found at start-up.
//
// The chain, outermost first: tracing (when Trace is set) → the request's
// frame (request id, security headers, panic recovery, access log and
// metrics; see server.ServeHTTP) → router → per-route middleware (route
// template, body limit, CORS, auth).
func NewServer(opts Options) http.Handler {
	if opts.CheckoutMaxBody <= 0 || opts.PortalMaxBody <= 0 || opts.WebhookMaxBody <= 0 {
		panic("httpapi: Options.CheckoutMaxBody, PortalMaxBody and WebhookMaxBody are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// A path that is not in its clean form (//healthz, /stripe/../x) is a
	// path the API does not serve: a 404 problem like any other, rather than
	// the router's bare redirect to the cleaned path, which a client would
	// follow with another method or without its body.
	r := mux.NewRouter().SkipClean(true)
	addRoutes(r, opts)
	frame := &server{next: r, log: opts.Logger, metrics: newHTTPMetrics(opts.Registerer)}
	if opts.Trace != nil {
		return opts.Trace(frame)
	}
	return frame
}
