package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// addRoutes is the whole API surface: every route, its methods and its
// middleware.
func addRoutes(r *mux.Router, opts Options) {
	handle := func(tmpl string, h http.Handler, methods ...string) {
		r.Handle(tmpl, withRoute(tmpl, h)).Methods(methods...)
	}

	// Browsers call checkout cross-origin, so it alone answers CORS preflights
	// (OPTIONS) and only then authenticates.
	handle("/stripe/checkout", limitBody(opts.CheckoutMaxBody,
		allowCORS(opts.AllowedOrigins, opts.Authenticate(opts.Checkout))),
		http.MethodPost, http.MethodOptions)

	// Stripe calls the webhook server to server; its signature is the
	// authentication, and it gets no CORS headers.
	handle("/stripe/webhook", limitBody(opts.WebhookMaxBody, opts.Webhook), http.MethodPost)

	// The router tries routes in order: the busy ones above come first.
	handle("/healthz", handleHealthz(), http.MethodGet, http.MethodHead)
	handle("/readyz", handleReadyz(opts.Readiness), http.MethodGet, http.MethodHead)

	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed(r)
}
