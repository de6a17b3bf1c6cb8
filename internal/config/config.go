// Package config is the service's typed configuration: read from environment
// variables once, validated as a whole (every problem reported together, one per
// variable), with secrets held in a type that never prints its value.
package config

import (
	"log/slog"
	"strings"
	"time"

	"github.com/acme/payments-api/internal/origin"
)

// Defaults of the variables that have one and do not derive from another.
const (
	DefaultListenAddr      = ":8001"
	DefaultMetricsAddr     = ":9090"
	DefaultFrontendURL     = "http://localhost:3000"
	DefaultNextJSURL       = "http://localhost:3000/api/payments/webhook"
	DefaultForwardEvents   = "checkout.session.completed,checkout.session.async_payment_succeeded,checkout.session.async_payment_failed"
	DefaultRateLimit       = "10/m"
	DefaultClockSkew       = 5 * time.Second
	DefaultForwardTimeout  = 10 * time.Second
	DefaultShutdownDelay   = 0 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
)

// Config is the whole configuration of the service.
type Config struct {
	ListenAddr  string
	MetricsAddr string // empty when METRICS_ADDR=off
	LogLevel    slog.Level
	LogFormat   string // "json" or "text"

	FrontendURL        string
	CORSAllowedOrigins []string

	ClerkIssuer            string
	ClerkJWKSURL           string
	ClerkJWTKey            Secret // PEM; public, but treated as a secret because it lives in the Secret
	ClerkAuthorizedParties []string
	ClerkClockSkew         time.Duration

	StripeSecretKey     Secret
	StripeWebhookSecret Secret
	StripeAPIURL        string // empty: Stripe's own
	StripePriceIDs      []string

	CheckoutSuccessURL string
	CheckoutCancelURL  string
	CheckoutRateLimit  Rate

	NextJSWebhookURL     string
	NextJSWebhookSecret  Secret
	WebhookForwardEvents []string
	ForwardTimeout       time.Duration

	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
}

// Problems is every configuration problem found, one per variable.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

// Load reads and validates the configuration through getenv. An empty value is
// the same as an unset one. The error, when not nil, is a Problems listing every
// problem; no message contains a secret's value.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	var c Config

	c.ListenAddr = l.addr("LISTEN_ADDR", DefaultListenAddr, false)
	c.MetricsAddr = l.addr("METRICS_ADDR", DefaultMetricsAddr, true)
	if c.MetricsAddr != "" && c.MetricsAddr == c.ListenAddr && !strings.HasSuffix(c.ListenAddr, ":0") {
		l.fail("METRICS_ADDR", "must differ from LISTEN_ADDR (metrics have their own listener)")
	}
	c.LogLevel = l.logLevel("LOG_LEVEL")
	c.LogFormat = l.oneOf("LOG_FORMAT", "json", "json", "text")

	// Variables whose default derives from FRONTEND_URL are left unchecked when
	// it is invalid and they are unset: its own problem line says it all.
	// FRONTEND_URL is held to the return-URL rule because the default return
	// URLs extend it: a problem in it is reported once, under its own name.
	frontend, frontendURL := l.browserURL("FRONTEND_URL", DefaultFrontendURL)
	c.FrontendURL = strings.TrimSuffix(frontend, "/")
	frontendOK := frontendURL != nil
	defaultOrigin := ""
	if frontendOK {
		defaultOrigin = origin.Of(frontendURL)
	}
	var allowed origin.Set
	if frontendOK || l.get("CORS_ALLOWED_ORIGINS", "") != "" {
		allowed = l.origins("CORS_ALLOWED_ORIGINS", defaultOrigin)
		c.CORSAllowedOrigins = allowed.List()
	}

	c.ClerkIssuer = l.clerkURL("CLERK_ISSUER", "")
	if l.get("CLERK_ISSUER", "") == "" {
		l.fail("CLERK_ISSUER", "is required (your Clerk Frontend API URL, e.g. https://clerk.example.com)")
	}
	if strings.HasSuffix(c.ClerkIssuer, "/") {
		l.fail("CLERK_ISSUER", "must not end with / (it is compared exactly with the token's iss claim)")
	}
	jwksDefault := ""
	if c.ClerkIssuer != "" {
		jwksDefault = c.ClerkIssuer + "/.well-known/jwks.json"
	}
	c.ClerkJWKSURL = l.clerkURL("CLERK_JWKS_URL", jwksDefault)
	c.ClerkJWTKey = l.pemKey("CLERK_JWT_KEY")
	c.ClerkAuthorizedParties = l.list("CLERK_AUTHORIZED_PARTIES", strings.Join(c.CORSAllowedOrigins, ","))
	c.ClerkClockSkew = l.duration("CLERK_CLOCK_SKEW", DefaultClockSkew, 0)

	c.StripeSecretKey = l.stripeKey("STRIPE_SECRET_KEY")
	c.StripeWebhookSecret = l.secret("STRIPE_WEBHOOK_SECRET", "whsec_")
	c.StripeAPIURL = l.urlValue("STRIPE_API_URL", "")
	c.StripePriceIDs = l.patternList("STRIPE_PRICE_IDS", "", priceIDRe,
		"is required: list the price IDs a user may buy (price_…)", "%q is not a Stripe price ID")

	successDefault, cancelDefault := "", ""
	if frontendOK {
		successDefault = c.FrontendURL + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"
		cancelDefault = c.FrontendURL + "/pricing"
	}
	c.CheckoutSuccessURL = l.returnURL("CHECKOUT_SUCCESS_URL", successDefault, allowed)
	c.CheckoutCancelURL = l.returnURL("CHECKOUT_CANCEL_URL", cancelDefault, allowed)
	c.CheckoutRateLimit = l.rate("CHECKOUT_RATE_LIMIT", DefaultRateLimit)

	c.NextJSWebhookURL = l.urlValue("NEXTJS_WEBHOOK_URL", DefaultNextJSURL)
	c.NextJSWebhookSecret = l.secret("NEXTJS_WEBHOOK_SECRET", "")
	c.WebhookForwardEvents = l.patternList("WEBHOOK_FORWARD_EVENTS", DefaultForwardEvents, eventTypeRe,
		"must list at least one event type", "%q is not a Stripe event type (e.g. checkout.session.completed)")
	c.ForwardTimeout = l.duration("FORWARD_TIMEOUT", DefaultForwardTimeout, time.Millisecond)

	c.ShutdownDelay = l.duration("SHUTDOWN_DELAY", DefaultShutdownDelay, 0)
	c.ShutdownTimeout = l.duration("SHUTDOWN_TIMEOUT", DefaultShutdownTimeout, time.Millisecond)

	if len(l.problems) > 0 {
		return Config{}, l.problems
	}
	return c, nil
}

// Warnings returns advice about a valid but doubtful configuration, for the
