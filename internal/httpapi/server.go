// Package httpapi is the service's HTTP surface: every route in one place
// (routes.go), the middleware each request walks through, and the health and
// readiness endpoints. The feature handlers (checkout, webhook) and the
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

	// AllowedOrigins are the exact browser origins that may call the checkout
	// endpoint (CORS).
	AllowedOrigins []string

	// Authenticate verifies the caller of the checkout endpoint and puts the
	// identity in the request context, or answers 401 itself.
	Authenticate func(http.Handler) http.Handler
	Checkout     http.Handler
	Webhook      http.Handler
}

// NewServer returns the public API handler with all middleware applied.
//
// The chain, outermost first: request id → access log and metrics → panic
// recovery → security headers → router → per-route middleware. Recovery sits
// inside the access log so that a request that panicked is still logged and
// counted, with its 500.
func NewServer(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := mux.NewRouter()
	addRoutes(r, opts)

	var h http.Handler = r
	h = secureHeaders(h)
	h = recoverPanics(opts.Logger, h)
	h = logAndMeasure(opts.Logger, newHTTPMetrics(opts.Registerer), h)
	h = assignRequestID(h)
	return h
}
