// Package config is the service's typed configuration: read from environment
// variables once, validated as a whole (every problem reported together, one per
// variable), and handed out as typed values (an origin set, an RSA key, parsed
// URLs) that nothing downstream parses again. Secrets are held in types that
// never print their value.
//
// The files split by reason to change: this one lists the variables; read.go
// has the primitive readers, addr.go the listeners, urls.go URLs and origins,
// secret.go secrets and keys, rate.go rates, log.go the start-up log.
package config

import (
	"crypto/rsa"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/acme/payments-api/internal/origin"
)

// Defaults of the variables that have one and do not derive from another.
const (
	DefaultListenAddr          = ":8001"
	DefaultMetricsAddr         = ":9090"
	DefaultFrontendURL         = "http://localhost:3000"
	DefaultNextJSURL           = "http://localhost:3000/api/payments/webhook"
	DefaultRateLimit           = "10/m"
	DefaultClockSkew           = 5 * time.Second
	DefaultForwardTimeout      = 10 * time.Second
	DefaultShutdownDelay       = 0 * time.Second
	DefaultShutdownTimeout     = 20 * time.Second
	DefaultDeliveryWorkers     = 10
	DefaultDeliveryMaxAttempts = 25
	DefaultDeliveryRetention   = 168 * time.Hour
	DefaultTrialDays           = 0
)

// DefaultForwardEvents are the event types forwarded to Next.js unless
// WEBHOOK_FORWARD_EVENTS says otherwise: a finished checkout, and the life
// cycle of the subscription it may have started.
const DefaultForwardEvents = "checkout.session.completed," +
	"checkout.session.async_payment_succeeded," +
	"checkout.session.async_payment_failed," +
	"customer.subscription.created," +
	"customer.subscription.updated," +
	"customer.subscription.deleted," +
	"customer.subscription.paused," +
	"customer.subscription.resumed," +
	"customer.subscription.trial_will_end," +
	"invoice.paid," +
	"invoice.payment_failed," +
	"invoice.payment_action_required"

// Config is the whole configuration of the service.
type Config struct {
	// Listener addresses (host:port); empty when switched off.
	ListenAddr  string
	MetricsAddr string
	AdminAddr   string
	LogLevel    slog.Level
	LogFormat   string // "json" or "text"

	FrontendURL        *url.URL // without a trailing /
	CORSAllowedOrigins origin.Set

	// ClerkIssuer stays text: it is compared byte for byte with a token's iss.
	ClerkIssuer            string
	ClerkJWKSURL           *url.URL
	ClerkJWTKey            *rsa.PublicKey // nil: keys come from ClerkJWKSURL
	ClerkAuthorizedParties origin.Set
	ClerkClockSkew         time.Duration

	StripeSecretKey           Secret
	StripeWebhookSecret       Secret
	StripeAPIURL              *url.URL // nil: Stripe's own
	StripePriceIDs            []string
	StripePortalConfiguration string // empty: the account's default portal

	// The return URLs stay text: they reach Stripe verbatim, so that the
	// {CHECKOUT_SESSION_ID} template keeps its braces wherever it stands.
	CheckoutSuccessURL          string
	CheckoutCancelURL           string
	PortalReturnURL             string
	CheckoutRateLimit           Rate
	CheckoutAllowPromotionCodes bool
	CheckoutTrialDays           int
	CheckoutSingleSubscription  bool

	NextJSWebhookURL     *url.URL
	NextJSWebhookSecret  Secret
	WebhookForwardEvents []string
	ForwardTimeout       time.Duration

	DatabaseURL         SecretURL // zero: synchronous delivery, no database
	DeliveryWorkers     int
	DeliveryMaxAttempts int
	DeliveryRetention   time.Duration
	AdminUsername       string // set when AdminAddr is
	AdminPassword       Secret // set when AdminAddr is

	RedisURL SecretURL // zero: per-replica rate limits

	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
}

// Problems is every configuration problem found, one line per problem, each
// starting with the variable's name.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

// Load reads and validates the configuration through getenv. An empty value is
// the same as an unset one. The error, when not nil, is a Problems listing every
// problem; no message contains a secret's value.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	var c Config
	l.listeners(&c)
	l.logs(&c)
	l.browser(&c)
	l.clerk(&c)
	l.stripe(&c)
	l.checkout(&c)
	l.forwarding(&c)
	l.delivery(&c)
	l.redis(&c)
	l.shutdown(&c)
	if len(l.problems) > 0 {
		return Config{}, l.problems
	}
	return c, nil
}

func (l *loader) listeners(c *Config) {
	c.ListenAddr = l.addr("LISTEN_ADDR", DefaultListenAddr, false)
	c.MetricsAddr = l.addr("METRICS_ADDR", DefaultMetricsAddr, true)
	c.AdminAddr = l.addr("ADMIN_ADDR", "off", true)
	l.distinctPorts(
		namedAddr{"LISTEN_ADDR", c.ListenAddr},
		namedAddr{"METRICS_ADDR", c.MetricsAddr},
		namedAddr{"ADMIN_ADDR", c.AdminAddr},
	)
}

func (l *loader) logs(c *Config) {
	c.LogLevel = l.logLevel("LOG_LEVEL")
	c.LogFormat = l.oneOf("LOG_FORMAT", "json", "json", "text")
}

// browser reads the site and the origins allowed to call the API. Variables
// whose default derives from FRONTEND_URL are left unchecked when it is invalid
// and they are unset: its own problem line says it all. FRONTEND_URL is held to
// the return-URL rule because the default return URLs extend it: a problem in
// it is reported once, under its own name.
func (l *loader) browser(c *Config) {
	c.FrontendURL = l.browserURL("FRONTEND_URL", DefaultFrontendURL)
	defaultOrigin := ""
	if c.FrontendURL != nil {
		c.FrontendURL.Path = strings.TrimSuffix(c.FrontendURL.Path, "/")
		c.FrontendURL.RawPath = strings.TrimSuffix(c.FrontendURL.RawPath, "/")
		defaultOrigin = origin.Of(c.FrontendURL)
	}
	if c.FrontendURL != nil || l.set("CORS_ALLOWED_ORIGINS") {
		c.CORSAllowedOrigins = l.origins("CORS_ALLOWED_ORIGINS", defaultOrigin)
	}
}

func (l *loader) clerk(c *Config) {
	c.ClerkIssuer = l.clerkIssuer("CLERK_ISSUER")
	jwksDefault := ""
	if c.ClerkIssuer != "" {
		jwksDefault = c.ClerkIssuer + "/.well-known/jwks.json"
	}
	c.ClerkJWKSURL = l.secureURL("CLERK_JWKS_URL", jwksDefault)
	c.ClerkJWTKey = l.pemKey("CLERK_JWT_KEY")
	// A token's azp is the origin of the page that asked for it, so the
	// parties are written and normalised as the CORS origins are.
	c.ClerkAuthorizedParties = c.CORSAllowedOrigins
	if l.set("CLERK_AUTHORIZED_PARTIES") {
		c.ClerkAuthorizedParties = l.origins("CLERK_AUTHORIZED_PARTIES", "")
	}
	c.ClerkClockSkew = l.duration("CLERK_CLOCK_SKEW", DefaultClockSkew, 0)
}

func (l *loader) stripe(c *Config) {
	c.StripeSecretKey = l.stripeKey("STRIPE_SECRET_KEY")
	c.StripeWebhookSecret = l.secret("STRIPE_WEBHOOK_SECRET", "whsec_")
	c.StripeAPIURL = l.secureURL("STRIPE_API_URL", "")
	c.StripePriceIDs = l.patternList("STRIPE_PRICE_IDS", "", priceIDRe,
		"is required: list the price IDs a user may buy (price_…)", "%q is not a Stripe price ID")
	c.StripePortalConfiguration = l.pattern("STRIPE_PORTAL_CONFIGURATION", portalConfigRe,
		"is not a billing portal configuration ID (bpc_…)")
}

// checkout reads the checkout and billing portal settings. The default return
// URLs extend FRONTEND_URL; with no valid FRONTEND_URL they have none.
func (l *loader) checkout(c *Config) {
	successDefault, cancelDefault, portalDefault := "", "", ""
	if c.FrontendURL != nil {
		frontend := c.FrontendURL.String()
		successDefault = frontend + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"
		cancelDefault = frontend + "/pricing"
		portalDefault = frontend + "/account"
	}
	c.CheckoutSuccessURL = l.returnURL("CHECKOUT_SUCCESS_URL", successDefault, c.CORSAllowedOrigins)
	c.CheckoutCancelURL = l.returnURL("CHECKOUT_CANCEL_URL", cancelDefault, c.CORSAllowedOrigins)
	c.PortalReturnURL = l.returnURL("PORTAL_RETURN_URL", portalDefault, c.CORSAllowedOrigins)
	c.CheckoutRateLimit = l.rate("CHECKOUT_RATE_LIMIT", DefaultRateLimit)
	c.CheckoutAllowPromotionCodes = l.boolean("CHECKOUT_ALLOW_PROMOTION_CODES", false)
	c.CheckoutTrialDays = l.intRange("CHECKOUT_TRIAL_DAYS", DefaultTrialDays, 0, 730)
	c.CheckoutSingleSubscription = l.boolean("CHECKOUT_SINGLE_SUBSCRIPTION", true)
}

func (l *loader) forwarding(c *Config) {
	c.NextJSWebhookURL = l.httpURL("NEXTJS_WEBHOOK_URL", DefaultNextJSURL)
	c.NextJSWebhookSecret = l.nextJSSecret("NEXTJS_WEBHOOK_SECRET", c.StripeWebhookSecret)
	c.WebhookForwardEvents = l.patternList("WEBHOOK_FORWARD_EVENTS", DefaultForwardEvents, eventTypeRe,
		"must list at least one event type", "%q is not a Stripe event type (e.g. checkout.session.completed)")
	c.ForwardTimeout = l.duration("FORWARD_TIMEOUT", DefaultForwardTimeout, time.Millisecond)
}

// delivery reads durable delivery and its admin listener. The admin listener
// shows the delivery queue, so it needs the database.
func (l *loader) delivery(c *Config) {
	c.DatabaseURL = l.databaseURL("DATABASE_URL")
	c.DeliveryWorkers = l.intRange("DELIVERY_WORKERS", DefaultDeliveryWorkers, 1, 100)
	c.DeliveryMaxAttempts = l.intRange("DELIVERY_MAX_ATTEMPTS", DefaultDeliveryMaxAttempts, 1, 100)
	c.DeliveryRetention = l.duration("DELIVERY_RETENTION", DefaultDeliveryRetention, time.Millisecond)
	if c.AdminAddr == "" {
		return
	}
	if !l.set("DATABASE_URL") {
		l.fail("ADMIN_ADDR", "needs DATABASE_URL: the admin listener shows the delivery queue, which lives in the database")
	}
	c.AdminUsername, c.AdminPassword = l.adminCredentials("ADMIN_USERNAME", "ADMIN_PASSWORD")
}

func (l *loader) redis(c *Config) {
	c.RedisURL = l.redisURL("REDIS_URL")
}

func (l *loader) shutdown(c *Config) {
	c.ShutdownDelay = l.duration("SHUTDOWN_DELAY", DefaultShutdownDelay, 0)
	c.ShutdownTimeout = l.duration("SHUTDOWN_TIMEOUT", DefaultShutdownTimeout, time.Millisecond)
}
