package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/fakeclerk"
)

// TestRunRefusesConfigurationBeforeListening runs the server with a valid
// configuration spoiled one way at a time, the rules of the second round and
// the hardening among them. Each is exit 2 with one line per problem naming
// the variables listed, nothing on stdout and no secret anywhere. LISTEN_ADDR's
// port is held by the test: a run that listened before checking the
// configuration would fail there instead, with exit 1.
func TestRunRefusesConfigurationBeforeListening(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, port, _ := net.SplitHostPort(held.Addr().String())
	clerk, err := fakeclerk.New("https://clerk.example.com")
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{
		"LISTEN_ADDR":           held.Addr().String(),
		"METRICS_ADDR":          "off",
		"CLERK_ISSUER":          "https://clerk.example.com",
		"CLERK_JWT_KEY":         clerk.PublicKeyPEM(),
		"STRIPE_SECRET_KEY":     "sk_test_Sekr1tKey",
		"STRIPE_WEBHOOK_SECRET": "whsec_Sekr1tWebhook",
		"STRIPE_PRICE_IDS":      "price_a",
		"NEXTJS_WEBHOOK_SECRET": testNextSecret,
	}

	tests := []struct {
		name string
		env  map[string]string
		want []string // the variables named, one line each
	}{
		{"database URL with a password", map[string]string{"DATABASE_URL": "mysql://payments:Pg-Sekr1t@db/payments"}, []string{"DATABASE_URL"}},
		{"redis URL with a password", map[string]string{"REDIS_URL": "redis://:Rd-Sekr1t@/0"}, []string{"REDIS_URL"}},
		{"admin listener alone", map[string]string{"ADMIN_ADDR": "127.0.0.1:0"}, []string{"ADMIN_ADDR", "ADMIN_USERNAME", "ADMIN_PASSWORD"}},
		{"short admin password", map[string]string{
			"DATABASE_URL": "postgres://payments:Pg-Sekr1t@db/payments", "ADMIN_ADDR": "127.0.0.1:0",
			"ADMIN_USERNAME": "ops", "ADMIN_PASSWORD": "Adm-Sekr1t",
		}, []string{"ADMIN_PASSWORD"}},
		{"metrics on the public port", map[string]string{"METRICS_ADDR": "[::]:" + port}, []string{"METRICS_ADDR"}},
		{"short Next.js secret", map[string]string{"NEXTJS_WEBHOOK_SECRET": "nextjs-Sekr1t"}, []string{"NEXTJS_WEBHOOK_SECRET"}},
		{"Next.js secret is Stripe's", map[string]string{
			"STRIPE_WEBHOOK_SECRET": "whsec_Sekr1t-0123456789-0123456789", "NEXTJS_WEBHOOK_SECRET": "whsec_Sekr1t-0123456789-0123456789",
		}, []string{"NEXTJS_WEBHOOK_SECRET"}},
		{"authorized party with a path", map[string]string{"CLERK_AUTHORIZED_PARTIES": "https://app.example.com/sign-in"}, []string{"CLERK_AUTHORIZED_PARTIES"}},
		{"Stripe over plain http", map[string]string{"STRIPE_API_URL": "http://stripe-mock:12111"}, []string{"STRIPE_API_URL"}},
		{"subscription settings", map[string]string{
			"CHECKOUT_TRIAL_DAYS": "731", "STRIPE_PORTAL_CONFIGURATION": "conf_1", "PORTAL_RETURN_URL": "https://evil.example.com/",
			"CHECKOUT_SINGLE_SUBSCRIPTION": "sure", "CHECKOUT_ALLOW_PROMOTION_CODES": "yes",
		}, []string{"STRIPE_PORTAL_CONFIGURATION", "PORTAL_RETURN_URL", "CHECKOUT_ALLOW_PROMOTION_CODES", "CHECKOUT_TRIAL_DAYS", "CHECKOUT_SINGLE_SUBSCRIPTION"}},
		{"delivery ranges", map[string]string{"DELIVERY_WORKERS": "0", "DELIVERY_MAX_ATTEMPTS": "101", "DELIVERY_RETENTION": "0s"}, []string{"DELIVERY_WORKERS", "DELIVERY_MAX_ATTEMPTS", "DELIVERY_RETENTION"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(valid)
			maps.Copy(env, tt.env)
			named, stderr := runRefused(t, env)
			if !slices.Equal(named, tt.want) {
				t.Errorf("problem lines name %v, want %v:\n%s", named, tt.want, stderr)
			}
		})
	}
}

// runRefused runs the service with env, which it must refuse as an operator
// needs it to: exit code 2 before logging anything, and no secret echoed (every
// secret these tests set holds "Sekr1t"). It returns the variable each problem
// line names, in order, and the whole of stderr for failure messages.
func runRefused(t *testing.T, env map[string]string) (named []string, stderr string) {
	t.Helper()
	var stdout, errOut bytes.Buffer
	err := run(context.Background(), []string{"payments-api"}, func(k string) string { return env[k] }, &stdout, &errOut)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 2 {
		t.Fatalf("run = %v, want exit code 2\nstderr:\n%s", err, errOut.String())
	}
	stderr = errOut.String()
	if strings.Contains(stderr, "Sekr1t") {
		t.Errorf("stderr echoes a secret:\n%s", stderr)
	}
	if stdout.Len() != 0 {
		t.Errorf("nothing may be logged before the configuration is valid, got:\n%s", stdout.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		name, _, _ := strings.Cut(line, ": ")
		named = append(named, name)
	}
	return named, stderr
}

// linesNaming counts the problem lines that name the variable name.
func linesNaming(named []string, name string) int {
	n := 0
	for _, v := range named {
		if v == name {
			n++
		}
	}
	return n
}

// TestRunStartupLogHidesSecrets starts the server with every secret variable
// set, the connection URLs among them, and reads its start-up line: where the
// database and Redis are, but no password.
func TestRunStartupLogHidesSecrets(t *testing.T) {
	clerk, err := fakeclerk.New("https://clerk.example.com")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LISTEN_ADDR":           "127.0.0.1:0",
		"METRICS_ADDR":          "127.0.0.1:0",
		"CLERK_ISSUER":          "https://clerk.example.com",
		"CLERK_JWT_KEY":         clerk.PublicKeyPEM(),
		"STRIPE_SECRET_KEY":     "sk_test_Sekr1tKey",
		"STRIPE_WEBHOOK_SECRET": "whsec_Sekr1tWebhook",
		"STRIPE_PRICE_IDS":      "price_a",
		"NEXTJS_WEBHOOK_SECRET": "nextjs-Sekr1t-0123456789-0123456789",
		"DATABASE_URL":          "postgres://payments:Pg-Sekr1t@db.example.com:5432/payments?password=Pq-Sekr1t",
		"REDIS_URL":             "rediss://default:Rd-Sekr1t@cache.example.com:6380/0",
		"ADMIN_ADDR":            "127.0.0.1:0",
		"ADMIN_USERNAME":        "ops",
		"ADMIN_PASSWORD":        "Adm-Sekr1t-0123456789",
	}
	svc := startService(t, env)
	line := svc.stdout.First(t, "msg", "starting")
	if line == nil {
		t.Fatalf("no starting line:\n%s", svc.stdout)
	}
	cfg, _ := line["config"].(map[string]any)
	for key, want := range map[string]string{
		"database_url":   "postgres://db.example.com:5432/payments",
		"redis_url":      "rediss://cache.example.com:6380/0",
		"admin_password": "[redacted]",
	} {
		if cfg[key] != want {
			t.Errorf("config.%s = %v, want %q", key, cfg[key], want)
		}
	}
	if strings.Contains(svc.stdout.String(), "Sekr1t") {
		t.Errorf("the log holds a secret:\n%s", svc.stdout)
	}
}
