package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/billing"
	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/httpapi"
	"github.com/acme/payments-api/internal/ratelimit"
	"github.com/acme/payments-api/internal/webhook"
)

// buildOptions turns the configuration into the HTTP server's options: the
// feature handlers (Clerk verification, checkout, the billing portal, the
// subscription state, the webhook) and the readiness that waits for Clerk's
// keys. ctx bounds their background work (the JWKS refresh), not any request.
func buildOptions(ctx context.Context, cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (httpapi.Options, error) {
	verifier, err := auth.NewVerifier(ctx, auth.Options{
		Issuer:            cfg.ClerkIssuer,
		JWKSURL:           cfg.ClerkJWKSURL,
		Key:               cfg.ClerkJWTKey,
		AuthorizedParties: cfg.ClerkAuthorizedParties,
		ClockSkew:         cfg.ClerkClockSkew,
		Registerer:        reg,
		Logger:            log,
	})
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("clerk verifier: %w", err)
	}
	readiness := &httpapi.Readiness{}
	readiness.AddCheck(verifier.Ready)

	billingRoutes, err := buildBilling(cfg, reg)
	if err != nil {
		return httpapi.Options{}, err
	}

	forwarder, err := forward.New(forward.Options{
		URL:        cfg.NextJSWebhookURL,
		Secret:     cfg.NextJSWebhookSecret.Value(),
		Timeout:    cfg.ForwardTimeout,
		UserAgent:  "payments-api/" + version,
		Registerer: reg,
	})
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("webhook forwarder: %w", err)
	}

	return httpapi.Options{
		Logger:         log,
		Registerer:     reg,
		Readiness:      readiness,
		AllowedOrigins: cfg.CORSAllowedOrigins.List(),
		Authenticate:   auth.Middleware(verifier),
		Checkout:       billingRoutes.checkout,
		Portal:         billingRoutes.portal,
		Subscription:   billingRoutes.subscription,
		Webhook: webhook.Handler(webhook.Options{
			Secret:       cfg.StripeWebhookSecret.Value(),
			ForwardTypes: cfg.WebhookForwardEvents,
			Forwarder:    forwarder,
			Registerer:   reg,
		}),
		CheckoutMaxBody: billing.MaxBodyBytes,
		PortalMaxBody:   billing.MaxBodyBytes,
		WebhookMaxBody:  webhook.MaxBodyBytes,
	}, nil
}

// billingHandlers are the three routes of a user's dealings with Stripe.
type billingHandlers struct {
	checkout, portal, subscription http.Handler
}

// buildBilling wires the billing handlers: one Stripe client, one customer
// rule and one per-user limiter shared by checkout and the portal.
func buildBilling(cfg config.Config, reg prometheus.Registerer) (billingHandlers, error) {
	stripe, err := billing.NewStripeClient(billing.StripeOptions{
		SecretKey: cfg.StripeSecretKey.Value(),
		APIURL:    cfg.StripeAPIURL,
		Timeout:   stripeTimeout,
	})
	if err != nil {
		return billingHandlers{}, fmt.Errorf("stripe client: %w", err)
	}
	// No CustomerStore yet: customers are found with Stripe's Customer Search.
	customers, err := billing.NewCustomers(billing.CustomerOptions{Stripe: stripe, Registerer: reg})
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
