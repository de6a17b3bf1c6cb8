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
	testNextJSKey   = "nextjs-Sekr1t-forward-789"
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
		{"LogLevel", c.LogLevel, slog.LevelInfo},
		{"LogFormat", c.LogFormat, "json"},
		{"FrontendURL", c.FrontendURL, "http://localhost:3000"},
		{"CORSAllowedOrigins", c.CORSAllowedOrigins, []string{"http://localhost:3000"}},
		{"ClerkIssuer", c.ClerkIssuer, "https://clerk.example.com"},
		{"ClerkJWKSURL", c.ClerkJWKSURL, "https://clerk.example.com/.well-known/jwks.json"},
		{"ClerkJWTKey", c.ClerkJWTKey, Secret("")},
		{"ClerkAuthorizedParties", c.ClerkAuthorizedParties, []string{"http://localhost:3000"}},
		{"ClerkClockSkew", c.ClerkClockSkew, 5 * time.Second},
		{"StripeSecretKey", c.StripeSecretKey.Value(), testStripeKey},
		{"StripeWebhookSecret", c.StripeWebhookSecret.Value(), testWebhookKey},
		{"StripeAPIURL", c.StripeAPIURL, ""},
		{"StripePriceIDs", c.StripePriceIDs, []string{"price_basic", "price_pro"}},
		{"CheckoutSuccessURL", c.CheckoutSuccessURL, "http://localhost:3000/checkout/success?session_id={CHECKOUT_SESSION_ID}"},
		{"CheckoutCancelURL", c.CheckoutCancelURL, "http://localhost:3000/pricing"},
		{"CheckoutRateLimit", c.CheckoutRateLimit, Rate{N: 10, Per: time.Minute}},
		{"NextJSWebhookURL", c.NextJSWebhookURL, "http://localhost:3000/api/payments/webhook"},
		{"NextJSWebhookSecret", c.NextJSWebhookSecret.Value(), testNextJSKey},
		{"WebhookForwardEvents", c.WebhookForwardEvents, []string{"checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed"}},
		{"ForwardTimeout", c.ForwardTimeout, 10 * time.Second},
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
		"CLERK_AUTHORIZED_PARTIES": "https://app.example.com,https://admin.example.com",
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
		{"CORSAllowedOrigins", c.CORSAllowedOrigins, []string{"https://app.example.com", "https://www.example.com"}},
		{"ClerkIssuer", c.ClerkIssuer, "http://127.0.0.1:9999"},
		{"ClerkJWKSURL", c.ClerkJWKSURL, "http://localhost:9999/keys"},
		{"ClerkAuthorizedParties", c.ClerkAuthorizedParties, []string{"https://app.example.com", "https://admin.example.com"}},
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
	}
	checkFields(t, checks)
	if _, err := ParseRSAPublicKey(c.ClerkJWTKey.Value()); err != nil {
		t.Errorf("CLERK_JWT_KEY with literal \\n was not restored to a PEM: %v", err)
	}
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
					{"CORSAllowedOrigins", c.CORSAllowedOrigins, []string{"https://app.example.com", "https://admin.example.com"}},
					{"ClerkAuthorizedParties", c.ClerkAuthorizedParties, []string{"https://app.example.com", "https://admin.example.com"}},
					{"ClerkJWKSURL", c.ClerkJWKSURL, "https://clerk.shop.example.com/.well-known/jwks.json"},
					{"CheckoutSuccessURL", c.CheckoutSuccessURL, "https://app.example.com/checkout/success?session_id={CHECKOUT_SESSION_ID}"},
					{"CheckoutCancelURL", c.CheckoutCancelURL, "https://app.example.com/pricing"},
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
					{"CORSAllowedOrigins", c.CORSAllowedOrigins, []string{"https://www.example.com"}},
					{"ClerkAuthorizedParties", c.ClerkAuthorizedParties, []string{"https://www.example.com"}},
					{"ClerkJWKSURL", c.ClerkJWKSURL, "http://127.0.0.1:9999/.well-known/jwks.json"},
					{"CheckoutSuccessURL", c.CheckoutSuccessURL, "https://www.example.com/shop/checkout/success?session_id={CHECKOUT_SESSION_ID}"},
					{"CheckoutCancelURL", c.CheckoutCancelURL, "https://www.example.com/shop/pricing"},
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			maps.Copy(env, tt.env)
			c, err := Load(getenv(env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			checkFields(t, tt.fields(c))
		})
	}
}

// TestLoadLogSettings pins every LOG_LEVEL and LOG_FORMAT the contract lists.
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
			env := baseEnv()
			env["LOG_LEVEL"] = tt.level
			env["LOG_FORMAT"] = tt.format
			c, err := Load(getenv(env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
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
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			env := baseEnv()
			env[tt.name] = tt.value
			_, err := Load(getenv(env))
			var problems Problems
			if !errors.As(err, &problems) {
				t.Fatalf("Load error = %v, want Problems", err)
			}
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(problems), err)
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

func TestSecretNeverPrints(t *testing.T) {
	c, err := Load(getenv(baseEnv()))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "config", c)
	log.Info("secret", "s", c.StripeWebhookSecret)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", c, c, c, c.NextJSWebhookSecret)
	for _, secret := range []string{testStripeKey, testWebhookKey, testNextJSKey} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(buf.String(), `"stripe_secret_key":"sk_test_[redacted]"`) {
		t.Errorf("log does not show the key's kind:\n%s", buf.String())
	}
}

func TestWarnings(t *testing.T) {
	env := baseEnv()
	env["NEXTJS_WEBHOOK_SECRET"] = testWebhookKey
	env["STRIPE_SECRET_KEY"] = "sk_live_abc"
	env["SHUTDOWN_TIMEOUT"] = "5s"
	c, err := Load(getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"equals STRIPE_WEBHOOK_SECRET", "restricted rk_live_", "shorter than FORWARD_TIMEOUT"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	if c, _ := Load(getenv(baseEnv())); len(c.Warnings()) != 0 {
		t.Errorf("base config warns: %v", c.Warnings())
	}
}
