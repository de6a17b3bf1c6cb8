package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// addRoutes is the whole API surface: every route, its methods and its
// middleware.
func addRoutes(r *mux.Router, opts Options) {
	handle := func(tmpl string, h http.Handler, methods ...string) {
		r.Handle(tmpl, withRoute(tmpl, opts.RouteMatched, h)).Methods(methods...)
	}

	// Browsers call these three cross-origin, so they answer CORS preflights
	// (OPTIONS) and only then authenticate.
	handle("/stripe/checkout", limitBody(opts.CheckoutMaxBody,
		allowCORS(opts.AllowedOrigins, http.MethodPost, opts.Authenticate(opts.Checkout))),
		http.MethodPost, http.MethodOptions)
	handle("/stripe/portal", limitBody(opts.PortalMaxBody,
		allowCORS(opts.AllowedOrigins, http.MethodPost, opts.Authenticate(opts.Portal))),
		http.MethodPost, http.MethodOptions)
	handle("/stripe/subscription",
		allowCORS(opts.AllowedOrigins, http.MethodGet, opts.Authenticate(opts.Subscription)),
		http.MethodGet, http.MethodOptions)

	// Stripe calls the webhook server to server; its signature is the
	// authentication, and it gets no CORS headers.
	handle("/stripe/webhook", limitBody(opts.WebhookMaxBody, opts.Webhook), http.MethodPost)

	// The router tries routes in order: the busy ones above come first.
	handle("/healthz", handleHealthz(), http.MethodGet, http.MethodHead)
	handle("/readyz", handleReadyz(opts.Readiness), http.MethodGet, http.MethodHead)

	r.NotFoundHandler = handleNotFound()
	r.MethodNotAllowedHandler = handleMethodNotAllowed(r)
}
