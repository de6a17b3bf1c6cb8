package config

import (
	"log/slog"
	"strings"
)

// start-up log.
func (c Config) Warnings() []string {
	var w []string
	if c.NextJSWebhookSecret == c.StripeWebhookSecret {
		w = append(w, "NEXTJS_WEBHOOK_SECRET equals STRIPE_WEBHOOK_SECRET: use a separate secret for the hop to Next.js")
	}
	if len(c.NextJSWebhookSecret) < 16 {
		w = append(w, "NEXTJS_WEBHOOK_SECRET is shorter than 16 characters: use a long random secret")
	}
	if c.ShutdownTimeout < c.ForwardTimeout {
		w = append(w, "SHUTDOWN_TIMEOUT is shorter than FORWARD_TIMEOUT: a webhook forward in flight at shutdown may be cut (Stripe will redeliver it)")
	}
	if strings.HasPrefix(c.StripeSecretKey.Value(), "sk_live_") {
		w = append(w, "STRIPE_SECRET_KEY is an unrestricted live key: prefer a restricted rk_live_ key limited to Prices (read) and Checkout Sessions (write)")
	}
	return w
}

// LogValue is the effective configuration for the start-up log, secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_addr", c.ListenAddr),
		slog.String("metrics_addr", orOff(c.MetricsAddr)),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.String("frontend_url", c.FrontendURL),
		slog.Any("cors_allowed_origins", c.CORSAllowedOrigins),
		slog.String("clerk_issuer", c.ClerkIssuer),
		slog.String("clerk_jwks_url", c.ClerkJWKSURL),
		slog.Bool("clerk_jwt_key_set", c.ClerkJWTKey != ""),
		slog.Any("clerk_authorized_parties", c.ClerkAuthorizedParties),
		slog.Duration("clerk_clock_skew", c.ClerkClockSkew),
		slog.String("stripe_secret_key", redactKey(c.StripeSecretKey)),
		slog.Any("stripe_webhook_secret", c.StripeWebhookSecret),
		slog.String("stripe_api_url", c.StripeAPIURL),
		slog.Any("stripe_price_ids", c.StripePriceIDs),
		slog.String("checkout_success_url", c.CheckoutSuccessURL),
		slog.String("checkout_cancel_url", c.CheckoutCancelURL),
		slog.String("checkout_rate_limit", c.CheckoutRateLimit.String()),
		slog.String("nextjs_webhook_url", c.NextJSWebhookURL),
		slog.Any("nextjs_webhook_secret", c.NextJSWebhookSecret),
		slog.Any("webhook_forward_events", c.WebhookForwardEvents),
		slog.Duration("forward_timeout", c.ForwardTimeout),
		slog.Duration("shutdown_delay", c.ShutdownDelay),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
	)
}

// redactKey shows only a Stripe key's kind and mode (sk_test, rk_live…), which
// tells an operator which key is loaded without revealing it.
func redactKey(s Secret) string {
	v := s.Value()
	for _, p := range []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_"} {
		if strings.HasPrefix(v, p) {
			return p + "[redacted]"
		}
	}
	return s.String()
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
