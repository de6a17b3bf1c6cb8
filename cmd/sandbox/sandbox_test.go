package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/stripemock"
)

// guard bounds every wait of these tests, so that a hang fails instead of
// blocking the suite; the first run includes building payments-api.
const guard = 3 * time.Minute

// ports are the sandbox's addresses, free loopback ports chosen by the test.
type ports struct{ api, metrics, clerk, next, mock, admin string }

// freePorts picks six loopback ports that are free now, from below the
// kernel's ephemeral range when it can. A port bound to :0 and released comes
// from that range, and any outbound connection on the machine (the other test
// packages make many) may take it again before the sandbox binds it, seconds
// later, after building payments-api: CI lost a run to exactly that. Below the
// range, only a listener that asks for the very port can collide. The range
// starts at half the ephemeral range's low end, above the sandbox's defaults.
func freePorts(t *testing.T) ports {
	t.Helper()
	lo, hi := 0, 0 // 0: let the kernel choose
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var ephemeralLow int
		if _, err := fmt.Sscan(string(b), &ephemeralLow); err == nil && ephemeralLow >= 2*16384 {
			lo, hi = ephemeralLow/2, ephemeralLow
		}
	}
	var addrs []string
	for draws := 0; len(addrs) < 6; draws++ {
		port := 0
		if hi > lo && draws < 1000 {
			port = lo + rand.IntN(hi-lo)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			if port != 0 {
				continue // taken: draw again
			}
			t.Fatal(err)
		}
		defer ln.Close() // held until all six are chosen, so they differ
		addrs = append(addrs, ln.Addr().String())
	}
	return ports{api: addrs[0], metrics: addrs[1], clerk: addrs[2], next: addrs[3], mock: addrs[4], admin: addrs[5]}
}

func (p ports) args(extra ...string) []string {
	return append([]string{"sandbox",
		"-api-addr", p.api, "-metrics-addr", p.metrics, "-clerk-addr", p.clerk,
		"-next-addr", p.next, "-stripe-mock-addr", p.mock, "-admin-addr", p.admin}, extra...)
}

// testEnv is the sandbox's environment: nothing but where stripe-mock is, when
// the Makefile says so.
func testEnv(extra map[string]string) func(string) string {
	env := map[string]string{stripemock.EnvBinary: os.Getenv(stripemock.EnvBinary)}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// sandboxRun is a sandbox started through run, as main starts it.
type sandboxRun struct {
	stdout, stderr *logtest.Buffer
	cancel         context.CancelFunc
	done           chan struct{}
	err            error // set before done is closed
}

func startSandbox(t *testing.T, args []string, getenv func(string) string) *sandboxRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sandboxRun{stdout: &logtest.Buffer{}, stderr: &logtest.Buffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = run(ctx, args, getenv, s.stdout, s.stderr)
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(guard):
			t.Errorf("sandbox did not stop within %v", guard)
		}
	})
	return s
}

// waitOutput waits until stdout contains want; it fails the test when the
// sandbox returns first.
func (s *sandboxRun) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(guard)
	for !strings.Contains(s.stdout.String(), want) {
		select {
		case <-s.done:
			t.Fatalf("sandbox returned (%v) before printing %q\nstdout:\n%s\nstderr:\n%s", s.err, want, s.stdout, s.stderr)
		case <-deadline:
			t.Fatalf("no %q within %v\nstdout:\n%s\nstderr:\n%s", want, guard, s.stdout, s.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the sandbox as Ctrl-C does and returns run's result.
func (s *sandboxRun) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(guard):
		t.Fatalf("sandbox did not stop within %v", guard)
		return nil
	}
}

// pids returns the process ids the sandbox printed for its children.
func (s *sandboxRun) pids(t *testing.T) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range regexp.MustCompile(`started (\S+) \(pid (\d+)\)`).FindAllStringSubmatch(s.stdout.String(), -1) {
		pid, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatal(err)
		}
		got[m[1]] = pid
	}
	return got
}

// assertGone fails unless no process with pid exists any more.
func assertGone(t *testing.T, name string, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("%s (pid %d) still exists after the sandbox stopped: kill(0) = %v", name, pid, err)
	}
}

func postJSON(t *testing.T, req *http.Request, wantStatus int, into any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d; body %s", req.Method, req.URL, res.StatusCode, wantStatus, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("%s %s: %v in %s", req.Method, req.URL, err, body)
	}
}

// compact returns raw JSON without insignificant space.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	return b.String()
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestSandboxEndToEnd does what the README tells a newcomer to do: start the
// sandbox, mint a token, create a checkout session, trigger its webhook, see
// the Next.js stand-in verify it, press Ctrl-C, and find nothing left running.
func TestSandboxEndToEnd(t *testing.T) {
	p := freePorts(t)
	sb := startSandbox(t, p.args("-traces"), testEnv(nil))
	sb.waitOutput(t, "sandbox: ready.")
	pids := sb.pids(t)
	if len(pids) != 2 || pids["stripe-mock"] == 0 || pids["payments-api"] == 0 {
		t.Fatalf("started children = %v, want stripe-mock and payments-api", pids)
	}

	// 1. A token from the Clerk stand-in's HTTP endpoint.
	var tok struct{ JWT string }
	postJSON(t, newRequest(t, http.MethodGet, "http://"+p.clerk+"/token?sub=user_e2e&email=e2e@example.com", nil), http.StatusOK, &tok)

	// 2. A checkout session through the real service, as the browser asks.
	req := newRequest(t, http.MethodPost, "http://"+p.api+"/stripe/checkout", strings.NewReader(`{"price_id":"price_pro"}`))
	req.Header.Set("Authorization", "Bearer "+tok.JWT)
	req.Header.Set("Content-Type", "application/json")
	_, nextPort, _ := net.SplitHostPort(p.next)
	origin := "http://localhost:" + nextPort
	req.Header.Set("Origin", origin)
	var session struct {
		SessionID string `json:"session_id"`
		URL       string `json:"url"`
	}
	postJSON(t, req, http.StatusOK, &session)
	if !strings.HasPrefix(session.SessionID, "cs_") {
		t.Fatalf("session_id = %q, want cs_…", session.SessionID)
	}

	// 3. Its webhook through the trigger, forwarded to and verified by Next.js.
	var completed triggerResult
	postJSON(t, newRequest(t, http.MethodPost, "http://"+p.clerk+"/trigger?type=checkout.session.completed&user=user_e2e&session="+session.SessionID, nil),
		http.StatusOK, &completed)
	if got, want := completed.ServiceStatus, http.StatusOK; got != want {
		t.Errorf("service status = %d, want %d (answer %s)", got, want, completed.ServiceAnswer)
	}
	if got, want := compact(t, completed.ServiceAnswer), `{"received":true,"forwarded":true}`; got != want {
		t.Errorf("service answer = %s, want %s", got, want)
	}
	if got, want := completed.ObjectID, session.SessionID; got != want {
		t.Errorf("event object id = %q, want the session %q", got, want)
	}
	if got, want := completed.ObjectSource, "stripe"; got != want {
		t.Errorf("object source = %q, want %q (fetched from stripe-mock)", got, want)
	}
	sb.waitOutput(t, "next.js received "+completed.EventID+" checkout.session.completed -> 200")
	// -traces: both requests printed as trees, the call to Next.js in the webhook's.
	sb.waitOutput(t, "trace: POST /stripe/checkout [server")
	sb.waitOutput(t, "trace:   POST /v1/checkout/sessions [client")
	sb.waitOutput(t, "trace:   POST /api/payments/webhook [client")

	// An event type that is not forwarded is acknowledged and dropped.
	var created triggerResult
	postJSON(t, newRequest(t, http.MethodPost, "http://"+p.clerk+"/trigger?type=customer.created", nil), http.StatusOK, &created)
	if got, want := compact(t, created.ServiceAnswer), `{"received":true,"forwarded":false}`; got != want {
		t.Errorf("customer.created answer = %s, want %s", got, want)
	}
	sb.waitOutput(t, "sandbox: sent "+created.EventID)
	if strings.Contains(sb.stdout.String(), "next.js received "+created.EventID) {
		t.Errorf("customer.created %s reached Next.js", created.EventID)
	}

	// The copy-paste commands of the banner work as printed.
	t.Run("printed commands", func(t *testing.T) {
		for _, tool := range []string{"bash", "curl", "sed", "tee"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed: %v", tool, err)
			}
		}
		// Each command's output ends with a marker line, to be told apart.
		const marker = "\n@@@\n"
		var script []string
		for _, c := range tryCommands(settings{apiAddr: p.api, clerkAddr: p.clerk, nextAddr: p.next, prices: "price_basic,price_pro"}) {
			if !strings.Contains(sb.stdout.String(), c.cmd) {
				t.Fatalf("the banner does not show %q", c.cmd)
			}
			script = append(script, c.cmd, `printf '`+strings.ReplaceAll(marker, "\n", `\n`)+`'`)
		}
		cmd := exec.Command("bash", "-euc", strings.Join(script, "\n"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("commands failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, &stderr)
		}
		steps := strings.Split(strings.TrimSuffix(string(out), marker), marker)
		if len(steps) != 8 {
			t.Fatalf("%d outputs, want one per command:\n%s", len(steps), out)
		}
		decode := func(i int, into any) {
			t.Helper()
			if err := json.Unmarshal([]byte(steps[i]), into); err != nil {
				t.Fatalf("step %d printed %q: %v", i+1, steps[i], err)
			}
		}
		forwarded := func(i int, typ string) triggerResult {
			t.Helper()
			var res triggerResult
			decode(i, &res)
			if got, want := compact(t, res.ServiceAnswer), `{"received":true,"forwarded":true}`; got != want || res.Type != typ {
				t.Errorf("step %d: %s answered %s, want %s forwarded", i+1, res.Type, got, typ)
			}
			sb.waitOutput(t, "next.js received "+res.EventID+" "+typ+" -> 200")
			return res
		}

		// 2-3: a session, and its webhook.
		completed := forwarded(2, "checkout.session.completed")
		if !strings.Contains(stderr.String(), `"session_id":"`+completed.ObjectID+`"`) {
			t.Errorf("step 2 did not show the session %s it triggered: %s", completed.ObjectID, &stderr)
		}
		// 4-5: subscribed, and the state says so.
		created := forwarded(3, "customer.subscription.created")
		var state struct {
			CustomerID    string `json:"customer_id"`
			Subscriptions []struct {
				ID, Status string
			} `json:"subscriptions"`
		}
		decode(4, &state)
		if !strings.HasPrefix(state.CustomerID, "cus_") || len(state.Subscriptions) != 1 ||
			state.Subscriptions[0].ID != created.Subscription || state.Subscriptions[0].Status != "active" {
			t.Errorf("step 5: state %+v, want the customer with %s active", state, created.Subscription)
		}
		// 6: the portal.
		var portal struct{ URL string }
		decode(5, &portal)
		if !strings.HasPrefix(portal.URL, "https://billing.stripe.com/") {
			t.Errorf("step 6: portal %q, want a billing portal URL", portal.URL)
		}
		// 7: no second subscription.
		var refused struct {
			Status int
			Detail string
		}
		decode(6, &refused)
		if refused.Status != http.StatusConflict || !strings.Contains(refused.Detail, "billing portal") {
			t.Errorf("step 7: %+v, want a 409 pointing to the billing portal", refused)
		}
		// 8: canceled.
		if deleted := forwarded(7, "customer.subscription.deleted"); deleted.Subscription != created.Subscription || deleted.SubStatus != "canceled" {
			t.Errorf("step 8: %+v, want %s canceled", deleted, created.Subscription)
		}
	})

	// Ctrl-C: everything stops, the service gracefully.
	if err := sb.stop(t); err != nil {
		t.Fatalf("run after stop = %v, want nil\nstderr:\n%s", err, sb.stderr)
	}
	for _, want := range []string{`"msg":"stopped"`, "sandbox: stopped; everything it started has exited"} {
		if !strings.Contains(sb.stdout.String(), want) {
			t.Errorf("output lacks %q after stop", want)
		}
	}
	for name, pid := range pids {
		assertGone(t, name, pid)
	}
	for _, addr := range []string{p.api, p.metrics, p.clerk, p.next, p.mock} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after stop: %v", addr, err)
			continue
		}
		ln.Close()
	}
	// Secrets printed for the user never reach the service's logs.
	m := regexp.MustCompile(`STRIPE_WEBHOOK_SECRET=(\S+)\s+NEXTJS_WEBHOOK_SECRET=(\S+)`).FindStringSubmatch(sb.stdout.String())
	if m == nil {
		t.Fatal("the banner shows no secrets")
	}
	for _, line := range strings.Split(sb.stdout.String(), "\n") {
		if strings.HasPrefix(line, "{") && (strings.Contains(line, m[1]) || strings.Contains(line, m[2]) || strings.Contains(line, tok.JWT)) {
			t.Errorf("a service log line holds a secret or the token: %s", line)
		}
	}
}

// TestStartupFailureLeavesNothing makes the service refuse its configuration
// after stripe-mock started: the sandbox reports it and stops stripe-mock.
func TestStartupFailureLeavesNothing(t *testing.T) {
	p := freePorts(t)
	sb := startSandbox(t, p.args("-prices="), testEnv(nil))
	select {
	case <-sb.done:
	case <-time.After(guard):
		t.Fatalf("sandbox still running after %v\n%s", guard, sb.stdout)
	}
	if sb.err == nil || !strings.Contains(sb.err.Error(), "exited during start-up") {
		t.Fatalf("run = %v, want the service's start-up failure", sb.err)
	}
	if !strings.Contains(sb.stderr.String(), "payments-api: STRIPE_PRICE_IDS") {
		t.Errorf("stderr does not show the service's complaint about STRIPE_PRICE_IDS:\n%s", sb.stderr)
	}
	pids := sb.pids(t)
	if pids["stripe-mock"] == 0 || pids["payments-api"] == 0 {
		t.Fatalf("started children = %v, want both", pids)
	}
	for name, pid := range pids {
		assertGone(t, name, pid)
	}
}

// TestPortTaken: each flag's port, when taken, is named in the error, before
// anything is built or started.
func TestPortTaken(t *testing.T) {
	for _, flagName := range []string{"api-addr", "metrics-addr", "clerk-addr", "next-addr", "stripe-mock-addr"} {
		t.Run(flagName, func(t *testing.T) {
			p := freePorts(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			taken := ln.Addr().String()
			args := append(p.args(), "-"+flagName, taken) // the last flag wins
			var stdout, stderr logtest.Buffer
			err = run(context.Background(), args, testEnv(nil), &stdout, &stderr)
			if err == nil {
				t.Fatal("run succeeded on a taken port")
			}
			for _, want := range []string{"-" + flagName, taken} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if strings.Contains(stdout.String(), "building") {
				t.Errorf("the sandbox went on building:\n%s", &stdout)
			}
		})
	}
}

// TestRefusedSettings: the sandbox stays on this machine and off live mode,
// and says so without echoing a key.
func TestRefusedSettings(t *testing.T) {
	p := freePorts(t)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		notEcho string
	}{
		{"api on all interfaces", p.args("-api-addr", "0.0.0.0:8001"), nil, "-api-addr", ""},
		{"clerk on another host", p.args("-clerk-addr", "192.0.2.1:8002"), nil, "-clerk-addr", ""},
		{"next without host", p.args("-next-addr", "3000"), nil, "-next-addr", ""},
		{"stripe-mock on a name", p.args("-stripe-mock-addr", "example.com:12111"), nil, "-stripe-mock-addr", ""},
		{"metrics on all interfaces", p.args("-metrics-addr", ":9090"), nil, "-metrics-addr", ""},
		{"live key", p.args(), map[string]string{"STRIPE_SECRET_KEY": "sk_live_abcdef123"}, "test-mode", "sk_live_abcdef123"},
		{"publishable key", p.args(), map[string]string{"STRIPE_SECRET_KEY": "pk_test_abcdef123"}, "test-mode", "pk_test_abcdef123"},
		{"stray argument", p.args("trigger"), nil, "unexpected arguments", ""},
		{"unknown flag", p.args("-nope"), nil, "nope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr logtest.Buffer
			err := run(context.Background(), tt.args, testEnv(tt.env), &stdout, &stderr)
			if err == nil {
				t.Fatal("run accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if tt.notEcho != "" && strings.Contains(err.Error()+stdout.String()+stderr.String(), tt.notEcho) {
				t.Errorf("the key was echoed: %v", err)
			}
			if stdout.String() != "" {
				t.Errorf("stdout = %q, want nothing started", &stdout)
			}
		})
	}
}

func TestServiceEnv(t *testing.T) {
	s := settings{
		apiAddr: "127.0.0.1:8001", metricsAddr: "127.0.0.1:9090", clerkAddr: "127.0.0.1:8002",
		nextAddr: "127.0.0.1:3000", prices: "price_a", stripeKey: "sk_test_x1", whsec: "whsec_w", nextSecret: "n",
	}
	userEnv := map[string]string{"LOG_LEVEL": "debug", "HOME": "/home/dev", "STRIPE_PRICE_IDS": "price_other"}
	got := serviceEnv(s, func(k string) string { return userEnv[k] })
	want := []string{
		"LISTEN_ADDR=127.0.0.1:8001", "METRICS_ADDR=127.0.0.1:9090",
		// The service's defaults, spelled out: the Next.js stand-in is where
		// the service expects Next.js.
		"FRONTEND_URL=http://localhost:3000", "CLERK_ISSUER=http://127.0.0.1:8002",
		"STRIPE_SECRET_KEY=sk_test_x1", "STRIPE_WEBHOOK_SECRET=whsec_w", "STRIPE_PRICE_IDS=price_a",
		"NEXTJS_WEBHOOK_URL=http://127.0.0.1:3000/api/payments/webhook", "NEXTJS_WEBHOOK_SECRET=n",
		"LOG_LEVEL=debug",
	}
	if !slices.Equal(got, want) {
		t.Errorf("serviceEnv =\n%q\nwant\n%q", got, want)
	}
	// Real Stripe: no STRIPE_API_URL at all, so the service uses Stripe's.
	for _, kv := range got {
		if strings.HasPrefix(kv, "STRIPE_API_URL=") {
			t.Errorf("serviceEnv sets %s without a stripeURL", kv)
		}
	}
	s.stripeURL = "http://127.0.0.1:12111"
	if got := serviceEnv(s, func(string) string { return "" }); !strings.Contains(strings.Join(got, " "), "STRIPE_API_URL=http://127.0.0.1:12111") {
		t.Errorf("serviceEnv = %q, want STRIPE_API_URL", got)
	}

	// Tracing: the user's collector, unless -traces (the trace view) replaces
	// the endpoint; the other OTEL_* variables pass either way.
	otelEnv := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": "payments-dev"}
	got = serviceEnv(s, func(k string) string { return otelEnv[k] })
	for _, want := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_SERVICE_NAME=payments-dev"} {
		if !slices.Contains(got, want) {
			t.Errorf("serviceEnv = %q, want %s", got, want)
		}
	}
	s.traces, s.tracesURL = true, "http://127.0.0.1:4999"
	got = serviceEnv(s, func(k string) string { return otelEnv[k] })
	for _, want := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4999", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_SERVICE_NAME=payments-dev"} {
		if !slices.Contains(got, want) {
			t.Errorf("serviceEnv with -traces = %q, want %s", got, want)
		}
	}
	if slices.Contains(got, "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318") || slices.Contains(got, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc") {
		t.Errorf("serviceEnv with -traces = %q, still the user's endpoint", got)
	}
}

// TestStripeChoice: who plays Stripe, and with which key and secret.
func TestStripeChoice(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		wantURL       string
		wantKey       string
		wantMock      bool
		wantWhsec     string // empty: a fresh whsec_
		wantWhsecFrom bool
	}{
		{"nothing given: stripe-mock", nil, "http://127.0.0.1:12111", stripemock.Key, true, "", false},
		{"an API URL: no stripe-mock", map[string]string{"STRIPE_API_URL": "http://127.0.0.1:4000"}, "http://127.0.0.1:4000", stripemock.Key, false, "", false},
		{"a test key: Stripe's test mode", map[string]string{"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_fromlisten"}, "", "sk_test_abc", false, "whsec_fromlisten", true},
		{"restricted test key", map[string]string{"STRIPE_SECRET_KEY": "rk_test_abc"}, "", "rk_test_abc", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parse([]string{"sandbox"}, testEnv(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if s.stripeURL != tt.wantURL || s.stripeKey != tt.wantKey || s.startMock != tt.wantMock {
				t.Errorf("got url %q key %q mock %v, want %q %q %v", s.stripeURL, s.stripeKey, s.startMock, tt.wantURL, tt.wantKey, tt.wantMock)
			}
			if tt.wantWhsecFrom && s.whsec != tt.wantWhsec {
				t.Errorf("whsec = %q, want the given %q", s.whsec, tt.wantWhsec)
			}
			if !tt.wantWhsecFrom && (!strings.HasPrefix(s.whsec, "whsec_") || len(s.whsec) < 30) {
				t.Errorf("whsec = %q, want a fresh whsec_…", s.whsec)
			}
			if len(s.nextSecret) < 32 {
				t.Errorf("Next.js secret %q is short", s.nextSecret)
			}
			again, _ := parse([]string{"sandbox"}, testEnv(tt.env), io.Discard)
			if again.nextSecret == s.nextSecret || (!tt.wantWhsecFrom && again.whsec == s.whsec) {
				t.Error("two runs got the same secrets")
			}
		})
	}
}

// TestProductionBinaryHasNoSandboxCode: the service's binary depends on none
// of the sandbox's packages, and its symbols show none of them; the same check
// on the sandbox's own binary finds them, so the check can fail.
func TestProductionBinaryHasNoSandboxCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	forbidden := []string{
		"github.com/acme/payments-api/cmd/sandbox",
		"github.com/acme/payments-api/internal/fakeclerk",
		"github.com/acme/payments-api/internal/fakenext",
		"github.com/acme/payments-api/internal/stripemock",
		"github.com/acme/payments-api/internal/oteltest",
	}
	out, err := exec.Command("go", "list", "-deps", servicePkg).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/acme/payments-api/internal/httpapi") {
		t.Fatalf("go list -deps gave an implausible list: %q", deps)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f {
				t.Errorf("payments-api depends on %s", d)
			}
		}
	}

	dir := t.TempDir()
	symbols := func(pkg string) string {
		t.Helper()
		bin := filepath.Join(dir, filepath.Base(pkg))
		build := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm: %v", err)
		}
		return string(out)
	}
	marks := []string{"fakeclerk", "fakenext", "stripemock", "main.(*trigger)", "main.tryCommands", "cmd/sandbox"}
	service := symbols(servicePkg)
	for _, m := range marks {
		if strings.Contains(service, m) {
			t.Errorf("payments-api's symbols contain %q", m)
		}
	}
	sandbox := symbols("github.com/acme/payments-api/cmd/sandbox")
	for _, m := range marks[:5] {
		if !strings.Contains(sandbox, m) {
			t.Errorf("the sandbox's own symbols lack %q: the check proves nothing", m)
		}
	}
}

// TestStopDuringStartup: Ctrl-C while the sandbox is still starting stops
// what already runs, and is no error.
func TestStopDuringStartup(t *testing.T) {
	p := freePorts(t)
	sb := startSandbox(t, p.args(), testEnv(nil))
	sb.waitOutput(t, "sandbox: started stripe-mock")
	if err := sb.stop(t); err != nil {
		t.Fatalf("run = %v, want nil after a stop during start-up", err)
	}
	pids := sb.pids(t)
	if pids["stripe-mock"] == 0 {
		t.Fatalf("no stripe-mock pid in:\n%s", sb.stdout)
	}
	for name, pid := range pids {
		assertGone(t, name, pid)
	}
}

// builtSandbox is the sandbox binary running as a terminal runs it, in a
// process group of its own.
type builtSandbox struct {
	*sandboxRun
	cmd     *exec.Cmd
	waitErr error // set before done is closed
}

// startBuiltSandbox builds the sandbox, starts it and waits until it is ready.
func startBuiltSandbox(t *testing.T) *builtSandbox {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sandbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := freePorts(t)
	cmd := exec.Command(bin, p.args()[1:]...)
	stdout := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // should a child keep the output pipe open
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &builtSandbox{sandboxRun: &sandboxRun{stdout: stdout, stderr: &logtest.Buffer{}, done: make(chan struct{})}, cmd: cmd}
	go func() {
		b.waitErr = cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-b.done
	})
	b.waitOutput(t, "sandbox: ready.")
	return b
}

// TestSignalStopsEverything sends the sandbox's process group SIGINT as Ctrl-C
// does.
func TestSignalStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sandbox")
	}
	sb := startBuiltSandbox(t)
	cmd, done, stdout := sb.cmd, sb.done, sb.stdout

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("the sandbox did not exit on SIGINT within %v", guard)
	}
	if sb.waitErr != nil {
		t.Errorf("exit: %v, want status 0\n%s", sb.waitErr, stdout)
	}
	for _, want := range []string{`"msg":"draining"`, "payments-api (pid", "stopped: exit status 0", "sandbox: stopped; everything it started has exited"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	pids := sb.pids(t)
	if len(pids) != 2 {
		t.Fatalf("children = %v, want two", pids)
	}
	for name, pid := range pids {
		assertGone(t, name, pid)
	}
}
