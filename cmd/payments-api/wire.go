package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/checkout"
	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/httpapi"
	"github.com/acme/payments-api/internal/webhook"
)

// buildOptions turns the configuration into the HTTP server's options: the
// feature handlers (Clerk verification, checkout, the webhook) and the
// readiness that waits for Clerk's keys. ctx bounds their background work (the
// JWKS refresh), not any request.
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

	stripe, err := checkout.NewStripeClient(checkout.StripeOptions{
		SecretKey: cfg.StripeSecretKey.Value(),
		APIURL:    stripeAPIURL(cfg),
		Timeout:   stripeTimeout,
	})
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("stripe client: %w", err)
	}
	limit, burst := rate.Inf, 0
	if r := cfg.CheckoutRateLimit; !r.Off() {
		// N per period: N clicks at once, then one every period/N.
		limit, burst = rate.Every(r.Per/time.Duration(r.N)), r.N
	}
	checkoutHandler, err := checkout.Handler(checkout.Options{
		Stripe:         stripe,
		PriceIDs:       cfg.StripePriceIDs,
		SuccessURL:     cfg.CheckoutSuccessURL,
		CancelURL:      cfg.CheckoutCancelURL,
		AllowedOrigins: cfg.CORSAllowedOrigins.List(),
		RateLimit:      limit,
		RateBurst:      burst,
		Registerer:     reg,
	})
	if err != nil {
		return httpapi.Options{}, err // already "checkout: …"
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
		Checkout:       checkoutHandler,
		Webhook: webhook.Handler(webhook.Options{
			Secret:       cfg.StripeWebhookSecret.Value(),
			ForwardTypes: cfg.WebhookForwardEvents,
			Forwarder:    forwarder,
			Registerer:   reg,
		}),
		CheckoutMaxBody: checkout.MaxBodyBytes,
		WebhookMaxBody:  webhook.MaxBodyBytes,
	}, nil
}

// stripeAPIURL is STRIPE_API_URL as the checkout package takes it today: text,
// empty for Stripe's own.
func stripeAPIURL(cfg config.Config) string {
	if cfg.StripeAPIURL == nil {
		return ""
	}
	return cfg.StripeAPIURL.String()
}
