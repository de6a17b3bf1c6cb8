// Command sandbox runs payments-api on this machine with everything it talks
// to stood in locally, so that the whole payment flow works without a Stripe or
// Clerk account:
//
//   - stripe-mock (bin/stripe-mock from `make tools`) plays Stripe, unless
//     STRIPE_API_URL or a test-mode STRIPE_SECRET_KEY is given, behind a
//     stateful stand-in (internal/stripetest) that keeps customers and
//     subscriptions as Stripe does, which stripe-mock's fixtures cannot;
//   - a Clerk stand-in publishes a JWKS and mints session tokens on request;
//   - a Next.js stand-in verifies the events payments-api forwards and prints them,
//     and can be told to refuse them for a while (POST /_sandbox/refuse);
//   - payments-api itself is built from ./cmd/payments-api exactly as shipped and
//     run as a child process, configured through its environment only.
//
// It also sends signed Stripe events to the service on request (POST /trigger on
// the Clerk stand-in's port), like `stripe trigger`. Given a PostgreSQL database
// (-database-url or DATABASE_URL), it migrates it and runs the service in durable
// mode, with River UI on an admin port. It is a development tool and never part
// of the production binary or image.
//
//	go run ./cmd/sandbox [flags]    (or: make sandbox)
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

const (
	// servicePkg is the production main, built as the Dockerfile builds it.
	servicePkg = "github.com/acme/payments-api/cmd/payments-api"
	// webhookPath is where the Next.js stand-in receives forwarded events: the
	// path of the service's default NEXTJS_WEBHOOK_URL, so that a frontend
	// written against the defaults receives them at the same place.
	webhookPath = "/api/payments/webhook"
	// defaultUser is the Clerk user id the printed commands use.
	defaultUser = "user_sandbox"
	// readyTimeout bounds the wait for /readyz once the service started.
	readyTimeout = 60 * time.Second
	// stopTimeout is how long the service gets after SIGTERM before it is
	// killed: its SHUTDOWN_TIMEOUT (20 s by default) and some margin.
	stopTimeout = 30 * time.Second
)

// passThrough lists the service's tuning variables that the sandbox hands on
// from its own environment; everything else it sets itself.
func passThrough() []string {
	return []string{
		"LOG_LEVEL", "LOG_FORMAT", "CHECKOUT_RATE_LIMIT", "WEBHOOK_FORWARD_EVENTS",
		"FORWARD_TIMEOUT", "CLERK_CLOCK_SKEW", "SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT",
		"DELIVERY_WORKERS", "DELIVERY_MAX_ATTEMPTS", "DELIVERY_RETENTION",
		"CHECKOUT_ALLOW_PROMOTION_CODES", "CHECKOUT_TRIAL_DAYS", "CHECKOUT_SINGLE_SUBSCRIPTION",
		"STRIPE_PORTAL_CONFIGURATION",
		// Tracing to a collector of the user's (unless -traces).
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	}
}

// sandboxMaxAttempts is DELIVERY_MAX_ATTEMPTS in the sandbox unless the user
// sets it: with River's backoff (1 s, then 16 s) an event Next.js refuses
// reaches the dead letter in about 20 s, for the tour to replay it.
const sandboxMaxAttempts = "3"

// controlPrefix is where the Next.js stand-in's remote control is mounted.
const controlPrefix = "/_sandbox"

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(1)
	}
}

// settings is what the flags and the environment decide.
type settings struct {
	apiAddr, metricsAddr, clerkAddr, nextAddr, mockAddr string
	prices                                              string

	stripeURL  string // STRIPE_API_URL for the service; empty means Stripe itself
	stripeKey  string
	startMock  bool
	whsec      string // STRIPE_WEBHOOK_SECRET
	nextSecret string // NEXTJS_WEBHOOK_SECRET

	databaseURL string // DATABASE_URL: durable mode when set
	adminAddr   string // ADMIN_ADDR in durable mode, or off
	adminPass   string // ADMIN_PASSWORD, fresh for the run
	maxAttempts string // DELIVERY_MAX_ATTEMPTS in durable mode
	bin         string // the built payments-api, for the printed commands

	traces    bool   // -traces: print the service's traces here
	tracesURL string // the trace view's OTLP endpoint, once it serves
}

// durable reports whether the service runs in durable mode.
func (s settings) durable() bool { return s.databaseURL != "" }

// adminUser is ADMIN_USERNAME in the sandbox.
const adminUser = "sandbox"

// run is the whole program: main passes the process's arguments, environment
// and output streams, tests pass their own.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	out := &console{w: stdout}
	err = sandbox(ctx, s, getenv, out, &console{w: stderr})
	if ctx.Err() != nil {
		// Stopped on purpose, possibly in the middle of start-up: whatever
		// failed then failed because it was being stopped.
		out.printf("sandbox: stopped; everything it started has exited")
		return nil
	}
	return err
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s settings
	fs.StringVar(&s.apiAddr, "api-addr", "127.0.0.1:8001", "payments-api's `address` (LISTEN_ADDR)")
	fs.StringVar(&s.metricsAddr, "metrics-addr", "127.0.0.1:9090", "payments-api's metrics `address` (METRICS_ADDR), or off")
	fs.StringVar(&s.clerkAddr, "clerk-addr", "127.0.0.1:8002", "`address` of the Clerk stand-in (issuer, JWKS, tokens) and of /trigger")
	fs.StringVar(&s.nextAddr, "next-addr", "127.0.0.1:3000", "`address` of the Next.js stand-in; the frontend origin is http://localhost:<its port>")
	fs.StringVar(&s.mockAddr, "stripe-mock-addr", "127.0.0.1:12111", "`address` of stripe-mock's HTTP listener")
	fs.StringVar(&s.prices, "prices", cmp.Or(getenv("STRIPE_PRICE_IDS"), "price_basic,price_pro"), "comma list of the price `IDs` a user may buy (STRIPE_PRICE_IDS)")
	fs.StringVar(&s.databaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL `URL` for durable delivery (DATABASE_URL): migrated, then used; empty: synchronous delivery")
	fs.StringVar(&s.adminAddr, "admin-addr", "127.0.0.1:9091", "River UI's `address` in durable mode (ADMIN_ADDR), or off")
	fs.BoolVar(&s.traces, "traces", false, "print each of the service's traces here as a tree (OpenTelemetry; replaces any OTEL_EXPORTER_OTLP_* endpoint given)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\nRuns payments-api locally with stand-ins for Stripe, Clerk and Next.js.\n"+
			"Environment: STRIPE_API_URL (use it instead of starting stripe-mock), STRIPE_SECRET_KEY (sk_test_…:\n"+
			"real Stripe test mode when STRIPE_API_URL is unset), STRIPE_WEBHOOK_SECRET (e.g. from `stripe listen`),\n"+
			"STRIPE_MOCK_BIN, DATABASE_URL (durable delivery), and the service's %s.\n\n", fs.Name(), strings.Join(passThrough(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return s, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, a := range []struct{ flag, addr string }{
		{"api-addr", s.apiAddr}, {"metrics-addr", s.metricsAddr}, {"clerk-addr", s.clerkAddr},
		{"next-addr", s.nextAddr}, {"stripe-mock-addr", s.mockAddr}, {"admin-addr", s.adminAddr},
	} {
		if (a.flag == "metrics-addr" || a.flag == "admin-addr") && a.addr == "off" {
			continue
		}
		// The Clerk stand-in mints a token for anyone who asks: nothing of the
		// sandbox may be reachable from another machine.
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil || !config.IsLoopback(host) {
			return s, fmt.Errorf("-%s %q: want a loopback host:port such as 127.0.0.1:8001 (the sandbox is for this machine only)", a.flag, a.addr)
		}
	}

	// Who plays Stripe: the URL the user gives, Stripe's test mode with the
	// user's key, or a stripe-mock of our own.
	s.stripeURL, s.stripeKey = getenv("STRIPE_API_URL"), getenv("STRIPE_SECRET_KEY")
	if s.stripeKey != "" && !strings.HasPrefix(s.stripeKey, "sk_test_") && !strings.HasPrefix(s.stripeKey, "rk_test_") {
		return s, errors.New("STRIPE_SECRET_KEY must be a test-mode key (sk_test_… or rk_test_…): the sandbox never touches live mode")
	}
	switch {
	case s.stripeURL != "":
		s.stripeKey = cmp.Or(s.stripeKey, stripemock.Key)
	case s.stripeKey == "":
		s.stripeURL, s.stripeKey, s.startMock = "http://"+s.mockAddr, stripemock.Key, true
	}

	// Fresh secrets for every run, unless the user brings the webhook secret
	// of `stripe listen`.
	s.whsec = cmp.Or(getenv("STRIPE_WEBHOOK_SECRET"), "whsec_"+rand.Text())
	s.nextSecret = rand.Text() + rand.Text()
	s.adminPass = rand.Text()
	s.maxAttempts = cmp.Or(getenv("DELIVERY_MAX_ATTEMPTS"), sandboxMaxAttempts)
	if !s.durable() {
		s.adminAddr = "off"
	}
	return s, nil
}

// sandbox starts everything, waits for ctx to end or a child to fail, and
// stops everything it started, in reverse order, before it returns.
func sandbox(ctx context.Context, s settings, getenv func(string) string, out, errOut *console) error {
	var stops cleanup
	defer stops.run()

	if err := checkPorts(s); err != nil {
		return err
	}
	clerkLn, nextLn, err := claimStandInPorts(s, &stops)
	if err != nil {
		return err
	}
	stand, err := serveStripeStandIn(&s, &stops)
	if err != nil {
		return err
	}
	if err := serveTraceView(&s, out, &stops); err != nil {
		return err
	}
	mockBin, err := findMock(s, getenv)
	if err != nil {
		return err
	}
	bin, err := buildService(ctx, out, errOut, &stops)
	if err != nil {
		return err
	}
	s.bin = bin
	if err := migrate(ctx, s, out, errOut); err != nil {
		return err
	}
	if err := serveStandIns(s, clerkLn, nextLn, stand, out, &stops); err != nil {
		return err
	}
	mockDone, err := startMock(ctx, s, mockBin, out, &stops)
	if err != nil {
		return err
	}
	svc, err := startService(ctx, s, bin, getenv, out, errOut, &stops)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, "http://"+s.apiAddr+"/readyz", svc.done); err != nil {
		return err
	}
	out.printf("%s", banner(s))
	return waitForEnd(ctx, svc, mockDone, out)
}

// cleanup is what to stop or remove, in the order things were started; run
// undoes them in reverse, as defers would.
type cleanup []func()

func (c *cleanup) add(f func()) { *c = append(*c, f) }

// run has a pointer receiver so that `defer stops.run()` sees what is added
// after the defer statement.
func (c *cleanup) run() {
	for _, f := range slices.Backward(*c) {
		f()
	}
}

// checkPorts tries every port the children will listen on before anything is
// built, so that a taken one is reported by the flag that chose it, at once.
func checkPorts(s settings) error {
	for _, a := range []struct{ flag, addr string }{
		{"api-addr", s.apiAddr}, {"metrics-addr", s.metricsAddr}, {"stripe-mock-addr", s.mockAddr}, {"admin-addr", s.adminAddr},
	} {
		if a.addr == "off" || (a.flag == "stripe-mock-addr" && !s.startMock) {
			continue
		}
		ln, err := listen(a.flag, a.addr)
		if err != nil {
			return err
		}
		ln.Close()
	}
	return nil
}

// claimStandInPorts listens on the stand-ins' addresses, which this process
// serves itself.
func claimStandInPorts(s settings, stops *cleanup) (clerk, next net.Listener, err error) {
	clerkLn, err := listen("clerk-addr", s.clerkAddr)
	if err != nil {
		return nil, nil, err
	}
	stops.add(func() { clerkLn.Close() })
	nextLn, err := listen("next-addr", s.nextAddr)
	if err != nil {
		return nil, nil, err
	}
	stops.add(func() { nextLn.Close() })
	return clerkLn, nextLn, nil
}

// serveStripeStandIn serves, when the sandbox plays Stripe, the stateful
// stand-in in front of stripe-mock on a free loopback port, and points
// s.stripeURL (the service's STRIPE_API_URL and the trigger's Stripe) at it.
//
// Why: stripe-mock answers from fixtures, so its Customer Search finds a
// customer for everyone and every customer has an active subscription: the
// first subscription checkout would be refused as a second one
// (CHECKOUT_SINGLE_SUBSCRIPTION). The stand-in keeps customers and
// subscriptions as Stripe does: a user's first checkout creates their
// customer, and only the trigger's life-cycle events give them a
// subscription. Every request still reaches stripe-mock, which validates it.
func serveStripeStandIn(s *settings, stops *cleanup) (*stripetest.Proxy, error) {
	if !s.startMock {
		return nil, nil
	}
	stand, err := stripetest.New(s.stripeURL)
	if err != nil {
		return nil, err
	}
	if s.stripeURL, err = serveLoopback("the Stripe stand-in", stand, stops); err != nil {
		return nil, err
	}
	return stand, nil
}

// serve serves h on ln until the sandbox stops.
func serve(ln net.Listener, h http.Handler, stops *cleanup) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	stops.add(func() { hs.Close() })
}

// serveLoopback serves h on a free loopback port until the sandbox stops and
// returns its base URL; what names the server in the error.
func serveLoopback(what string, h http.Handler, stops *cleanup) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("%s cannot listen: %w", what, err)
	}
	serve(ln, h, stops)
	return "http://" + ln.Addr().String(), nil
}

// findMock locates the stripe-mock binary when the sandbox is to start one.
func findMock(s settings, getenv func(string) string) (string, error) {
	if !s.startMock {
		return "", nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return stripemock.FindBinary(getenv(stripemock.EnvBinary), wd)
}

// buildService builds payments-api into a temporary directory, removed on
// cleanup.
func buildService(ctx context.Context, out, errOut *console, stops *cleanup) (string, error) {
	dir, err := os.MkdirTemp("", "payments-sandbox-")
	if err != nil {
		return "", err
	}
	stops.add(func() { os.RemoveAll(dir) })
	out.printf("sandbox: building %s", servicePkg)
	return build(ctx, dir, errOut)
}

// serveStandIns serves the Clerk stand-in (with /trigger) and the Next.js
// stand-in, in this process. stand is the Stripe stand-in, nil when Stripe
// is the user's.
func serveStandIns(s settings, clerkLn, nextLn net.Listener, stand *stripetest.Proxy, out *console, stops *cleanup) error {
	clerk, err := fakeclerk.New("http://" + s.clerkAddr)
	if err != nil {
		return err
	}
	clerkMux := http.NewServeMux()
	clerkMux.Handle("/", clerk)
	clerkMux.Handle("/trigger", &trigger{
		stripeURL:  cmp.Or(s.stripeURL, "https://api.stripe.com"),
		stripeKey:  s.stripeKey,
		webhookURL: "http://" + s.apiAddr + "/stripe/webhook",
		secret:     s.whsec,
		client:     &http.Client{Timeout: 30 * time.Second},
		out:        out,
		stand:      stand,
		price:      firstPrice(s),
	})
	next := fakenext.New(s.nextSecret, fakenext.WithOutput(out.writer("")))
	nextMux := http.NewServeMux()
	nextMux.Handle(webhookPath, next)
	nextMux.Handle(controlPrefix+"/", http.StripPrefix(controlPrefix, next.ControlHandler()))
	nextMux.HandleFunc("/", frontendPage)
	serve(clerkLn, clerkMux, stops)
	serve(nextLn, nextMux, stops)
	return nil
}

// startMock starts stripe-mock when the sandbox plays Stripe; the channel
// closes if it exits (nil when none was started).
//
// Children go into process groups of their own (childAttr): a Ctrl-C in the
// terminal then reaches only the sandbox, which stops them itself (the service
// with one SIGTERM, so that it shuts down gracefully) and waits for them.
func startMock(ctx context.Context, s settings, bin string, out *console, stops *cleanup) (<-chan struct{}, error) {
	if !s.startMock {
		return nil, nil
	}
	mock, err := stripemock.Launch(ctx, bin, stripemock.Options{
		HTTPAddr:    s.mockAddr,
		SysProcAttr: childAttr(),
		Log: func(line string) {
			// One line per request and answer; not the request data, which
			// holds e.g. customer emails.
			if strings.HasPrefix(line, "Request: ") || strings.HasPrefix(line, "Response: ") {
				out.printf("stripe-mock: %s", line)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	stops.add(func() {
		mock.Stop()
		out.printf("sandbox: stripe-mock (pid %d) stopped", mock.Pid())
	})
	out.printf("sandbox: started stripe-mock (pid %d) on %s", mock.Pid(), mock.URL)
	return mock.Done(), nil
}

// migrate runs `payments-api migrate` on the database in durable mode, so that
// the service finds its schema current.
func migrate(ctx context.Context, s settings, out, errOut *console) error {
	if !s.durable() {
		return nil
	}
	out.printf("sandbox: migrating the database (payments-api migrate)")
	cmd := exec.CommandContext(ctx, s.bin, "migrate")
	cmd.Env = []string{"DATABASE_URL=" + s.databaseURL}
	cmd.Stdout = out.writer("payments-api migrate: ")
	cmd.Stderr = errOut.writer("payments-api migrate: ")
	cmd.SysProcAttr = childAttr()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("payments-api migrate failed (%w); is -database-url right and the database up?", err)
	}
	return nil
}

// child is the running payments-api.
type child struct {
	done chan struct{} // closed when it has exited
	err  error         // how it exited, once done is closed
}

// startService starts payments-api with its own context, cancelled once (by
// a signal or by the cleanup), so that it gets exactly one SIGTERM: a second
// one would make it skip its graceful shutdown.
func startService(ctx context.Context, s settings, bin string, getenv func(string) string, out, errOut *console, stops *cleanup) (*child, error) {
	svcCtx, stopSvc := context.WithCancel(ctx)
	svc := exec.CommandContext(svcCtx, bin)
	svc.Env = serviceEnv(s, getenv)
	svc.Stdout = out.writer("") // JSON log lines, as they are
	svc.Stderr = errOut.writer("payments-api: ")
	svc.SysProcAttr = childAttr()
	svc.Cancel = func() error { return svc.Process.Signal(syscall.SIGTERM) }
	svc.WaitDelay = stopTimeout
	if err := svc.Start(); err != nil {
		stopSvc()
		return nil, fmt.Errorf("starting payments-api: %w", err)
	}
	c := &child{done: make(chan struct{})}
	go func() {
		c.err = svc.Wait()
		close(c.done)
	}()
	stops.add(func() {
		// Cancel sends SIGTERM; after stopTimeout, exec kills the process.
		stopSvc()
		<-c.done
		out.printf("sandbox: payments-api (pid %d) stopped: %v", svc.Process.Pid, svc.ProcessState)
	})
	out.printf("sandbox: started payments-api (pid %d) on http://%s", svc.Process.Pid, s.apiAddr)
	return c, nil
}

// waitForEnd waits for a signal or for a child to exit. A signal stops both
// children at once: their exits are then no surprise.
func waitForEnd(ctx context.Context, svc *child, mockDone <-chan struct{}, out *console) error {
	select {
	case <-ctx.Done():
	case <-svc.done:
	case <-mockDone:
	}
	switch {
	case ctx.Err() != nil:
		out.printf("sandbox: stopping")
		return nil
	case isDone(svc.done):
		return fmt.Errorf("payments-api exited unexpectedly: %v", svc.err)
	default:
		return errors.New("stripe-mock exited unexpectedly")
	}
}

// listen claims addr, or says which flag to change.
func listen(flagName, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-%s %s: cannot listen (%w); is something else using the port? Stop it or choose another with -%s", flagName, addr, err, flagName)
	}
	return ln, nil
}

// build compiles the production main into dir, with the Dockerfile's flags
// that matter for behaviour. The build runs with the process's own environment:
// the Go toolchain needs its GOPATH, GOCACHE and PATH, none of which reach the
// service.
func build(ctx context.Context, dir string, errOut *console) (string, error) {
	bin := filepath.Join(dir, "payments-api")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, servicePkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	w := errOut.writer("go build: ")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building payments-api: %w", err)
	}
	return bin, nil
}

// serviceEnv is the service's whole environment: its real configuration path,
// with nothing inherited but the tuning variables in passThrough.
func serviceEnv(s settings, getenv func(string) string) []string {
	_, nextPort, _ := net.SplitHostPort(s.nextAddr)
	env := []string{
		"LISTEN_ADDR=" + s.apiAddr,
		"METRICS_ADDR=" + s.metricsAddr,
		// localhost, not 127.0.0.1: with the default port this is the
		// service's default FRONTEND_URL and CORS origin, the address a
		// browser on the developer's machine shows for the Next.js app.
		"FRONTEND_URL=http://localhost:" + nextPort,
		"CLERK_ISSUER=http://" + s.clerkAddr,
		"STRIPE_SECRET_KEY=" + s.stripeKey,
		"STRIPE_WEBHOOK_SECRET=" + s.whsec,
		"STRIPE_PRICE_IDS=" + s.prices,
		"NEXTJS_WEBHOOK_URL=http://" + s.nextAddr + webhookPath,
		"NEXTJS_WEBHOOK_SECRET=" + s.nextSecret,
	}
	if s.stripeURL != "" {
		env = append(env, "STRIPE_API_URL="+s.stripeURL)
	}
	if s.durable() {
		env = append(env, "DATABASE_URL="+s.databaseURL, "DELIVERY_MAX_ATTEMPTS="+s.maxAttempts)
		if s.adminAddr != "off" {
			env = append(env, "ADMIN_ADDR="+s.adminAddr, "ADMIN_USERNAME="+adminUser, "ADMIN_PASSWORD="+s.adminPass)
		}
	}
	if s.tracesURL != "" {
		// Exported at once, to the trace view.
		env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+s.tracesURL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_BSP_SCHEDULE_DELAY=200")
	}
	for _, k := range passThrough() {
		if k == "DELIVERY_MAX_ATTEMPTS" && s.durable() {
			continue // set above
		}
		if strings.HasPrefix(k, "OTEL_EXPORTER_OTLP_") && s.tracesURL != "" {
			continue // the trace view's, above
		}
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// waitReady polls url until it answers 200, the service exits, or time runs out.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(readyTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("payments-api exited during start-up; its messages are above")
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("payments-api not ready at %s within %v", url, readyTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// banner tells the user what runs where and what to try.
func banner(s settings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nsandbox: ready.\n")
	metrics := "off"
	if s.metricsAddr != "off" {
		metrics = "http://" + s.metricsAddr + "/metrics"
	}
	fmt.Fprintf(&b, "  payments-api         http://%s (metrics: %s)\n", s.apiAddr, metrics)
	switch {
	case s.startMock:
		fmt.Fprintf(&b, "  Stripe               stripe-mock at http://%s, behind a stand-in at %s that keeps\n", s.mockAddr, s.stripeURL)
		fmt.Fprintf(&b, "                       customers and subscriptions (POST /trigger's life-cycle events change them)\n")
	case s.stripeURL != "":
		fmt.Fprintf(&b, "  Stripe               STRIPE_API_URL %s\n", s.stripeURL)
	default:
		fmt.Fprintf(&b, "  Stripe               Stripe's test mode, with your STRIPE_SECRET_KEY\n")
	}
	fmt.Fprintf(&b, "  Clerk stand-in       http://%s (issuer; GET /token mints; POST /trigger sends webhooks)\n", s.clerkAddr)
	fmt.Fprintf(&b, "  Next.js stand-in     http://%s%s (prints each verified event here; POST %s/refuse makes it refuse)\n", s.nextAddr, webhookPath, controlPrefix)
	if s.durable() {
		fmt.Fprintf(&b, "  Delivery             durable: queued in PostgreSQL (-database-url), %s attempts before the dead letter\n", s.maxAttempts)
		if s.adminAddr != "off" {
			fmt.Fprintf(&b, "  River UI             http://%s (user %s, password %s)\n", s.adminAddr, adminUser, s.adminPass)
		}
	} else {
		fmt.Fprintf(&b, "  Delivery             synchronous (give -database-url for durable delivery)\n")
	}
	if s.traces {
		fmt.Fprintf(&b, "  Traces               printed here as trees (lines starting \"trace:\")\n")
	} else {
		fmt.Fprintf(&b, "  Traces               off (give -traces to see each request's spans here)\n")
	}
	fmt.Fprintf(&b, "  Fresh secrets for this run only:\n")
	fmt.Fprintf(&b, "    STRIPE_WEBHOOK_SECRET=%s\n    NEXTJS_WEBHOOK_SECRET=%s\n", s.whsec, s.nextSecret)
	fmt.Fprintf(&b, "\nTry it from another terminal:\n\n")
	for _, c := range tryCommands(s) {
		fmt.Fprintf(&b, "  # %s\n  %s\n\n", c.what, c.cmd)
	}
	if s.durable() {
		fmt.Fprintf(&b, "Durable delivery: retries, the dead letter and a replay:\n\n")
		for _, c := range durableCommands(s) {
			fmt.Fprintf(&b, "  # %s\n  %s\n\n", c.what, c.cmd)
		}
	}
	fmt.Fprintf(&b, "Other event types: checkout.session.async_payment_succeeded, checkout.session.async_payment_failed,\n")
	fmt.Fprintf(&b, "customer.subscription.{updated,paused,resumed,trial_will_end} (updated takes &status=past_due…),\n")
	fmt.Fprintf(&b, "invoice.{paid,payment_failed,payment_action_required}, and customer.created (acknowledged, not\n")
	fmt.Fprintf(&b, "forwarded). Ctrl-C stops everything.\n")
	return b.String()
}

// command is one copy-paste shell command the banner prints.
type command struct{ what, cmd string }

// tryCommands are the commands of the tour: a token, a checkout session and
// its webhook; then the user subscribes, sees the state, opens the billing
// portal, is refused a second subscription, and cancels. They share the
// shell variables TOKEN and SESSION.
func tryCommands(s settings) []command {
	_, nextPort, _ := net.SplitHostPort(s.nextAddr)
	origin := "http://localhost:" + nextPort
	auth := fmt.Sprintf(`-H "Authorization: Bearer $TOKEN" -H 'Origin: %s'`, origin)
	checkout := fmt.Sprintf(`curl -s http://%s/stripe/checkout %s -H 'Content-Type: application/json' -d '{"price_id":"%s"}'`, s.apiAddr, auth, firstPrice(s))
	trigger := func(query string) string {
		return fmt.Sprintf(`curl -s -X POST "http://%s/trigger?%s&user=%s"`, s.clerkAddr, query, defaultUser)
	}
	return []command{
		{
			"1. a Clerk session token for " + defaultUser + ", valid for an hour",
			fmt.Sprintf(`TOKEN=$(curl -s 'http://%s/token?sub=%s&email=dev@example.com&ttl_seconds=3600' | sed 's/.*"jwt":"\([^"]*\)".*/\1/')`,
				s.clerkAddr, defaultUser),
		},
		{
			"2. a Checkout Session through payments-api (prints its answer, keeps the session id); the first one creates the user's Stripe customer",
			fmt.Sprintf(`SESSION=$(%s | tee /dev/stderr | sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p'); echo`, checkout),
		},
		{
			"3. Stripe's checkout.session.completed for it, signed with STRIPE_WEBHOOK_SECRET",
			trigger("type=checkout.session.completed&session=$SESSION"),
		},
		{
			"4. the subscription it started: customer.subscription.created (the Stripe stand-in now holds it)",
			trigger("type=customer.subscription.created"),
		},
		{
			"5. the user's subscription state, as a page reads it (cached up to 10 s)",
			fmt.Sprintf(`curl -s http://%s/stripe/subscription %s`, s.apiAddr, auth),
		},
		{
			"6. a billing portal session, for the \"Manage billing\" button",
			fmt.Sprintf(`curl -s -X POST http://%s/stripe/portal %s`, s.apiAddr, auth),
		},
		{
			"7. a second subscription checkout: refused (409), the user changes plans in the portal",
			checkout,
		},
		{
			"8. the user cancels: customer.subscription.deleted (step 5 shows it within 10 s)",
			trigger("type=customer.subscription.deleted"),
		},
	}
}

// durableCommands continue the tour in durable mode: Next.js refuses, the
// event is retried then discarded, Next.js is back, the dead letter replayed.
// They are numbered on from the first tour's.
func durableCommands(s settings) []command {
	events := fmt.Sprintf("DATABASE_URL='%s' %s events", s.databaseURL, s.bin)
	cmds := []command{
		{
			"Next.js refuses events (503) until told otherwise",
			fmt.Sprintf("curl -s -X POST http://%s%s/refuse", s.nextAddr, controlPrefix),
		},
		{
			"another event: acknowledged at once ({\"queued\":true}); this terminal shows each refused attempt",
			fmt.Sprintf(`curl -s -X POST "http://%s/trigger?type=checkout.session.async_payment_succeeded&session=$SESSION&user=%s"`, s.clerkAddr, defaultUser),
		},
		{
			"about 20 s later it is in the dead letter",
			events + " list --state discarded",
		},
		{
			"Next.js takes events again",
			fmt.Sprintf("curl -s -X POST http://%s%s/accept", s.nextAddr, controlPrefix),
		},
		{
			"replay the dead letter: delivered now",
			events + " retry --discarded",
		},
	}
	first := len(tryCommands(s)) + 1
	for i := range cmds {
		cmds[i].what = fmt.Sprintf("%d. %s", first+i, cmds[i].what)
	}
	return cmds
}

// firstPrice is the price the tour buys.
func firstPrice(s settings) string {
	price, _, _ := strings.Cut(s.prices, ",")
	return price
}

// frontendPage answers everything on the Next.js stand-in but the webhook
// route, e.g. the success and cancel URLs a real Checkout redirects to.
func frontendPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "payments-api sandbox: Next.js stand-in. You are at %s.\nForwarded events arrive at POST %s and are printed in the sandbox's terminal.\n",
		r.URL.Path, webhookPath)
}

// console writes whole lines to w, so that the output of the sandbox, its
// stand-ins and its children never interleaves mid-line.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}

// writer returns an io.Writer that prints each complete line with prefix.
func (c *console) writer(prefix string) io.Writer { return &lineWriter{c: c, prefix: prefix} }

type lineWriter struct {
	c      *console
	prefix string
	buf    []byte // an incomplete last line, guarded by c.mu
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := fmt.Fprintf(l.c.w, "%s%s\n", l.prefix, l.buf[:i]); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
