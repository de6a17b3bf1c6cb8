// Package config is the service's typed configuration: read from environment
// variables once, validated as a whole (every problem reported together, one per
// variable), with secrets held in a type that never prints its value.
package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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

// Secret is a configuration value that must never reach a log or an error message.
// Its String, GoString and LogValue all print a placeholder.
type Secret string

// Value returns the secret itself, for the one place that uses it.
func (s Secret) Value() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Rate is a number of events per period; the zero Rate means "no limit".
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether the rate imposes no limit.
func (r Rate) Off() bool { return r.N == 0 }

func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return fmt.Sprintf("%d/%s", r.N, unit)
}

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

// loader reads variables and collects problems instead of stopping at the first.
type loader struct {
	getenv   func(string) string
	problems Problems
}

func (l *loader) fail(name, format string, args ...any) {
	l.problems = append(l.problems, name+": "+fmt.Sprintf(format, args...))
}

func (l *loader) get(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) addr(name, def string, offAllowed bool) string {
	v := l.get(name, def)
	if offAllowed && v == "off" {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		l.fail(name, "%q is not a host:port address (e.g. :8001)", v)
		return ""
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		l.fail(name, "%q has an invalid port", v)
		return ""
	}
	if strings.ContainsAny(host, " /") {
		l.fail(name, "%q has an invalid host", v)
		return ""
	}
	return v
}

func (l *loader) logLevel(name string) slog.Level {
	switch v := strings.ToLower(l.get(name, "info")); v {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		l.fail(name, "unknown level %q (want debug, info, warn or error)", v)
		return slog.LevelInfo
	}
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(l.get(name, def))
	if !slices.Contains(allowed, v) {
		l.fail(name, "unknown value %q (want %s)", v, strings.Join(allowed, " or "))
	}
	return v
}

// parseHTTPURL parses an absolute http(s) URL without credentials or fragment.
func parseHTTPURL(v string) (*url.URL, string) {
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return nil, "is not a valid URL (want an absolute http:// or https:// URL)"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an absolute http:// or https:// URL"
	case u.Host == "" || u.Hostname() == "":
		return nil, "must be an absolute URL with a host"
	case u.User != nil:
		return nil, "must not contain credentials"
	case u.Fragment != "":
		return nil, "must not contain a fragment"
	}
	return u, ""
}

// url reads an absolute http(s) URL. Unset (with no default) or invalid, it
// returns nil; an invalid one is reported.
func (l *loader) url(name, def string) (string, *url.URL) {
	v := l.get(name, def)
	if v == "" {
		return "", nil
	}
	u, msg := parseHTTPURL(v)
	if msg != "" {
		l.fail(name, "%s", msg)
		return "", nil
	}
	return v, u
}

// urlValue is url for the variables that keep only the text.
func (l *loader) urlValue(name, def string) string {
	v, _ := l.url(name, def)
	return v
}

// browserURL reads a URL a browser is sent to, under origin.ParseURL, the
// rule the checkout endpoint applies, plus this package's refusal of a
// fragment. Unset (with no default) or invalid, it returns nil; an invalid one
// is reported.
func (l *loader) browserURL(name, def string) (string, *url.URL) {
	v := l.get(name, def)
	if v == "" {
		return "", nil
	}
	u, err := origin.ParseURL(v)
	if err == nil && u.Fragment != "" {
		err = errors.New("must not contain a fragment")
	}
	if err != nil {
		l.fail(name, "%v", err)
		return "", nil
	}
	return v, u
}

// returnURL is where Stripe sends the browser back to: it must be on one of the
// allowed origins, the same rule the checkout endpoint applies to URLs a client
// sends and to these at start-up, so that no configuration turns the service
// into an open redirect or passes here only to be refused there. With no
// allowed origins (their variable is invalid and reported), only the URL's
// form is checked.
func (l *loader) returnURL(name, def string, allowed origin.Set) string {
	v, u := l.browserURL(name, def)
	if u == nil || allowed.Len() == 0 {
		return v
	}
	if !allowed.Allows(u) {
		l.fail(name, "must be on an origin listed in CORS_ALLOWED_ORIGINS (%s is not)", origin.Of(u))
		return ""
	}
	return v
}

// clerkURL is a URL that must be https, except on a loopback host where local
// development runs Clerk stand-ins over plain http.
func (l *loader) clerkURL(name, def string) string {
	v, u := l.url(name, def)
	if u == nil {
		return ""
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		l.fail(name, "must use https (plain http is allowed only on a loopback host for local development)")
		return ""
	}
	return v
}

// IsLoopback reports whether host names this machine: localhost or a loopback IP.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origins reads a list of exact origins; see origin.Parse. An invalid list is
// reported and gives the zero Set.
func (l *loader) origins(name, def string) origin.Set {
	set, err := origin.NewSet(l.list(name, def))
	if err != nil {
		l.fail(name, "%v", err)
	}
	return set
}

func (l *loader) list(name, def string) []string {
	var out []string
	for _, item := range strings.Split(l.get(name, def), ",") {
		if item = strings.TrimSpace(item); item != "" && !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

func (l *loader) duration(name string, def, min time.Duration) time.Duration {
	v := l.get(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		l.fail(name, "%q is not a duration (e.g. 5s, 250ms, 1m)", v)
		return def
	}
	if d < min {
		if min == 0 {
			l.fail(name, "must not be negative")
		} else {
			l.fail(name, "must be positive")
		}
		return def
	}
	return d
}

var rateRe = regexp.MustCompile(`^([0-9]{1,9})/([smh])$`)

func (l *loader) rate(name, def string) Rate {
	v := strings.ToLower(l.get(name, def))
	if v == "off" {
		return Rate{}
	}
	m := rateRe.FindStringSubmatch(v)
	if m == nil {
		l.fail(name, "%q is not a rate (want N/s, N/m, N/h or off)", v)
		return Rate{}
	}
	n, _ := strconv.Atoi(m[1]) // the pattern admits only digits
	if n == 0 {
		l.fail(name, "must allow at least 1 request (use off to disable the limit)")
		return Rate{}
	}
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	return Rate{N: n, Per: per}
}

func (l *loader) secret(name, prefix string) Secret {
	v := strings.TrimSpace(l.getenv(name))
	switch {
	case v == "":
		l.fail(name, "is required")
	case !strings.HasPrefix(v, prefix):
		l.fail(name, "must start with %s", prefix)
	case len(v) == len(prefix):
		l.fail(name, "has nothing after %s", prefix)
	default:
		return Secret(v)
	}
	return ""
}

func (l *loader) stripeKey(name string) Secret {
	v := strings.TrimSpace(l.getenv(name))
	switch {
	case v == "":
		l.fail(name, "is required (a secret sk_… or restricted rk_… key)")
	case strings.HasPrefix(v, "pk_"):
		l.fail(name, "is a publishable pk_ key; the server needs a secret sk_… or restricted rk_… key")
	case !strings.HasPrefix(v, "sk_") && !strings.HasPrefix(v, "rk_"):
		l.fail(name, "must start with sk_ or rk_")
	case len(v) <= len("sk_"):
		l.fail(name, "is too short to be a Stripe key")
	default:
		return Secret(v)
	}
	return ""
}

// pemKey validates CLERK_JWT_KEY: an RSA public key in PEM, as Clerk's dashboard
// shows it. Literal "\n" sequences are accepted because a multi-line value is
// often flattened that way in .env files.
func (l *loader) pemKey(name string) Secret {
	v := strings.TrimSpace(strings.ReplaceAll(l.getenv(name), `\n`, "\n"))
	if v == "" {
		return ""
	}
	if _, err := ParseRSAPublicKey(v); err != nil {
		l.fail(name, "%v", err)
		return ""
	}
	return Secret(v)
}

// ParseRSAPublicKey parses a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1)
// block holding an RSA key of at least 2048 bits. Its errors never quote the input.
func ParseRSAPublicKey(s string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("is not a PEM-encoded public key")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("holds a %q PEM block, want PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, errors.New("holds an unparsable public key")
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("is not an RSA public key (Clerk signs with RS256)")
	}
	if rsaKey.N.BitLen() < 2048 {
		return nil, errors.New("is an RSA key shorter than 2048 bits")
	}
	return rsaKey, nil
}

var (
	priceIDRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	eventTypeRe = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
)

// patternList reads a comma list that must not be empty and whose every item
// matches re; empty and bad are the problems to report (bad gets the item).
func (l *loader) patternList(name, def string, re *regexp.Regexp, empty, bad string) []string {
	items := l.list(name, def)
	if len(items) == 0 {
		l.fail(name, "%s", empty)
		return nil
	}
	for _, item := range items {
		if !re.MatchString(item) {
			l.fail(name, bad, item)
			return nil
		}
	}
	return items
}
