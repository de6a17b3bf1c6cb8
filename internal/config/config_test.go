package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// Secret-looking values used by the tests; no message may ever contain them.
const (
	testStripeKey   = "sk_test_Sekr1tsecret123"
	testWebhookKey  = "whsec_Sekr1twebhook456"
	testNextJSKey   = "nextjs-Sekr1t-forward-0123456789abcdef"
	testPublishable = "pk_test_Sekr1tpublishable"
)

func baseEnv() map[string]string {
	return map[string]string{
		"CLERK_ISSUER":          "https://clerk.example.com",
		"STRIPE_SECRET_KEY":     testStripeKey,
		"STRIPE_WEBHOOK_SECRET": testWebhookKey,
		"STRIPE_PRICE_IDS":      "price_basic,price_pro",
		"NEXTJS_WEBHOOK_SECRET": testNextJSKey,
	}
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// mustLoad loads baseEnv with extra set over it, failing the test on an error.
func mustLoad(t *testing.T, extra map[string]string) Config {
	t.Helper()
	env := baseEnv()
	maps.Copy(env, extra)
	c, err := Load(getenv(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// loadProblems loads baseEnv with extra set over it and returns what Load
// refused, failing the test when Load does not report Problems.
func loadProblems(t *testing.T, extra map[string]string) Problems {
	t.Helper()
	env := baseEnv()
	maps.Copy(env, extra)
	_, err := Load(getenv(env))
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("Load error = %v, want Problems", err)
	}
	return problems
}

func pemOf(t *testing.T, pub any, blockType string) string {
	t.Helper()
	var der []byte
	var err error
	if blockType == "RSA PUBLIC KEY" {
		der = x509.MarshalPKCS1PublicKey(pub.(*rsa.PublicKey))
	} else {
		der, err = x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}))
}

// field is one Config field as loaded, beside the value it should have.
type field struct {
	name      string
	got, want any
}

func checkFields(t *testing.T, fields []field) {
	t.Helper()
	for _, f := range fields {
		if fmt.Sprint(f.got) != fmt.Sprint(f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(getenv(baseEnv()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []field{
		{"ListenAddr", c.ListenAddr, ":8001"},
		{"MetricsAddr", c.MetricsAddr, ":9090"},
		{"AdminAddr", c.AdminAddr, ""},
		{"LogLevel", c.LogLevel, slog.LevelInfo},
		{"LogFormat", c.LogFormat, "json"},
		{"FrontendURL", c.FrontendURL, "http://localhost:3000"},
		{"CORSAllowedOrigins", c.CORSAllowedOrigins.List(), []string{"http://localhost:3000"}},
		{"ClerkIssuer", c.ClerkIssuer, "https://clerk.example.com"},
		{"ClerkJWKSURL", c.ClerkJWKSURL, "https://clerk.example.com/.well-known/jwks.json"},
		{"ClerkJWTKey set", c.ClerkJWTKey != nil, false},
		{"ClerkAuthorizedParties", c.ClerkAuthorizedParties.List(), []string{"http://localhost:3000"}},
		{"ClerkClockSkew", c.ClerkClockSkew, 5 * time.Second},
		{"StripeSecretKey", c.StripeSecretKey.Value(), testStripeKey},
		{"StripeWebhookSecret", c.StripeWebhookSecret.Value(), testWebhookKey},
		{"StripeAPIURL", urlText(c.StripeAPIURL), ""},
		{"StripePriceIDs", c.StripePriceIDs, []string{"price_basic", "price_pro"}},
		{"StripePortalConfiguration", c.StripePortalConfiguration, ""},
		{"CheckoutSuccessURL", c.CheckoutSuccessURL, "http://localhost:3000/checkout/success?session_id={CHECKOUT_SESSION_ID}"},
		{"CheckoutCancelURL", c.CheckoutCancelURL, "http://localhost:3000/pricing"},
		{"PortalReturnURL", c.PortalReturnURL, "http://localhost:3000/account"},
		{"CheckoutRateLimit", c.CheckoutRateLimit, Rate{N: 10, Per: time.Minute}},
		{"CheckoutAllowPromotionCodes", c.CheckoutAllowPromotionCodes, false},
		{"CheckoutTrialDays", c.CheckoutTrialDays, 0},
		{"CheckoutSingleSubscription", c.CheckoutSingleSubscription, true},
		{"NextJSWebhookURL", c.NextJSWebhookURL, "http://localhost:3000/api/payments/webhook"},
		{"NextJSWebhookSecret", c.NextJSWebhookSecret.Value(), testNextJSKey},
		{"WebhookForwardEvents", c.WebhookForwardEvents, []string{
			"checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed",
			"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
			"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
			"invoice.paid", "invoice.payment_failed", "invoice.payment_action_required",
		}},
		{"ForwardTimeout", c.ForwardTimeout, 10 * time.Second},
		{"DatabaseURL set", c.DatabaseURL.IsSet(), false},
		{"DeliveryWorkers", c.DeliveryWorkers, 10},
		{"DeliveryMaxAttempts", c.DeliveryMaxAttempts, 25},
		{"DeliveryRetention", c.DeliveryRetention, 168 * time.Hour},
		{"AdminUsername", c.AdminUsername, ""},
		{"AdminPassword", c.AdminPassword.Value(), ""},
		{"RedisURL set", c.RedisURL.IsSet(), false},
		{"ShutdownDelay", c.ShutdownDelay, time.Duration(0)},
		{"ShutdownTimeout", c.ShutdownTimeout, 20 * time.Second},
	}
	checkFields(t, checks)
}

func TestLoadOverrides(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	env := baseEnv()
	for k, v := range map[string]string{
		"LISTEN_ADDR":              "127.0.0.1:0",
		"METRICS_ADDR":             "off",
		"LOG_LEVEL":                "DEBUG",
		"LOG_FORMAT":               "text",
		"FRONTEND_URL":             "https://app.example.com/",
		"CORS_ALLOWED_ORIGINS":     "https://app.example.com, https://WWW.example.com/ ,https://app.example.com:443",
		"CLERK_ISSUER":             "http://127.0.0.1:9999",
		"CLERK_JWKS_URL":           "http://localhost:9999/keys",
		"CLERK_JWT_KEY":            strings.ReplaceAll(pemOf(t, &key.PublicKey, "PUBLIC KEY"), "\n", `\n`),
		"CLERK_AUTHORIZED_PARTIES": "https://app.example.com,HTTPS://Admin.Example.com:443/",
		"CLERK_CLOCK_SKEW":         "0s",
		"STRIPE_SECRET_KEY":        "rk_live_abc123",
		"STRIPE_API_URL":           "http://127.0.0.1:12111",
		"CHECKOUT_SUCCESS_URL":     "https://app.example.com/thanks",
		"CHECKOUT_CANCEL_URL":      "https://app.example.com/back",
		"CHECKOUT_RATE_LIMIT":      "off",
		"NEXTJS_WEBHOOK_URL":       "http://web.default.svc.cluster.local:3000/api/payments/webhook",
		"WEBHOOK_FORWARD_EVENTS":   "checkout.session.completed",
		"FORWARD_TIMEOUT":          "2500ms",
		"SHUTDOWN_DELAY":           "5s",
		"SHUTDOWN_TIMEOUT":         "1m",

		"STRIPE_PORTAL_CONFIGURATION":    "bpc_1MoBy5LkdIwHu7ix",
		"PORTAL_RETURN_URL":              "https://www.example.com/billing",
		"CHECKOUT_ALLOW_PROMOTION_CODES": "true",
		"CHECKOUT_TRIAL_DAYS":            "14",
		"CHECKOUT_SINGLE_SUBSCRIPTION":   "FALSE",
		"DATABASE_URL":                   "postgresql://payments:pw@db.example.com:5432/payments?sslmode=require",
		"DELIVERY_WORKERS":               "100",
		"DELIVERY_MAX_ATTEMPTS":          "1",
		"DELIVERY_RETENTION":             "720h",
		"ADMIN_ADDR":                     "127.0.0.1:9091",
		"ADMIN_USERNAME":                 "ops",
		"ADMIN_PASSWORD":                 "sixteen-chars-ok",
		"REDIS_URL":                      "rediss://default:pw@cache.example.com:6380/2",
	} {
		env[k] = v
	}
	c, err := Load(getenv(env))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []field{
		{"ListenAddr", c.ListenAddr, "127.0.0.1:0"},
		{"MetricsAddr", c.MetricsAddr, ""},
		{"LogLevel", c.LogLevel, slog.LevelDebug},
		{"LogFormat", c.LogFormat, "text"},
		{"FrontendURL", c.FrontendURL, "https://app.example.com"},
		{"CORSAllowedOrigins", c.CORSAllowedOrigins.List(), []string{"https://app.example.com", "https://www.example.com"}},
		{"ClerkIssuer", c.ClerkIssuer, "http://127.0.0.1:9999"},
		{"ClerkJWKSURL", c.ClerkJWKSURL, "http://localhost:9999/keys"},
		{"ClerkJWTKey", c.ClerkJWTKey != nil && c.ClerkJWTKey.Equal(&key.PublicKey), true},
		{"ClerkAuthorizedParties", c.ClerkAuthorizedParties.List(), []string{"https://app.example.com", "https://admin.example.com"}},
		{"ClerkClockSkew", c.ClerkClockSkew, time.Duration(0)},
		{"StripeSecretKey", c.StripeSecretKey.Value(), "rk_live_abc123"},
		{"StripeAPIURL", c.StripeAPIURL, "http://127.0.0.1:12111"},
		{"CheckoutSuccessURL", c.CheckoutSuccessURL, "https://app.example.com/thanks"},
		{"CheckoutCancelURL", c.CheckoutCancelURL, "https://app.example.com/back"},
		{"CheckoutRateLimit.Off", c.CheckoutRateLimit.Off(), true},
		{"NextJSWebhookURL", c.NextJSWebhookURL, "http://web.default.svc.cluster.local:3000/api/payments/webhook"},
		{"WebhookForwardEvents", c.WebhookForwardEvents, []string{"checkout.session.completed"}},
		{"ForwardTimeout", c.ForwardTimeout, 2500 * time.Millisecond},
		{"ShutdownDelay", c.ShutdownDelay, 5 * time.Second},
		{"ShutdownTimeout", c.ShutdownTimeout, time.Minute},
		{"StripePortalConfiguration", c.StripePortalConfiguration, "bpc_1MoBy5LkdIwHu7ix"},
		{"PortalReturnURL", c.PortalReturnURL, "https://www.example.com/billing"},
		{"CheckoutAllowPromotionCodes", c.CheckoutAllowPromotionCodes, true},
		{"CheckoutTrialDays", c.CheckoutTrialDays, 14},
		{"CheckoutSingleSubscription", c.CheckoutSingleSubscription, false},
		{"DatabaseURL", c.DatabaseURL.Value(), "postgresql://payments:pw@db.example.com:5432/payments?sslmode=require"},
		{"DatabaseURL shown", c.DatabaseURL, "postgresql://db.example.com:5432/payments"},
		{"DeliveryWorkers", c.DeliveryWorkers, 100},
		{"DeliveryMaxAttempts", c.DeliveryMaxAttempts, 1},
		{"DeliveryRetention", c.DeliveryRetention, 720 * time.Hour},
		{"AdminAddr", c.AdminAddr, "127.0.0.1:9091"},
		{"AdminUsername", c.AdminUsername, "ops"},
		{"AdminPassword", c.AdminPassword.Value(), "sixteen-chars-ok"},
		{"RedisURL", c.RedisURL.Value(), "rediss://default:pw@cache.example.com:6380/2"},
		{"RedisURL shown", c.RedisURL, "rediss://cache.example.com:6380/2"},
	}
	checkFields(t, checks)
}

// TestLoadDerivedDefaults pins the defaults that come from another variable:
// CLERK_AUTHORIZED_PARTIES from CORS_ALLOWED_ORIGINS (every origin listed, not
// just FRONTEND_URL's), the return URLs from FRONTEND_URL, CLERK_JWKS_URL from
// CLERK_ISSUER.
func TestLoadDerivedDefaults(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		fields func(Config) []field
	}{
		{
			name: "parties from a CORS list wider than FRONTEND_URL",
			env: map[string]string{
				"FRONTEND_URL":         "https://app.example.com",
				"CORS_ALLOWED_ORIGINS": "https://app.example.com,https://admin.example.com",
				"CLERK_ISSUER":         "https://clerk.shop.example.com",
			},
			fields: func(c Config) []field {
				return []field{
					{"CORSAllowedOrigins", c.CORSAllowedOrigins.List(), []string{"https://app.example.com", "https://admin.example.com"}},
					{"ClerkAuthorizedParties", c.ClerkAuthorizedParties.List(), []string{"https://app.example.com", "https://admin.example.com"}},
					{"ClerkJWKSURL", c.ClerkJWKSURL, "https://clerk.shop.example.com/.well-known/jwks.json"},
					{"CheckoutSuccessURL", c.CheckoutSuccessURL, "https://app.example.com/checkout/success?session_id={CHECKOUT_SESSION_ID}"},
					{"CheckoutCancelURL", c.CheckoutCancelURL, "https://app.example.com/pricing"},
					{"PortalReturnURL", c.PortalReturnURL, "https://app.example.com/account"},
				}
			},
		},
		{
			name: "everything from a FRONTEND_URL with a path and a trailing slash",
			env: map[string]string{
				"FRONTEND_URL": "https://www.example.com/shop/",
				"CLERK_ISSUER": "http://127.0.0.1:9999",
			},
			fields: func(c Config) []field {
				return []field{
					{"FrontendURL", c.FrontendURL, "https://www.example.com/shop"},
					{"CORSAllowedOrigins", c.CORSAllowedOrigins.List(), []string{"https://www.example.com"}},
					{"ClerkAuthorizedParties", c.ClerkAuthorizedParties.List(), []string{"https://www.example.com"}},
					{"ClerkJWKSURL", c.ClerkJWKSURL, "http://127.0.0.1:9999/.well-known/jwks.json"},
					{"CheckoutSuccessURL", c.CheckoutSuccessURL, "https://www.example.com/shop/checkout/success?session_id={CHECKOUT_SESSION_ID}"},
					{"CheckoutCancelURL", c.CheckoutCancelURL, "https://www.example.com/shop/pricing"},
					{"PortalReturnURL", c.PortalReturnURL, "https://www.example.com/shop/account"},
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.env)
			checkFields(t, tt.fields(c))
		})
	}
}

// TestLoadLogSettings pins every LOG_LEVEL and LOG_FORMAT the README documents.
func TestLoadLogSettings(t *testing.T) {
	tests := []struct {
		level  string
		want   slog.Level
		format string
	}{
		{"debug", slog.LevelDebug, "json"},
		{"info", slog.LevelInfo, "text"},
		{"warn", slog.LevelWarn, "json"},
		{"error", slog.LevelError, "text"},
	}
	for _, tt := range tests {
		t.Run(tt.level+","+tt.format, func(t *testing.T) {
			c := mustLoad(t, map[string]string{"LOG_LEVEL": tt.level, "LOG_FORMAT": tt.format})
			checkFields(t, []field{
				{"LogLevel", c.LogLevel, tt.want},
				{"LogFormat", c.LogFormat, tt.format},
			})
		})
	}
}

func TestLoadRates(t *testing.T) {
	for in, want := range map[string]Rate{
		"1/s": {1, time.Second}, "10/m": {10, time.Minute}, "600/h": {600, time.Hour},
		"5/M": {5, time.Minute}, "off": {}, "OFF": {},
	} {
		env := baseEnv()
		env["CHECKOUT_RATE_LIMIT"] = in
		c, err := Load(getenv(env))
		if err != nil {
			t.Errorf("CHECKOUT_RATE_LIMIT=%q: %v", in, err)
			continue
		}
		if c.CheckoutRateLimit != want {
			t.Errorf("CHECKOUT_RATE_LIMIT=%q = %+v, want %+v", in, c.CheckoutRateLimit, want)
		}
	}
}

// TestLoadProblems sets one bad value at a time and expects exactly one problem
// line, naming the variable, saying why, and never quoting a secret.
func TestLoadProblems(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	smallKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value string
		want        string // substring of the problem line after "NAME: "
	}{
		{"LISTEN_ADDR", "8001", "not a host:port"},
		{"LISTEN_ADDR", ":99999", "invalid port"},
		{"METRICS_ADDR", "nope", "not a host:port"},
		{"METRICS_ADDR", ":8001", "must differ from LISTEN_ADDR"},
		{"LOG_LEVEL", "verbose", "unknown level"},
		{"LOG_FORMAT", "xml", "unknown value"},
		{"FRONTEND_URL", "localhost:3000", "http:// or https://"},
		{"FRONTEND_URL", "ftp://example.com", "http:// or https://"},
		{"FRONTEND_URL", "https://user:pw@example.com", "credentials"},
		// The default return URLs extend FRONTEND_URL: its problem is its own
		// line, not one for each of them.
		{"FRONTEND_URL", "https://app.example.com/café", "non-ASCII"},
		{"CORS_ALLOWED_ORIGINS", "*", "wildcards are refused"},
		{"CORS_ALLOWED_ORIGINS", "https://a.example.com,*", "wildcards are refused"},
		{"CORS_ALLOWED_ORIGINS", "https://*.example.com", "wildcards are refused"},
		{"CORS_ALLOWED_ORIGINS", "https://app.example.com/path", "without path"},
		{"CORS_ALLOWED_ORIGINS", "app.example.com", "http:// or https://"},
		{"CORS_ALLOWED_ORIGINS", " , ", "at least one origin"},
		{"CORS_ALLOWED_ORIGINS", "https://аpp.example.com", "non-ASCII"}, // Cyrillic а: browsers send the xn-- form
		{"CLERK_ISSUER", "", "is required"},
		{"CLERK_ISSUER", "http://clerk.example.com", "must use https"},
		{"CLERK_ISSUER", "https://clerk.example.com/", "must not end with /"},
		{"CLERK_ISSUER", "clerk.example.com", "http:// or https://"},
		{"CLERK_JWKS_URL", "http://10.0.0.1/jwks.json", "must use https"},
		{"CLERK_JWKS_URL", "http://localhost.evil.com/jwks.json", "must use https"},
		{"CLERK_JWT_KEY", "not a pem", "not a PEM-encoded public key"},
		{"CLERK_JWT_KEY", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "want PUBLIC KEY"},
		{"CLERK_JWT_KEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "unparsable"},
		{"CLERK_JWT_KEY", pemOf(t, &ecKey.PublicKey, "PUBLIC KEY"), "not an RSA public key"},
		{"CLERK_JWT_KEY", pemOf(t, &smallKey.PublicKey, "PUBLIC KEY"), "shorter than 2048 bits"},
		{"CLERK_JWT_KEY", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(smallKey)})), "want PUBLIC KEY"},
		{"CLERK_CLOCK_SKEW", "5", "not a duration"},
		{"CLERK_CLOCK_SKEW", "-1s", "must not be negative"},
		{"STRIPE_SECRET_KEY", "", "is required"},
		{"STRIPE_SECRET_KEY", testPublishable, "publishable pk_ key"},
		{"STRIPE_SECRET_KEY", "Sekr1tnotakey", "must start with sk_ or rk_"},
		{"STRIPE_SECRET_KEY", "sk_", "too short"},
		{"STRIPE_WEBHOOK_SECRET", "", "is required"},
		{"STRIPE_WEBHOOK_SECRET", "Sekr1t-whsec", "must start with whsec_"},
		{"STRIPE_WEBHOOK_SECRET", "whsec_", "nothing after whsec_"},
		{"STRIPE_API_URL", "127.0.0.1:12111", "http:// or https://"},
		{"STRIPE_PRICE_IDS", "", "is required"},
		{"STRIPE_PRICE_IDS", " , ,", "is required"},
		{"STRIPE_PRICE_IDS", "price_a,price b", "not a Stripe price ID"},
		{"CHECKOUT_SUCCESS_URL", "/checkout/success", "http:// or https://"},
		{"CHECKOUT_CANCEL_URL", "javascript:alert(1)", "http:// or https://"},
		{"CHECKOUT_SUCCESS_URL", "https://evil.example.com/thanks", "must be on an origin listed in CORS_ALLOWED_ORIGINS"},
		{"CHECKOUT_CANCEL_URL", "http://localhost:3001/pricing", "must be on an origin listed in CORS_ALLOWED_ORIGINS"},
		// The checkout handler refuses these as return URLs; configuration must
		// refuse them too, or the process would start and then exit 1.
		{"CHECKOUT_SUCCESS_URL", "http://localhost:3000/café", "non-ASCII"},
		{"CHECKOUT_SUCCESS_URL", `http://localhost:3000/checkout\success`, "backslash"},
		{"CHECKOUT_CANCEL_URL", "http://localhost:3000/précis", "non-ASCII"},
		{"CHECKOUT_CANCEL_URL", `http://localhost:3000/pricing\x`, "backslash"},
		{"CHECKOUT_RATE_LIMIT", "10", "not a rate"},
		{"CHECKOUT_RATE_LIMIT", "10/d", "not a rate"},
		{"CHECKOUT_RATE_LIMIT", "-1/m", "not a rate"},
		{"CHECKOUT_RATE_LIMIT", "0/m", "at least 1 request"},
		{"NEXTJS_WEBHOOK_URL", "web:3000/api", "http:// or https://"},
		{"NEXTJS_WEBHOOK_SECRET", "", "is required"},
		{"WEBHOOK_FORWARD_EVENTS", ",", "at least one event type"},
		{"WEBHOOK_FORWARD_EVENTS", "checkout.session.completed,Checkout Completed", "not a Stripe event type"},
		{"FORWARD_TIMEOUT", "10", "not a duration"},
		{"FORWARD_TIMEOUT", "0s", "must be positive"},
		{"SHUTDOWN_DELAY", "soon", "not a duration"},
		{"SHUTDOWN_DELAY", "-5s", "must not be negative"},
		{"SHUTDOWN_TIMEOUT", "0", "must be positive"},

		// Hardening of the first round.
		{"CLERK_AUTHORIZED_PARTIES", "*", "wildcards are refused"},
		{"CLERK_AUTHORIZED_PARTIES", "https://app.example.com,https://*.example.com", "wildcards are refused"},
		{"CLERK_AUTHORIZED_PARTIES", "https://app.example.com/sign-in", "without path"},
		{"CLERK_AUTHORIZED_PARTIES", "https://app.example.com/?next=1", "without path, query"},
		{"CLERK_AUTHORIZED_PARTIES", "https://ops@app.example.com", "credentials"},
		{"CLERK_AUTHORIZED_PARTIES", "app.example.com", "http:// or https://"},
		{"CLERK_AUTHORIZED_PARTIES", " , ", "at least one origin"},
		{"STRIPE_API_URL", "http://stripe-mock:12111", "must use https"},
		{"STRIPE_API_URL", "http://10.0.0.7:12111", "must use https"},
		{"STRIPE_API_URL", "http://localhost.evil.com", "must use https"},
		{"NEXTJS_WEBHOOK_SECRET", "Sekr1t-only-31-characters-long!", "at least 32 characters"},
		{"NEXTJS_WEBHOOK_SECRET", testWebhookKey, "at least 32 characters"},
		{"METRICS_ADDR", "127.0.0.1:8001", "must differ from LISTEN_ADDR's port 8001"},
		{"METRICS_ADDR", "[::]:8001", "must differ from LISTEN_ADDR's port 8001"},
		{"METRICS_ADDR", "0.0.0.0:08001", "must differ from LISTEN_ADDR's port 8001"},

		// Second round: durable delivery, subscriptions, shared limits.
		{"DATABASE_URL", "mysql://payments:Sekr1t@db/payments", "postgres:// or postgresql://"},
		{"DATABASE_URL", "Sekr1t", "postgres:// or postgresql://"},
		{"DATABASE_URL", "postgres:Sekr1t", "postgres:// or postgresql://"},
		{"DATABASE_URL", "postgres://payments:Sekr1t@[db/payments", "not a valid URL"},
		{"DATABASE_URL", "postgres://payments:Sekr1t/x@db/payments", "percent-encode"},
		{"DATABASE_URL", "postgres://payments:Sekr1t#x@db/payments", "percent-encode"},
		{"DELIVERY_WORKERS", "0", "between 1 and 100"},
		{"DELIVERY_WORKERS", "101", "between 1 and 100"},
		{"DELIVERY_WORKERS", "ten", "not a whole number"},
		{"DELIVERY_WORKERS", "2.5", "not a whole number"},
		{"DELIVERY_MAX_ATTEMPTS", "0", "between 1 and 100"},
		{"DELIVERY_MAX_ATTEMPTS", "1000", "between 1 and 100"},
		{"DELIVERY_MAX_ATTEMPTS", "-1", "between 1 and 100"},
		{"DELIVERY_RETENTION", "0s", "must be positive"},
		{"DELIVERY_RETENTION", "-1h", "must be positive"},
		{"DELIVERY_RETENTION", "7d", "not a duration"},
		{"PORTAL_RETURN_URL", "/account", "http:// or https://"},
		{"PORTAL_RETURN_URL", "https://evil.example.com/account", "must be on an origin listed in CORS_ALLOWED_ORIGINS"},
		{"PORTAL_RETURN_URL", "http://localhost:3000/account#top", "fragment"},
		{"PORTAL_RETURN_URL", `http://localhost:3000\@evil.example.com/`, "backslash"},
		{"STRIPE_PORTAL_CONFIGURATION", "conf_123", "bpc_"},
		{"STRIPE_PORTAL_CONFIGURATION", "bpc_", "bpc_"},
		{"STRIPE_PORTAL_CONFIGURATION", "bpc_12 3", "bpc_"},
		{"CHECKOUT_ALLOW_PROMOTION_CODES", "yes", "not a boolean"},
		{"CHECKOUT_SINGLE_SUBSCRIPTION", "maybe", "not a boolean"},
		{"CHECKOUT_TRIAL_DAYS", "-1", "between 0 and 730"},
		{"CHECKOUT_TRIAL_DAYS", "731", "between 0 and 730"},
		{"CHECKOUT_TRIAL_DAYS", "7d", "not a whole number"},
		{"REDIS_URL", "http://cache:6379", "redis:// or rediss://"},
		{"REDIS_URL", "cache:6379", "redis:// or rediss://"},
		{"REDIS_URL", "redis://:Sekr1t@/0", "must name a host"},
		{"REDIS_URL", "redis://:Sekr1t@cache:6379/zero", "database number"},
		{"REDIS_URL", "redis://:Sekr1t@cache:port/0", "not a valid URL"},
		{"REDIS_URL", "rediss://:Sekr1t/@cache:6379", "percent-encode"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			problems := loadProblems(t, map[string]string{tt.name: tt.value})
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(problems), problems)
			}
			line := problems[0]
			if !strings.HasPrefix(line, tt.name+": ") {
				t.Errorf("problem %q does not start with %q", line, tt.name+": ")
			}
			if !strings.Contains(line, tt.want) {
				t.Errorf("problem %q does not say %q", line, tt.want)
			}
			if strings.Contains(line, "Sekr1t") {
				t.Errorf("problem %q echoes a secret value", line)
			}
		})
	}
}

// TestLoadClerkJWTKeyForms pins the forms of CLERK_JWT_KEY accepted: Clerk's
// PKIX block, a PKCS#1 block, and either flattened onto one line with literal
// \n, as .env files carry it. Each gives the key itself.
func TestLoadClerkJWTKeyForms(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkix, pkcs1 := pemOf(t, &key.PublicKey, "PUBLIC KEY"), pemOf(t, &key.PublicKey, "RSA PUBLIC KEY")
	for name, value := range map[string]string{
		"pkix":                    pkix,
		"pkcs1":                   pkcs1,
		"pkix, escaped newlines":  strings.ReplaceAll(strings.TrimSpace(pkix), "\n", `\n`),
		"pkcs1, escaped newlines": strings.ReplaceAll(pkcs1, "\n", `\n`),
		"surrounded by space":     "\n  " + pkix + "  \n",
	} {
		t.Run(name, func(t *testing.T) {
			c := mustLoad(t, map[string]string{"CLERK_JWT_KEY": value})
			if c.ClerkJWTKey == nil || !c.ClerkJWTKey.Equal(&key.PublicKey) {
				t.Errorf("ClerkJWTKey = %v, want the key", c.ClerkJWTKey)
			}
		})
	}
}

// TestLoadProblemsAcrossVariables covers the rules that tie variables
// together: each case expects exactly the problem lines listed, each naming
// its variable.
func TestLoadProblemsAcrossVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // "VARIABLE: substring", one per problem line, in order
	}{
		{
			name: "Next.js secret equal to Stripe's",
			env: map[string]string{
				"STRIPE_WEBHOOK_SECRET": "whsec_Sekr1t0123456789abcdef0123456789",
				"NEXTJS_WEBHOOK_SECRET": "whsec_Sekr1t0123456789abcdef0123456789",
			},
			want: []string{"NEXTJS_WEBHOOK_SECRET: must differ from STRIPE_WEBHOOK_SECRET"},
		},
		{
			name: "admin listener without database or credentials",
			env:  map[string]string{"ADMIN_ADDR": "127.0.0.1:9091"},
			want: []string{
				"ADMIN_ADDR: needs DATABASE_URL",
				"ADMIN_USERNAME: is required when ADMIN_ADDR is set",
				"ADMIN_PASSWORD: is required when ADMIN_ADDR is set",
			},
		},
		{
			name: "admin password too short, user name with a colon",
			env: map[string]string{
				"DATABASE_URL": testDatabaseURL, "ADMIN_ADDR": ":9091",
				"ADMIN_USERNAME": "ops:team", "ADMIN_PASSWORD": "Sekr1t-15-chars",
			},
			want: []string{
				"ADMIN_USERNAME: must not contain :",
				"ADMIN_PASSWORD: must be at least 16 characters",
			},
		},
		{
			name: "an invalid DATABASE_URL is reported once, not again by ADMIN_ADDR",
			env: map[string]string{
				"DATABASE_URL": "mysql://Sekr1t@db", "ADMIN_ADDR": ":9091",
				"ADMIN_USERNAME": "ops", "ADMIN_PASSWORD": testAdminPassword,
			},
			want: []string{"DATABASE_URL: must be a postgres:// or postgresql://"},
		},
		{
			name: "admin on the metrics port, whatever the hosts",
			env: map[string]string{
				"METRICS_ADDR": "127.0.0.1:9090", "ADMIN_ADDR": "[::1]:9090", "DATABASE_URL": testDatabaseURL,
				"ADMIN_USERNAME": "ops", "ADMIN_PASSWORD": testAdminPassword,
			},
			want: []string{"ADMIN_ADDR: must differ from METRICS_ADDR's port 9090"},
		},
		{
			name: "the public listener on the default metrics port",
			env:  map[string]string{"LISTEN_ADDR": ":9090"},
			want: []string{"METRICS_ADDR: must differ from LISTEN_ADDR's port 9090"},
		},
		{
			name: "all three listeners on one port",
			env: map[string]string{
				"LISTEN_ADDR": ":8001", "METRICS_ADDR": "localhost:8001", "ADMIN_ADDR": "0.0.0.0:8001",
				"DATABASE_URL": testDatabaseURL, "ADMIN_USERNAME": "ops", "ADMIN_PASSWORD": testAdminPassword,
			},
			want: []string{
				"METRICS_ADDR: must differ from LISTEN_ADDR's port 8001",
				"ADMIN_ADDR: must differ from LISTEN_ADDR's port 8001",
			},
		},
		{
			name: "return URLs on an origin the CORS list lacks",
			env: map[string]string{
				"CORS_ALLOWED_ORIGINS": "https://app.example.com",
				"FRONTEND_URL":         "https://www.example.com",
			},
			want: []string{
				"CHECKOUT_SUCCESS_URL: must be on an origin listed in CORS_ALLOWED_ORIGINS (https://www.example.com is not)",
				"CHECKOUT_CANCEL_URL: must be on an origin listed",
				"PORTAL_RETURN_URL: must be on an origin listed",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := loadProblems(t, tt.env)
			if len(problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(problems), len(tt.want), problems)
			}
			for i, want := range tt.want {
				name, detail, _ := strings.Cut(want, ": ")
				if !strings.HasPrefix(problems[i], name+": ") || !strings.Contains(problems[i], detail) {
					t.Errorf("problem %d = %q, want %q", i, problems[i], want)
				}
			}
			if strings.Contains(problems.Error(), "Sekr1t") {
				t.Errorf("problems echo a secret:\n%v", problems)
			}
		})
	}
}

// TestLoadListenerPorts pins the combinations of listeners that are fine:
// distinct ports, port 0 (any free port) used twice, listeners switched off.
func TestLoadListenerPorts(t *testing.T) {
	tests := []struct {
		listen, metrics, admin string
	}{
		{":8001", ":9090", ""}, // ADMIN_ADDR unset: off
		{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"},
		{":0", ":0", "[::1]:0"},
		{":8001", "off", ""},
		{"[::]:8001", "0.0.0.0:9090", "127.0.0.1:9091"},
		{":8001", "OFF", "off"},
	}
	for _, tt := range tests {
		t.Run(tt.listen+","+tt.metrics+","+tt.admin, func(t *testing.T) {
			env := secretEnv()
			env["LISTEN_ADDR"], env["METRICS_ADDR"], env["ADMIN_ADDR"] = tt.listen, tt.metrics, tt.admin
			c, err := Load(getenv(env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			wantMetrics, wantAdmin := tt.metrics, tt.admin
			if strings.EqualFold(wantMetrics, "off") {
				wantMetrics = ""
			}
			if wantAdmin == "off" {
				wantAdmin = ""
			}
			checkFields(t, []field{
				{"ListenAddr", c.ListenAddr, tt.listen},
				{"MetricsAddr", c.MetricsAddr, wantMetrics},
				{"AdminAddr", c.AdminAddr, wantAdmin},
			})
		})
	}
}

// TestLoadAdminOff proves the admin credentials are neither required nor kept
// while ADMIN_ADDR is off (its default).
func TestLoadAdminOff(t *testing.T) {
	for _, admin := range []string{"", "off"} {
		env := baseEnv()
		env["ADMIN_ADDR"] = admin
		env["ADMIN_PASSWORD"] = "short"
		c, err := Load(getenv(env))
		if err != nil {
			t.Fatalf("ADMIN_ADDR=%q: %v", admin, err)
		}
		checkFields(t, []field{
			{"AdminAddr", c.AdminAddr, ""},
			{"AdminPassword", c.AdminPassword.Value(), ""},
		})
	}
}

// TestLoadConnectionURLs pins the accepted forms of DATABASE_URL and
// REDIS_URL, and what of them the start-up log shows.
func TestLoadConnectionURLs(t *testing.T) {
	tests := []struct {
		name, value, shown string
	}{
		{"DATABASE_URL", "postgres://payments:pw@db.example.com:5432/payments", "postgres://db.example.com:5432/payments"},
		{"DATABASE_URL", "postgresql://db.example.com/payments?user=payments&password=pw", "postgresql://db.example.com/payments"},
		{"DATABASE_URL", "postgres:///payments?host=/run/postgresql", "postgres:///payments"},
		{"DATABASE_URL", "postgres://payments:p%40ss%2Fw%23rd@db:5432/payments", "postgres://db:5432/payments"},
		{"DATABASE_URL", "postgres://h1:5432,h2:5432/payments?target_session_attrs=read-write", "postgres://h1:5432,h2:5432/payments"},
		{"REDIS_URL", "redis://cache:6379", "redis://cache:6379"},
		{"REDIS_URL", "rediss://default:pw@cache.example.com:6380/3", "rediss://cache.example.com:6380/3"},
		{"REDIS_URL", "redis://:pw@cache/", "redis://cache/"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			c := mustLoad(t, map[string]string{tt.name: tt.value})
			got := map[string]SecretURL{"DATABASE_URL": c.DatabaseURL, "REDIS_URL": c.RedisURL}[tt.name]
			checkFields(t, []field{
				{"Value", got.Value(), tt.value},
				{"URL", got.URL(), tt.value},
				{"String", got.String(), tt.shown},
			})
		})
	}
}

// TestLoadBooleansAndRanges pins every accepted form of the boolean and
// bounded variables at their edges.
func TestLoadBooleansAndRanges(t *testing.T) {
	tests := []struct {
		name, value string
		got         func(Config) any
		want        any
	}{
		{"CHECKOUT_ALLOW_PROMOTION_CODES", "TRUE", func(c Config) any { return c.CheckoutAllowPromotionCodes }, true},
		{"CHECKOUT_ALLOW_PROMOTION_CODES", "1", func(c Config) any { return c.CheckoutAllowPromotionCodes }, true},
		{"CHECKOUT_ALLOW_PROMOTION_CODES", "false", func(c Config) any { return c.CheckoutAllowPromotionCodes }, false},
		{"CHECKOUT_SINGLE_SUBSCRIPTION", "false", func(c Config) any { return c.CheckoutSingleSubscription }, false},
		{"CHECKOUT_SINGLE_SUBSCRIPTION", "0", func(c Config) any { return c.CheckoutSingleSubscription }, false},
		{"CHECKOUT_SINGLE_SUBSCRIPTION", "True", func(c Config) any { return c.CheckoutSingleSubscription }, true},
		{"CHECKOUT_TRIAL_DAYS", "0", func(c Config) any { return c.CheckoutTrialDays }, 0},
		{"CHECKOUT_TRIAL_DAYS", "730", func(c Config) any { return c.CheckoutTrialDays }, 730},
		{"DELIVERY_WORKERS", "1", func(c Config) any { return c.DeliveryWorkers }, 1},
		{"DELIVERY_WORKERS", "100", func(c Config) any { return c.DeliveryWorkers }, 100},
		{"DELIVERY_MAX_ATTEMPTS", "1", func(c Config) any { return c.DeliveryMaxAttempts }, 1},
		{"DELIVERY_MAX_ATTEMPTS", "100", func(c Config) any { return c.DeliveryMaxAttempts }, 100},
		{"DELIVERY_RETENTION", "1h30m", func(c Config) any { return c.DeliveryRetention }, 90 * time.Minute},
		{"NEXTJS_WEBHOOK_SECRET", strings.Repeat("x", 32), func(c Config) any { return c.NextJSWebhookSecret.Value() }, strings.Repeat("x", 32)},
		{"CLERK_AUTHORIZED_PARTIES", "HTTPS://App.Example.com:443/, https://app.example.com,http://localhost:3000", func(c Config) any { return c.ClerkAuthorizedParties.List() }, []string{"https://app.example.com", "http://localhost:3000"}},
		{"STRIPE_API_URL", "http://[::1]:12111", func(c Config) any { return c.StripeAPIURL }, "http://[::1]:12111"},
		{"STRIPE_API_URL", "https://stripe-proxy.internal.example.com", func(c Config) any { return c.StripeAPIURL }, "https://stripe-proxy.internal.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			c := mustLoad(t, map[string]string{tt.name: tt.value})
			checkFields(t, []field{{tt.name, tt.got(c), tt.want}})
		})
	}
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{
		"LOG_LEVEL":             "loud",
		"STRIPE_SECRET_KEY":     testPublishable,
		"CORS_ALLOWED_ORIGINS":  "*",
		"FORWARD_TIMEOUT":       "x",
		"STRIPE_WEBHOOK_SECRET": "Sekr1t",
	}
	_, err := Load(getenv(env))
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("Load error = %v, want Problems", err)
	}
	var names []string
	for _, p := range problems {
		names = append(names, strings.SplitN(p, ":", 2)[0])
	}
	slices.Sort(names)
	want := []string{"CLERK_ISSUER", "CORS_ALLOWED_ORIGINS", "FORWARD_TIMEOUT", "LOG_LEVEL", "NEXTJS_WEBHOOK_SECRET", "STRIPE_PRICE_IDS", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}
	if !slices.Equal(names, want) {
		t.Errorf("problems name %v, want %v\n%v", names, want, err)
	}
	if strings.Contains(err.Error(), "Sekr1t") {
		t.Errorf("problems echo a secret:\n%v", err)
	}
}

// Distinctive passwords inside connection URLs and the admin password; no
// problem line, log line or formatted Config may ever contain them.
const (
	testDatabaseURL   = "postgres://payments:Pg-Sekr1t-pw@db.example.com:5432/payments?sslmode=require&password=Pq-Sekr1t-query"
	testRedisURL      = "rediss://default:Rd-Sekr1t-pw@cache.example.com:6380/0"
	testAdminPassword = "Adm-Sekr1t-password-0123"
)

// secretEnv is baseEnv with every secret variable set, the admin listener on.
func secretEnv() map[string]string {
	env := baseEnv()
	maps.Copy(env, map[string]string{
		"DATABASE_URL":   testDatabaseURL,
		"REDIS_URL":      testRedisURL,
		"ADMIN_ADDR":     "127.0.0.1:9091",
		"ADMIN_USERNAME": "ops",
		"ADMIN_PASSWORD": testAdminPassword,
	})
	return env
}

func TestSecretNeverPrints(t *testing.T) {
	c, err := Load(getenv(secretEnv()))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "config", c)
	log.Info("secret", "s", c.StripeWebhookSecret, "db", c.DatabaseURL, "redis", c.RedisURL)
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "config", c)
	out := buf.String() + text.String() + fmt.Sprintf("%v %+v %#v %s %v %#v", c, c, c, c.NextJSWebhookSecret, c.DatabaseURL, c.RedisURL)
	for _, secret := range []string{testStripeKey, testWebhookKey, testNextJSKey, "Sekr1t"} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{
		`"stripe_secret_key":"sk_test_[redacted]"`,
		`"database_url":"postgres://db.example.com:5432/payments"`,
		`"redis_url":"rediss://cache.example.com:6380/0"`,
		`"admin_password":"[redacted]"`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}

func TestWarnings(t *testing.T) {
	env := baseEnv()
	env["STRIPE_SECRET_KEY"] = "sk_live_abc"
	env["SHUTDOWN_TIMEOUT"] = "5s"
	c, err := Load(getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"restricted rk_live_", "shorter than FORWARD_TIMEOUT"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	if c, _ := Load(getenv(baseEnv())); len(c.Warnings()) != 0 {
		t.Errorf("base config warns: %v", c.Warnings())
	}
}
