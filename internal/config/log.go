package config

import (
	"log/slog"
	"net/url"
	"strings"
)

// Warnings returns advice about a valid but doubtful configuration, for the
// start-up log.
func (c Config) Warnings() []string {
	var w []string
	if c.ShutdownTimeout < c.ForwardTimeout {
		w = append(w, "SHUTDOWN_TIMEOUT is shorter than FORWARD_TIMEOUT: a webhook forward in flight at shutdown may be cut (Stripe will redeliver it)")
	}
	if strings.HasPrefix(c.StripeSecretKey.Value(), "sk_live_") {
		w = append(w, "STRIPE_SECRET_KEY is an unrestricted live key: prefer a restricted rk_live_ key limited to what the service calls (Prices, Customers, Checkout Sessions, Subscriptions, billing portal sessions)")
	}
	return w
}

// LogValue is the effective configuration for the start-up log: secrets
// redacted, connection URLs without their credentials.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_addr", c.ListenAddr),
		slog.String("metrics_addr", orOff(c.MetricsAddr)),
		slog.String("admin_addr", orOff(c.AdminAddr)),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.String("frontend_url", urlText(c.FrontendURL)),
		slog.Any("cors_allowed_origins", c.CORSAllowedOrigins.List()),
		slog.String("clerk_issuer", c.ClerkIssuer),
		slog.String("clerk_jwks_url", urlText(c.ClerkJWKSURL)),
		slog.Bool("clerk_jwt_key_set", c.ClerkJWTKey != nil),
		slog.Any("clerk_authorized_parties", c.ClerkAuthorizedParties.List()),
		slog.Duration("clerk_clock_skew", c.ClerkClockSkew),
		slog.String("stripe_secret_key", redactKey(c.StripeSecretKey)),
		slog.Any("stripe_webhook_secret", c.StripeWebhookSecret),
		slog.String("stripe_api_url", urlText(c.StripeAPIURL)),
		slog.Any("stripe_price_ids", c.StripePriceIDs),
		slog.String("stripe_portal_configuration", c.StripePortalConfiguration),
		slog.String("checkout_success_url", c.CheckoutSuccessURL),
		slog.String("checkout_cancel_url", c.CheckoutCancelURL),
		slog.String("portal_return_url", c.PortalReturnURL),
		slog.String("checkout_rate_limit", c.CheckoutRateLimit.String()),
		slog.Bool("checkout_allow_promotion_codes", c.CheckoutAllowPromotionCodes),
		slog.Int("checkout_trial_days", c.CheckoutTrialDays),
		slog.Bool("checkout_single_subscription", c.CheckoutSingleSubscription),
		slog.String("nextjs_webhook_url", urlText(c.NextJSWebhookURL)),
		slog.Any("nextjs_webhook_secret", c.NextJSWebhookSecret),
		slog.Any("webhook_forward_events", c.WebhookForwardEvents),
		slog.Duration("forward_timeout", c.ForwardTimeout),
		slog.Any("database_url", c.DatabaseURL),
		slog.Int("delivery_workers", c.DeliveryWorkers),
		slog.Int("delivery_max_attempts", c.DeliveryMaxAttempts),
		slog.Duration("delivery_retention", c.DeliveryRetention),
		slog.String("admin_username", c.AdminUsername),
		slog.Any("admin_password", c.AdminPassword),
		slog.Any("redis_url", c.RedisURL),
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

// urlText is u as text; "" for nil (unset).
func urlText(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}
