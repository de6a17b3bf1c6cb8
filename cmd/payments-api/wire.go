package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/billing"
	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/httpapi"
	"github.com/acme/payments-api/internal/postgres"
	"github.com/acme/payments-api/internal/ratelimit"
	"github.com/acme/payments-api/internal/telemetry"
	"github.com/acme/payments-api/internal/tracing"
	"github.com/acme/payments-api/internal/webhook"
)

// buildOptions turns the configuration into the HTTP server's options: the
// feature handlers (Clerk verification, checkout, the billing portal, the
// subscription state, the webhook) and the readiness that waits for Clerk's
// keys; and, with DATABASE_URL, durable delivery, whose queue the webhook
// commits events to and whose database keeps each user's Stripe customer.
// ctx bounds their background work (the JWKS refresh), not any request. With
// tracing on (tp not nil), every request, token verification, Stripe call,
// signature check, queueing, delivery attempt and call to Next.js is a span;
// with it off nothing is wrapped.
func buildOptions(ctx context.Context, cfg config.Config, tp trace.TracerProvider, log *slog.Logger, reg prometheus.Registerer) (httpapi.Options, *durable, error) {
	tracer := tracing.NewTracer(tp) // nil when tracing is off
	verifier, err := auth.NewVerifier(ctx, auth.Options{
		Issuer:            cfg.ClerkIssuer,
		JWKSURL:           cfg.ClerkJWKSURL,
		Key:               cfg.ClerkJWTKey,
		AuthorizedParties: cfg.ClerkAuthorizedParties,
		ClockSkew:         cfg.ClerkClockSkew,
		Registerer:        reg,
		Logger:            log,
		Tracer:            tracer,
	})
	if err != nil {
		return httpapi.Options{}, nil, fmt.Errorf("clerk verifier: %w", err)
	}
	readiness := &httpapi.Readiness{}
	readiness.AddCheck(verifier.Ready)

	forwarder, err := forward.New(forward.Options{
		URL:        cfg.NextJSWebhookURL,
		Secret:     cfg.NextJSWebhookSecret.Value(),
		Timeout:    cfg.ForwardTimeout,
		UserAgent:  "payments-api/" + version,
		Registerer: reg,
		// Next.js continues our trace: each call carries traceparent.
		Client: tracedClient(tp, forward.NewTransport(), 0, telemetry.TransportOptions{Peer: "nextjs", Propagate: true}),
	})
	if err != nil {
		return httpapi.Options{}, nil, fmt.Errorf("webhook forwarder: %w", err)
	}
	webhookOpts := webhook.Options{
		Secret:       cfg.StripeWebhookSecret.Value(),
		ForwardTypes: cfg.WebhookForwardEvents,
		Forwarder:    forwarder, // synchronous: Stripe waits for Next.js
		Registerer:   reg,
		Tracer:       tracer,
	}
	var (
		dur   *durable
		store billing.CustomerStore // nil: customers are found with Stripe's Customer Search
	)
	if cfg.DatabaseURL.IsSet() {
		// Durable: the webhook commits events to the queue; its workers call the
		// same forwarder, one attempt at a time. The database also keeps each
		// user's customer, asked before Stripe.
		if dur, err = newDurable(ctx, cfg, forwarder, tracer, log, reg); err != nil {
			return httpapi.Options{}, nil, fmt.Errorf("durable delivery: %w", err)
		}
		webhookOpts.Queue = dur.queue
		store = postgres.NewCustomers(dur.pool)
	}

	billingRoutes, err := buildBilling(cfg, store, tp, reg)
	if err != nil {
		return httpapi.Options{}, nil, err
	}

	traceRequests, routeMatched := serverTracing(tp)
	return httpapi.Options{
		Logger:          log,
		Registerer:      reg,
		Readiness:       readiness,
		AllowedOrigins:  cfg.CORSAllowedOrigins.List(),
		Authenticate:    auth.Middleware(verifier),
		Checkout:        billingRoutes.checkout,
		Portal:          billingRoutes.portal,
		Subscription:    billingRoutes.subscription,
		Webhook:         webhook.Handler(webhookOpts),
		CheckoutMaxBody: billing.MaxBodyBytes,
		PortalMaxBody:   billing.MaxBodyBytes,
		WebhookMaxBody:  webhook.MaxBodyBytes,
		Trace:           traceRequests,
		RouteMatched:    routeMatched,
	}, dur, nil
}

// billingHandlers are the three routes of a user's dealings with Stripe.
type billingHandlers struct {
	checkout, portal, subscription http.Handler
}

// buildBilling wires the billing handlers: one Stripe client, one customer
// rule (asking store first when there is one) and one per-user limiter shared
// by checkout and the portal.
func buildBilling(cfg config.Config, store billing.CustomerStore, tp trace.TracerProvider, reg prometheus.Registerer) (billingHandlers, error) {
	stripe, err := billing.NewStripeClient(billing.StripeOptions{
		SecretKey: cfg.StripeSecretKey.Value(),
		APIURL:    cfg.StripeAPIURL,
		Timeout:   stripeTimeout,
		// Each call to Stripe, each of stripe-go's retries included, is a span;
		// Stripe gets no traceparent of ours.
		HTTPClient: tracedClient(tp, nil, stripeTimeout, telemetry.TransportOptions{Peer: "stripe"}),
	})
	if err != nil {
		return billingHandlers{}, fmt.Errorf("stripe client: %w", err)
	}
	customers, err := billing.NewCustomers(billing.CustomerOptions{Stripe: stripe, Store: store, Registerer: reg})
	if err != nil {
		return billingHandlers{}, err // already "billing: …"
	}
	var limiter billing.Limiter // nil: CHECKOUT_RATE_LIMIT=off
	if r := cfg.CheckoutRateLimit; !r.Off() {
		// Each replica counts on its own; REDIS_URL is not wired yet.
		if limiter, err = ratelimit.NewMemory(ratelimit.MemoryOptions{Rate: ratelimit.Rate{N: r.N, Per: r.Per}}); err != nil {
			return billingHandlers{}, err
		}
	}

	var h billingHandlers
	if h.checkout, err = billing.CheckoutHandler(billing.CheckoutOptions{
		Stripe:              stripe,
		Customers:           customers,
		Limiter:             limiter,
		PriceIDs:            cfg.StripePriceIDs,
		Origins:             cfg.CORSAllowedOrigins,
		SuccessURL:          cfg.CheckoutSuccessURL,
		CancelURL:           cfg.CheckoutCancelURL,
		AllowPromotionCodes: cfg.CheckoutAllowPromotionCodes,
		TrialDays:           cfg.CheckoutTrialDays,
		SingleSubscription:  cfg.CheckoutSingleSubscription,
		Registerer:          reg,
	}); err != nil {
		return billingHandlers{}, err // already "billing: …"
	}
	if h.portal, err = billing.PortalHandler(billing.PortalOptions{
		Stripe:        stripe,
		Customers:     customers,
		Limiter:       limiter,
		Origins:       cfg.CORSAllowedOrigins,
		ReturnURL:     cfg.PortalReturnURL,
		Configuration: cfg.StripePortalConfiguration,
		Registerer:    reg,
	}); err != nil {
		return billingHandlers{}, err
	}
	if h.subscription, err = billing.SubscriptionHandler(billing.SubscriptionOptions{
		Stripe:    stripe,
		Customers: customers,
	}); err != nil {
		return billingHandlers{}, err
	}
	return h, nil
}

// serverTracing returns the httpapi hooks that give each request a span named
// by its route template, or nils when tracing is off.
func serverTracing(tp trace.TracerProvider) (func(http.Handler) http.Handler, func(*http.Request, string)) {
	if tp == nil {
		return nil, nil
	}
	return telemetry.Middleware(tp), telemetry.NameServerSpan
}

// tracedClient returns a client whose requests through base (the default
// transport when nil) are spans, or nil when tracing is off: the package then
// builds its own client, exactly as without tracing.
func tracedClient(tp trace.TracerProvider, base http.RoundTripper, timeout time.Duration, o telemetry.TransportOptions) *http.Client {
	if tp == nil {
		return nil
	}
	return &http.Client{Transport: telemetry.Transport(tp, base, o), Timeout: timeout}
}
