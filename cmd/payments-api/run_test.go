package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/polltest"
	"github.com/acme/payments-api/internal/problemtest"
	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
	"github.com/acme/payments-api/internal/webhooktest"
)

const (
	testWebhookSecret = "whsec_e2eStripeSecret"
	testNextSecret    = "nextjs-e2e-forward-secret-0123456789"
	testOrigin        = "https://app.example.com"
)

// service is payments-api started through run, as main starts it.
type service struct {
	url, metricsURL string
	stdout          *logtest.Buffer
	stop            context.CancelFunc
	done            chan error
}

// startService runs the service on loopback port 0 and waits until it listens.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{stdout: &logtest.Buffer{}, stop: cancel, done: make(chan error, 1)}
	stderr := &logtest.Buffer{}
	go func() {
		s.done <- run(ctx, []string{"payments-api"}, func(k string) string { return env[k] }, s.stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
	})
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-s.done:
			t.Fatalf("run returned early: %v\nstdout:\n%s\nstderr:\n%s", err, s.stdout, stderr)
		default:
		}
		if line := s.stdout.First(t, "msg", "listening"); line != nil {
			s.url = "http://" + line["addr"].(string)
			s.metricsURL = "http://" + line["metrics_addr"].(string)
			return s
		}
	}
	t.Fatalf("service did not listen:\n%s", s.stdout)
	return nil
}

// stack is the real service wired to stand-ins for Clerk and Next.js and to the
// real stripe-mock, behind the stateful Stripe stand-in (customers and
// subscriptions as Stripe keeps them).
type stack struct {
	clerk  *fakeclerk.Clerk
	next   *fakenext.Receiver
	stripe *stripetest.Proxy
	svc    *service
	env    map[string]string // the service's environment, for a second replica
}

func startStack(t *testing.T, extraEnv map[string]string, nextOpts ...fakenext.Option) *stack {
	t.Helper()
	clerkSrv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(clerkSrv.Close)
	clerk, err := fakeclerk.New(clerkSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	clerkSrv.Config.Handler = clerk
	next := fakenext.New(testNextSecret, nextOpts...)
	nextSrv := httptest.NewServer(next)
	t.Cleanup(nextSrv.Close)
	stripe := stripetest.Start(t, stripemock.Start(t).URL)

	env := map[string]string{
		"LISTEN_ADDR":           "127.0.0.1:0",
		"METRICS_ADDR":          "127.0.0.1:0",
		"FRONTEND_URL":          testOrigin,
		"CLERK_ISSUER":          clerkSrv.URL,
		"STRIPE_SECRET_KEY":     stripemock.Key,
		"STRIPE_WEBHOOK_SECRET": testWebhookSecret,
		"STRIPE_API_URL":        stripe.URL,
		"STRIPE_PRICE_IDS":      "price_1MoBy5LkdIwHu7ixZhnattbh",
		"NEXTJS_WEBHOOK_URL":    nextSrv.URL + "/api/payments/webhook",
		"NEXTJS_WEBHOOK_SECRET": testNextSecret,
		"FORWARD_TIMEOUT":       "5s",
		"SHUTDOWN_TIMEOUT":      "10s",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	return &stack{clerk: clerk, next: next, stripe: stripe, svc: startService(t, env), env: env}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	polltest.Eventually(t, "/readyz to answer 200", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	})
}

func signedEvent(t *testing.T, id, typ string) ([]byte, string) {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2025-09-30.clover","type":%q,"data":{"object":{"id":"cs_test_1","object":"checkout.session","client_reference_id":"user_e2e"}}}`, id, typ))
	return body, webhooktest.Sign(body, testWebhookSecret, time.Now())
}

func postWebhook(ctx context.Context, base string, body []byte, sig string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/stripe/webhook", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	return http.DefaultClient.Do(req)
}

// TestRunEndToEnd runs the service as main does and walks the whole flow:
// health, readiness, a checkout with a Clerk token, a webhook forwarded to
// Next.js, metrics, and logs that name the user and leak no secret.
func TestRunEndToEnd(t *testing.T) {
	st := startStack(t, nil)
	base := st.svc.url

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	waitReady(t, base)

	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_e2e", Email: "e2e@example.com", AuthorizedParty: testOrigin})
	if err != nil {
		t.Fatal(err)
	}
	resp := postCheckout(t, base, token, "application/json", `{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`)
	var session struct {
		SessionID string `json:"session_id"`
		URL       string `json:"url"`
	}
	err = json.NewDecoder(resp.Body).Decode(&session)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || !strings.HasPrefix(session.SessionID, "cs_") || !strings.HasPrefix(session.URL, "https://") {
		t.Fatalf("checkout: status %d, %+v, %v", resp.StatusCode, session, err)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != testOrigin {
		t.Errorf("checkout Access-Control-Allow-Origin = %q", got)
	}
	customers := st.stripe.Customers()
	if len(customers) != 1 || customers[0].Metadata["clerk_user_id"] != "user_e2e" || customers[0].Email != "e2e@example.com" {
		t.Fatalf("Stripe customers after the first checkout: %+v, want one for user_e2e", customers)
	}

	// The billing portal, for the customer the checkout made.
	resp = userRequest(t, http.MethodPost, base+"/stripe/portal", token)
	var portal struct {
		URL string `json:"url"`
	}
	err = json.NewDecoder(resp.Body).Decode(&portal)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || !strings.HasPrefix(portal.URL, "https://billing.stripe.com/") {
		t.Fatalf("portal: status %d, %+v, %v", resp.StatusCode, portal, err)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != testOrigin {
		t.Errorf("portal Access-Control-Allow-Origin = %q", got)
	}

	// The user subscribed (as Stripe would have it after the checkout): the
	// state shows it, and a second subscription checkout is refused.
	sub := st.stripe.AddSubscription(customers[0].ID, stripetest.Subscription{Status: "active", PriceID: "price_1MoBy5LkdIwHu7ixZhnattbh", Quantity: 1})
	resp = userRequest(t, http.MethodGet, base+"/stripe/subscription", token)
	state, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantState := fmt.Sprintf(`{"customer_id":%q,"subscriptions":[{"id":%q,"status":"active","price_id":"price_1MoBy5LkdIwHu7ixZhnattbh","quantity":1,"current_period_end":null,"cancel_at_period_end":false,"trial_end":null}]}`, customers[0].ID, sub)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(state)) != wantState {
		t.Errorf("subscription state: %d %s\nwant %s", resp.StatusCode, state, wantState)
	}
	resp = postCheckout(t, base, token, "application/json", `{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`)
	guard := problemtest.Read(t, resp)
	if p := problemtest.Decode(t, guard); guard.Status != http.StatusConflict || !strings.Contains(p.Detail, "billing portal") {
		t.Errorf("second subscription checkout: %d %q, want 409 pointing to the billing portal", guard.Status, p.Detail)
	}

	body, sig := signedEvent(t, "evt_e2e_1", "checkout.session.completed")
	resp, err = postWebhook(context.Background(), base, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(ack)) != `{"received":true,"forwarded":true}` {
		t.Fatalf("webhook: %d %s", resp.StatusCode, ack)
	}
	got := st.next.Processed()
	if len(got) != 1 || got[0].ID != "evt_e2e_1" || !bytes.Equal(got[0].Body, body) {
		t.Fatalf("Next.js received %+v, want evt_e2e_1 byte for byte", got)
	}

	code, metrics := get(t, st.svc.metricsURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`payments_api_http_requests_total{code="200",method="POST",route="/stripe/checkout"} 1`,
		`payments_api_http_requests_total{code="200",method="POST",route="/stripe/webhook"} 1`,
		`payments_api_http_requests_total{code="200",method="POST",route="/stripe/portal"} 1`,
		`payments_api_http_requests_total{code="200",method="GET",route="/stripe/subscription"} 1`,
		`payments_api_checkout_sessions_total{outcome="already_subscribed"} 1`,
		`payments_api_customers_total{outcome="created"} 1`,
		`payments_api_customers_total{outcome="found"} 1`,
		`payments_api_portal_sessions_total{outcome="created"} 1`,
		"payments_api_http_request_duration_seconds_bucket",
		"payments_api_checkout_sessions_total",
		"payments_api_webhook_events_total",
		"payments_api_webhook_forward_attempts_total",
		"payments_api_auth_failures_total",
		"payments_api_jwks_refreshes_total",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	logs := st.svc.stdout.String()
	for _, secret := range []string{token, stripemock.Key, testWebhookSecret, testNextSecret, "e2e@example.com"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret or email %q", secret)
		}
	}
	if !strings.Contains(logs, `"user_id":"user_e2e"`) {
		t.Errorf("the checkout log line lacks user_id:\n%s", logs)
	}
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("log line is not JSON: %s", l)
		}
	}
}

// TestRunGracefulShutdown sends SIGTERM's equivalent (run's context ends) while
// a webhook forward is in flight: /readyz turns 503 at once while the server
// still serves, the forward completes and is acknowledged, and run returns nil.
func TestRunGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	st := startStack(t, map[string]string{"SHUTDOWN_DELAY": "300ms"},
		fakenext.WithDelay(func(n int) time.Duration { <-release; return 0 }))
	base := st.svc.url
	waitReady(t, base)

	body, sig := signedEvent(t, "evt_inflight", "checkout.session.completed")
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := postWebhook(context.Background(), base, body, sig)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inflight <- result{status: resp.StatusCode, body: string(b)}
	}()
	polltest.Eventually(t, "the webhook to reach Next.js", func() bool { return st.next.Requests() > 0 })

	st.svc.stop() // what SIGTERM does through signal.NotifyContext
	polltest.Eventually(t, "/readyz to answer 503 while draining", func() bool {
		code, body := get(t, base+"/readyz")
		if code != http.StatusServiceUnavailable {
			return false
		}
		if !strings.Contains(body, "draining") {
			t.Errorf("/readyz 503 body %s does not say draining", body)
		}
		return true
	})
	// Wait until Shutdown has closed the listener: from then on only in-flight
	// requests are served.
	polltest.Eventually(t, "Shutdown to close the listener (GET /healthz refused)", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return true
		}
		resp.Body.Close()
		return false
	})
	close(release)

	var r result
	select {
	case r = <-inflight:
	case <-time.After(15 * time.Second):
		t.Fatal("the in-flight webhook got no answer after Next.js was released")
	}
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"forwarded":true`) {
		t.Fatalf("in-flight webhook: %+v, want 200 forwarded", r)
	}
	select {
	case err := <-st.svc.done:
		if err != nil {
			t.Fatalf("run returned %v, want nil", err)
		}
		st.svc.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	if got := st.next.Processed(); len(got) != 1 || got[0].ID != "evt_inflight" {
		t.Errorf("Next.js processed %+v, want evt_inflight", got)
	}
	if st.svc.stdout.First(t, "msg", "stopped") == nil {
		t.Errorf("no 'stopped' log line:\n%s", st.svc.stdout)
	}
}

// TestRunShutdownTimeoutCutsInFlight proves SHUTDOWN_TIMEOUT reaches the
// shutdown: a webhook whose forward hangs is cut once the configured 200ms are
// up (not the 20 s default), run reports it with exit code 1 and says so in the
// log, and the client's request fails rather than being acknowledged.
func TestRunShutdownTimeoutCutsInFlight(t *testing.T) {
	release := make(chan struct{})
	st := startStack(t, map[string]string{"SHUTDOWN_TIMEOUT": "200ms"},
		fakenext.WithDelay(func(n int) time.Duration { <-release; return 0 }))
	// Registered after startStack's cleanups, so it runs before them: the
	// stand-in's server can only close once its handler is released.
	t.Cleanup(func() { close(release) })
	base := st.svc.url
	waitReady(t, base)

	body, sig := signedEvent(t, "evt_cut", "checkout.session.completed")
	inflight := make(chan error, 1)
	go func() {
		resp, err := postWebhook(context.Background(), base, body, sig)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				err = fmt.Errorf("answered %d", resp.StatusCode)
			}
		}
		inflight <- err
	}()
	polltest.Eventually(t, "the webhook to reach Next.js", func() bool { return st.next.Requests() > 0 })

	st.svc.stop() // what SIGTERM does through signal.NotifyContext
	select {
	case err := <-st.svc.done:
		var exit exitError
		if !errors.As(err, &exit) || exit.code != 1 {
			t.Errorf("run = %v, want exit code 1 for requests cut at SHUTDOWN_TIMEOUT", err)
		}
		st.svc.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s although SHUTDOWN_TIMEOUT is 200ms")
	}
	if line := st.svc.stdout.First(t, "msg", "shutdown: requests still running at SHUTDOWN_TIMEOUT were cut"); line == nil || line["level"] != "ERROR" {
		t.Errorf("no ERROR line saying requests were cut at SHUTDOWN_TIMEOUT (got %v):\n%s", line, st.svc.stdout)
	}
	if st.svc.stdout.First(t, "msg", "stopped") != nil {
		t.Errorf("a 'stopped' line after a shutdown that cut requests:\n%s", st.svc.stdout)
	}
	select {
	case err := <-inflight:
		if err == nil || strings.HasPrefix(err.Error(), "answered") {
			t.Errorf("the cut webhook: %v, want the connection closed without an answer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cut webhook's client is still waiting after run returned")
	}
	if got := st.next.Processed(); len(got) != 0 {
		t.Errorf("Next.js processed %+v before it was released", got)
	}
}

// TestRunCheckoutRateLimit proves CHECKOUT_RATE_LIMIT reaches checkout as N
// per user per period: with 2/h a user's third attempt is refused with
// Retry-After of about half an hour (one token every 1h/2), and another user is
// not limited. The limiter runs before the content type is checked, so the
// requests are sent as text/plain and answered 415 without calling Stripe.
func TestRunCheckoutRateLimit(t *testing.T) {
	st := startStack(t, map[string]string{"CHECKOUT_RATE_LIMIT": "2/h"})
	base := st.svc.url
	waitReady(t, base)

	checkout := func(user string) *http.Response {
		t.Helper()
		token, err := st.clerk.Mint(fakeclerk.Token{Subject: user, AuthorizedParty: testOrigin})
		if err != nil {
			t.Fatal(err)
		}
		resp := postCheckout(t, base, token, "text/plain", "price please")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	first := time.Now()
	for i := 1; i <= 2; i++ {
		if resp := checkout("user_limited"); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("attempt %d = %d, want 415 (within the limit, refused for its content type)", i, resp.StatusCode)
		}
	}
	resp := checkout("user_limited")
	elapsed := time.Since(first)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("attempt 3 = %d, want 429 with CHECKOUT_RATE_LIMIT=2/h", resp.StatusCode)
	}
	// The bucket refills one token every 1h/2 from the first attempt on, so the
	// third attempt waits 1h/2 minus the time since the first, rounded up.
	interval := time.Hour / 2
	hi := int(interval.Seconds())
	lo := int((interval - elapsed).Seconds())
	if got, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || got < lo || got > hi {
		t.Errorf("Retry-After = %q, want %d..%d seconds (1h/2 minus the %s since the first attempt)",
			resp.Header.Get("Retry-After"), lo, hi, elapsed.Round(time.Millisecond))
	}

	if resp := checkout("user_other"); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("another user's first attempt = %d, want 415: the limit is per user", resp.StatusCode)
	}
}

// TestRunForwardTimeout proves FORWARD_TIMEOUT reaches the forwarder: with a
// Next.js that always answers 500 and a 300ms budget, the webhook gives up and
// answers 502 long before either the 10 s default or startStack's own 5s budget
// could end. Either of those ends no earlier than its budget minus the 2 s
// maximum backoff (3 s), so the loose 2.5 s bound below tells them apart
// without being a speed target.
func TestRunForwardTimeout(t *testing.T) {
	st := startStack(t, map[string]string{"FORWARD_TIMEOUT": "300ms"},
		fakenext.WithRespond(func(int) int { return http.StatusInternalServerError }))
	base := st.svc.url
	waitReady(t, base)

	body, sig := signedEvent(t, "evt_budget", "checkout.session.completed")
	start := time.Now()
	resp, err := postWebhook(context.Background(), base, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("webhook with Next.js failing = %d, want 502", resp.StatusCode)
	}
	const bound = 2500 * time.Millisecond
	if elapsed >= bound {
		t.Errorf("the failed forward took %s, want under %s: the 300ms FORWARD_TIMEOUT was not the budget", elapsed.Round(time.Millisecond), bound)
	}

	var line map[string]any
	polltest.Eventually(t, "the webhook's access-log line", func() bool {
		line = st.svc.stdout.First(t, "msg", "request", "route", "/stripe/webhook")
		return line != nil
	})
	attempts, _ := line["forward_attempts"].(float64)
	duration, _ := line["duration_ms"].(float64)
	if line["status"] != float64(http.StatusBadGateway) || line["webhook_outcome"] != "forward_failed" || attempts < 1 {
		t.Errorf("webhook log line %v, want status 502, webhook_outcome forward_failed and forward_attempts >= 1", line)
	}
	if duration >= float64(bound.Milliseconds()) {
		t.Errorf("webhook log line duration_ms = %v, want under %d: the 300ms FORWARD_TIMEOUT was not the budget", duration, bound.Milliseconds())
	}
	if got := st.next.Requests(); got < 1 || got > int(attempts) {
		t.Errorf("Next.js got %d requests, want 1..%v (the logged forward_attempts)", got, attempts)
	}
	if got := st.next.Processed(); len(got) != 0 {
		t.Errorf("Next.js processed %+v although it answered 500", got)
	}
}

// TestRunSlowStripeGets504 proves that a Stripe slow on every call, each
// within the per-call timeout, costs a new user's checkout a 504 problem once
// the Stripe budget is spent, while the server still writes it: the checkout's
// five calls at 8 s each would otherwise outlast the server's write timeout,
// and the client would see its connection closed. It takes the 20 s budget.
func TestRunSlowStripeGets504(t *testing.T) {
	st := startStack(t, nil)
	base := st.svc.url
	waitReady(t, base)
	const delay = 8 * time.Second // under the 10 s per call
	st.stripe.Intercept(func(r *http.Request) *stripetest.Answer {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		return nil
	})

	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_slow", AuthorizedParty: testOrigin})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/stripe/checkout", strings.NewReader(`{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", "req-slow-stripe")
	client := &http.Client{Timeout: 2 * time.Minute} // a generous bound on a regression, not a speed target
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("checkout with a slow Stripe: %v (the answer was not written)", err)
	}
	got := problemtest.Read(t, resp)
	p := problemtest.Decode(t, got)
	if got.Status != http.StatusGatewayTimeout || p.RequestID != "req-slow-stripe" || !strings.Contains(p.Detail, "did not answer in time") {
		t.Errorf("checkout with a slow Stripe = %d %+v, want a 504 problem for req-slow-stripe", got.Status, p)
	}
	var line map[string]any
	polltest.Eventually(t, "the checkout's access-log line", func() bool {
		line = st.svc.stdout.First(t, "msg", "request", "route", "/stripe/checkout")
		return line != nil
	})
	if line["status"] != float64(http.StatusGatewayTimeout) {
		t.Errorf("access log status = %v, want 504", line["status"])
	}
	if n := len(st.stripe.CallsTo(http.MethodPost, "/v1/checkout/sessions")); n != 0 {
		t.Errorf("%d sessions reached Stripe after the budget was spent, want 0", n)
	}
}

// minimalEnv is the least configuration the service serves with, on a free
// loopback port, metrics off, its Clerk at clerkURL.
func minimalEnv(clerkURL string) map[string]string {
	return map[string]string{
		"LISTEN_ADDR":           "127.0.0.1:0",
		"METRICS_ADDR":          "off",
		"CLERK_ISSUER":          clerkURL,
		"STRIPE_SECRET_KEY":     "sk_test_abc",
		"STRIPE_WEBHOOK_SECRET": testWebhookSecret,
		"STRIPE_PRICE_IDS":      "price_a",
		"NEXTJS_WEBHOOK_SECRET": testNextSecret,
	}
}

// TestRunOversizedHeadersGetProblem proves that the server leaves oversized
// headers to the frame: a 40 000-byte header gets a 431 problem with the
// request id, not net/http's own text answer.
func TestRunOversizedHeadersGetProblem(t *testing.T) {
	clerkSrv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(clerkSrv.Close)
	svc := startService(t, minimalEnv(clerkSrv.URL))
	req, err := http.NewRequest(http.MethodGet, svc.url+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-ID", "req-big-header")
	req.Header.Set("Cookie", "session="+strings.Repeat("a", 40_000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := problemtest.Read(t, resp)
	if got.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("40 000-byte header = %d %s, want 431", got.Status, got.Body)
	}
	if p := problemtest.Decode(t, got); p.RequestID != "req-big-header" {
		t.Errorf("problem %+v, want request_id req-big-header", p)
	}
}

// TestRunNotReadyUntilClerkAnswers starts the service while Clerk's JWKS is
// down: it serves, /readyz says why it is not ready, and turns ready once the
// JWKS comes back.
func TestRunNotReadyUntilClerkAnswers(t *testing.T) {
	clerkSrv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(clerkSrv.Close)
	clerk, err := fakeclerk.New(clerkSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	clerk.SetDown(true)
	clerkSrv.Config.Handler = clerk
	svc := startService(t, minimalEnv(clerkSrv.URL))
	code, body := get(t, svc.url+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") {
		t.Fatalf("/readyz with Clerk down = %d %s, want 503 with a reason", code, body)
	}
	if code, _ := get(t, svc.url+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with Clerk down = %d, want 200", code)
	}
	clerk.SetDown(false)
	waitReady(t, svc.url)
}

func TestRunConfigErrors(t *testing.T) {
	env := map[string]string{
		"STRIPE_SECRET_KEY":     "pk_live_Sekr1tPublishable",
		"STRIPE_WEBHOOK_SECRET": "Sekr1t",
		"CORS_ALLOWED_ORIGINS":  "*",
		"LISTEN_ADDR":           "127.0.0.1:0",
	}
	named, stderr := runRefused(t, env)
	for _, name := range []string{"CLERK_ISSUER", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_PRICE_IDS", "NEXTJS_WEBHOOK_SECRET", "CORS_ALLOWED_ORIGINS"} {
		if n := linesNaming(named, name); n != 1 {
			t.Errorf("%d lines name %s, want 1:\n%s", n, name, stderr)
		}
	}
}

func TestRunCommands(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	// /readyz redirects to a path that answers 200, on the same server: a
	// 302 is not "ready", wherever it leads.
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Redirect(w, r, "/ok", http.StatusFound)
		}
	}))
	defer redirecting.Close()
	// Nothing listens on port 1: unlike a just-closed ephemeral port, no other
	// test can take it in the meantime.
	const refused = "http://127.0.0.1:1/"

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{"version", []string{"version"}, 0, version + "\n", ""},
		{"help", []string{"--help"}, 0, usage, ""},
		{"unknown", []string{"serve-please"}, 2, "", `unknown command "serve-please"`},
		{"healthcheck 200", []string{"healthcheck", ok.URL}, 0, "", ""},
		{"healthcheck 503", []string{"healthcheck", notReady.URL}, 1, "", "answered 503"},
		{"healthcheck redirect", []string{"healthcheck", redirecting.URL + "/readyz"}, 1, "", "answered 302"},
		{"healthcheck redirect target", []string{"healthcheck", redirecting.URL + "/ok"}, 0, "", ""},
		{"healthcheck refused", []string{"healthcheck", refused}, 1, "", "connection refused"},
		{"healthcheck bad URL", []string{"healthcheck", "::nope"}, 1, "", "invalid URL"},
		{"healthcheck two URLs", []string{"healthcheck", ok.URL, ok.URL}, 2, "", "at most one URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// No environment at all: commands other than serving need no configuration.
			err := run(context.Background(), append([]string{"payments-api"}, tt.args...), func(string) string { return "" }, &stdout, &stderr)
			code := 0
			var exit exitError
			if errors.As(err, &exit) {
				code = exit.code
			} else if err != nil {
				t.Fatalf("run = %v", err)
			}
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.inStderr)
			}
		})
	}
}

// TestHealthcheckGivesUp proves the healthcheck does not hang on a server that
// accepts the connection and never answers.
func TestHealthcheckGivesUp(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"payments-api", "healthcheck", srv.URL}, func(string) string { return "" }, io.Discard, &stderr)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 1 {
		t.Fatalf("run = %v, want exit code 1", err)
	}
	if !strings.Contains(stderr.String(), "deadline exceeded") {
		t.Errorf("stderr = %q, want a timeout", stderr.String())
	}
}

// TestRunTextLogsAndMetricsOff covers two settings the JSON tests do not:
// LOG_FORMAT=text at the default level (a health probe gets its access-log
// line like every request), and METRICS_ADDR=off, which must leave the default
// metrics port unbound.
func TestRunTextLogsAndMetricsOff(t *testing.T) {
	probe, err := net.Listen("tcp", ":9090")
	if err != nil {
		t.Skipf("port 9090 is taken on this machine, so an unbound metrics port cannot be told apart: %v", err)
	}
	probe.Close()

	clerk, err := fakeclerk.New("https://clerk.example.com")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LISTEN_ADDR":           "127.0.0.1:0",
		"METRICS_ADDR":          "off",
		"LOG_FORMAT":            "text",
		"CLERK_ISSUER":          "https://clerk.example.com",
		"CLERK_JWT_KEY":         clerk.PublicKeyPEM(),
		"STRIPE_SECRET_KEY":     "sk_test_abc",
		"STRIPE_WEBHOOK_SECRET": testWebhookSecret,
		"STRIPE_PRICE_IDS":      "price_a",
		"NEXTJS_WEBHOOK_SECRET": testNextSecret,
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"payments-api"}, func(k string) string { return env[k] }, stdout, io.Discard)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return after its context ended")
		}
	}()

	listening := regexp.MustCompile(`level=INFO msg=listening addr=(\S+) metrics_addr=(\S+)`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		m = listening.FindStringSubmatch(stdout.String())
	}
	if m == nil {
		t.Fatalf("no text 'listening' line:\n%s", stdout)
	}
	if m[2] != "off" {
		t.Errorf("metrics_addr = %q, want off", m[2])
	}
	if ln, err := net.Listen("tcp", ":9090"); err != nil {
		t.Errorf("the metrics port is bound although METRICS_ADDR=off: %v", err)
	} else {
		ln.Close()
	}

	if code, _ := get(t, "http://"+m[1]+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	probeLine := regexp.MustCompile(`level=INFO msg=request request_id=\S+ method=GET route=/healthz path=/healthz status=200 duration_ms=`)
	for deadline := time.Now().Add(5 * time.Second); !probeLine.MatchString(stdout.String()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no text access-log line for the probe:\n%s", stdout)
		}
	}
	if strings.Contains(stdout.String(), `{"`) {
		t.Errorf("LOG_FORMAT=text wrote JSON:\n%s", stdout)
	}
}

// TestHealthcheckDefaultURL proves that without an argument the healthcheck asks
// 127.0.0.1:8001/readyz, the address the image's HEALTHCHECK relies on.
func TestHealthcheckDefaultURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:8001")
	if err != nil {
		t.Skipf("127.0.0.1:8001 is taken on this machine: %v", err)
	}
	var paths []string
	var mu sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"payments-api", "healthcheck"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Fatalf("healthcheck = %v (%s)", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/readyz" {
		t.Errorf("requests = %v, want one GET /readyz", paths)
	}
}

// postCheckout sends POST /stripe/checkout as the frontend does, with token as
// the bearer; the caller closes the body.
// userRequest sends method url as the frontend does, with token and no body.
func userRequest(t *testing.T, method, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Origin", testOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func postCheckout(t *testing.T, base, token, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/stripe/checkout", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Origin", testOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
