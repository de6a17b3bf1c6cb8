package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/billing"
	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/httpapi"
	"github.com/acme/payments-api/internal/origin"
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
		PEMKey:            cfg.ClerkJWTKey.Value(),
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

	stripe, err := billing.NewStripeClient(billing.StripeOptions{
		SecretKey: cfg.StripeSecretKey.Value(),
		APIURL:    cfg.StripeAPIURL,
		Timeout:   stripeTimeout,
	})
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("stripe client: %w", err)
	}
	customers, err := billing.NewCustomers(billing.CustomerOptions{Stripe: stripe, Registerer: reg})
	if err != nil {
		return httpapi.Options{}, err // already "billing: …"
	}
	var limiter billing.Limiter
	if r := cfg.CheckoutRateLimit; !r.Off() {
		// N per period: N clicks at once, then one every period/N.
		if limiter, err = billing.NewMemoryLimiter(rate.Every(r.Per/time.Duration(r.N)), r.N, 0, nil); err != nil {
			return httpapi.Options{}, err
		}
	}
	origins, err := origin.NewSet(cfg.CORSAllowedOrigins)
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("allowed origins: %w", err)
	}
	checkoutHandler, err := billing.CheckoutHandler(billing.CheckoutOptions{
		Stripe:     stripe,
		Customers:  customers,
		Limiter:    limiter,
		PriceIDs:   cfg.StripePriceIDs,
		Origins:    origins,
		SuccessURL: cfg.CheckoutSuccessURL,
		CancelURL:  cfg.CheckoutCancelURL,
		Registerer: reg,
	})
	if err != nil {
		return httpapi.Options{}, err // already "billing: …"
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
		AllowedOrigins: cfg.CORSAllowedOrigins,
		Authenticate:   auth.Middleware(verifier),
		Checkout:       checkoutHandler,
		Webhook: webhook.Handler(webhook.Options{
			Secret:       cfg.StripeWebhookSecret.Value(),
			ForwardTypes: cfg.WebhookForwardEvents,
			Forwarder:    forwarder,
			Registerer:   reg,
		}),
	}, nil
}
