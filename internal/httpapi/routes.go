package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// addRoutes is the whole API surface: every route, its methods and its
// middleware.
func addRoutes(r *mux.Router, opts Options) {
	r.Use(recordRoute)

	r.Handle("/healthz", handleHealthz()).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", handleReadyz(opts.Readiness)).Methods(http.MethodGet, http.MethodHead)

	// Browsers call checkout cross-origin, so it alone answers CORS preflights
	// (OPTIONS) and only then authenticates.
	r.Handle("/stripe/checkout",
		allowCORS(opts.AllowedOrigins, opts.Authenticate(opts.Checkout)),
	).Methods(http.MethodPost, http.MethodOptions)

	// Stripe calls the webhook server to server; its signature is the
	// authentication, and it gets no CORS headers.
	r.Handle("/stripe/webhook", opts.Webhook).Methods(http.MethodPost)

	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed(r)
}
