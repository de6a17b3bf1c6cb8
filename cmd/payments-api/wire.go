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
func buildOptions(ctx context.Context, cfg config.Config, tp trace.TracerProvider, log *slog.Logger, reg prometheus.Registerer) (wired, error) {
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
		return wired{}, fmt.Errorf("clerk verifier: %w", err)
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
		return wired{}, fmt.Errorf("webhook forwarder: %w", err)
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
			return wired{}, fmt.Errorf("durable delivery: %w", err)
		}
		webhookOpts.Queue = dur.queue
		store = postgres.NewCustomers(dur.pool)
	}

	billingRoutes, err := buildBilling(cfg, store, tp, log, reg)
	if err != nil {
		return wired{}, err
	}

	traceRequests, routeMatched := serverTracing(tp)
	api := httpapi.Options{
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
	}
	return wired{api: api, durable: dur, stoppers: billingRoutes.stoppers}, nil
}

// wired is what buildOptions builds: the public API's options, durable
// delivery when DATABASE_URL is set, and what to stop once the servers have
// shut down.
type wired struct {
	api      httpapi.Options
	durable  *durable
	stoppers []func(context.Context) error
}

// billingHandlers are the three routes of a user's dealings with Stripe, and
// what to stop after the servers: the Redis limiter's connections.
type billingHandlers struct {
	checkout, portal, subscription http.Handler
	stoppers                       []func(context.Context) error
}

// buildBilling wires the billing handlers: one Stripe client, one customer
// rule (asking store first when there is one) and one per-user limiter shared
// by checkout and the portal.
func buildBilling(cfg config.Config, store billing.CustomerStore, tp trace.TracerProvider, log *slog.Logger, reg prometheus.Registerer) (billingHandlers, error) {
	stripe, err := billing.NewStripeClient(billing.StripeOptions{
		SecretKey: cfg.StripeSecretKey.Value(),
		APIURL:    cfg.StripeAPIURL,
		Timeout:   stripeTimeout,
		// Each call to Stripe, each of stripe-go's retries included, is a span;
		// Stripe gets no traceparent of ours.
		HTTPClient: tracedClient(tp, billing.NewTransport(), stripeTimeout, telemetry.TransportOptions{Peer: "stripe"}),
	})
	if err != nil {
		return billingHandlers{}, fmt.Errorf("stripe client: %w", err)
	}
	customers, err := billing.NewCustomers(billing.CustomerOptions{Stripe: stripe, Store: store, Registerer: reg})
	if err != nil {
		return billingHandlers{}, err // already "billing: …"
	}
	var h billingHandlers
	limiter, err := buildLimiter(cfg, log, reg, &h.stoppers)
	if err != nil {
		return billingHandlers{}, err
	}
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
		StripeBudget:        stripeBudget,
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
		StripeBudget:  stripeBudget,
		Registerer:    reg,
	}); err != nil {
		return billingHandlers{}, err
	}
	if h.subscription, err = billing.SubscriptionHandler(billing.SubscriptionOptions{
		Stripe:       stripe,
		Customers:    customers,
		StripeBudget: stripeBudget,
	}); err != nil {
		return billingHandlers{}, err
	}
	return h, nil
}

// buildLimiter picks the per-user limit of checkout and the portal: nil when
// CHECKOUT_RATE_LIMIT is off, one shared by every replica in Redis when
// REDIS_URL is set (its connections are closed by a stopper added to
// stoppers), else one per replica in memory. Redis is not asked at start: one
// that is down only means requests go unlimited until it answers.
func buildLimiter(cfg config.Config, log *slog.Logger, reg prometheus.Registerer, stoppers *[]func(context.Context) error) (billing.Limiter, error) {
	r := cfg.CheckoutRateLimit
	if r.Off() {
		return nil, nil
	}
	rate := ratelimit.Rate{N: r.N, Per: r.Per}
	if !cfg.RedisURL.IsSet() {
		return ratelimit.NewMemory(ratelimit.MemoryOptions{Rate: rate})
	}
	rl, err := ratelimit.NewRedisURL(cfg.RedisURL.Value(), ratelimit.RedisOptions{Rate: rate, Registerer: reg, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err) // never holds the URL
	}
	*stoppers = append(*stoppers, func(context.Context) error { return rl.Close() })
	return rl, nil
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
