package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/httpapi"
	"github.com/acme/payments-api/internal/telemetry"
)

// Server timeouts. The public API's write timeout is derived from the
// handlers' own budgets (see build).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	idleTimeout       = 90 * time.Second // above common load balancer idle timeouts (60 s)
	maxHeaderBytes    = 8 * httpapi.MaxHeaderBytes
	stripeTimeout     = 10 * time.Second
	// stripeBudget bounds all of one request's Stripe calls together: a
	// checkout makes up to five in a row, each allowed stripeTimeout.
	stripeBudget = 2 * stripeTimeout
)

// serve loads the configuration, builds the service, and serves until ctx
// ends or SIGINT/SIGTERM arrives; then it drains and shuts down.
func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, cfgErr := config.Load(getenv)
	tracing, tracingErr := telemetry.ConfigFromEnv(getenv)
	if err := errors.Join(cfgErr, tracingErr); err != nil {
		fmt.Fprintln(stderr, err) // one line per problem
		return exitError{code: 2}
	}
	log := newLogger(cfg, tracing.Enabled(), stdout)
	logStart(log, cfg, tracing)

	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	// Background work (JWKS refresh) must outlive the signal: requests that are
	// still being served while draining need their keys. It stops after shutdown.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()

	// Tracing starts before the service and stops after it, so that the spans
	// of the requests and deliveries drained at shutdown are still exported.
	tp, stopTracing, err := telemetry.Setup(ctx, tracing, version, log)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer flushTraces(stopTracing, log)

	svc, err := build(bg, cfg, tp, log)
	if err != nil {
		return fmt.Errorf("building the service: %w", err)
	}
	if err := svc.startBackground(bg); err != nil {
		return err
	}
	if err := svc.listen(); err != nil {
		return err
	}
	defer svc.close()
	failed := svc.start(log)

	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	// A second signal now kills the process at once: the operator's way out of a
	// shutdown that takes too long.
	stopSignals()
	return svc.drain(ctx, cfg, log, failed)
}

// logStart writes the start-up lines: the version, the effective
// configuration (secrets redacted), where spans go, and any advice about it.
func logStart(log *slog.Logger, cfg config.Config, tracing telemetry.Config) {
	log.Info("starting", slog.String("version", version), slog.Any("config", cfg), slog.Any("tracing", tracing))
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
}

// app is the built service: its HTTP listeners, the readiness they report,
// and the background work to stop once they are shut down.
type app struct {
	readiness *httpapi.Readiness
	servers   []*server
	// durable is durable delivery, nil in synchronous mode.
	durable *durable
	// draining are told at once when draining begins (the queue's workers
	// stop taking deliveries then, not after SHUTDOWN_DELAY).
	draining []func()
	// stoppers end background work (a queue's workers, say) after the
	// servers have shut down, within what is left of SHUTDOWN_TIMEOUT.
	stoppers []func(context.Context) error
}

// server is one HTTP listener of the service.
type server struct {
	variable string // the variable that places it, for messages: LISTEN_ADDR…
	logKey   string // its key in the "listening" log line: addr, metrics_addr…
	addr     string // empty when switched off
	http     *http.Server
	ln       net.Listener // set by listen
}

// build turns the configuration into the service: the public API, metrics,
// and whatever else wire.go picks. ctx bounds background work, not requests;
// tp is the tracer provider, nil when tracing is off.
func build(ctx context.Context, cfg config.Config, tp trace.TracerProvider, log *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	w, err := buildOptions(ctx, cfg, tp, log, reg)
	if err != nil {
		return nil, err
	}
	opts, dur := w.api, w.durable
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	a := &app{
		readiness: opts.Readiness,
		durable:   dur,
		servers: []*server{
			{variable: "LISTEN_ADDR", logKey: "addr", addr: cfg.ListenAddr, http: &http.Server{
				Handler:           httpapi.NewServer(opts),
				ReadHeaderTimeout: readHeaderTimeout,
				ReadTimeout:       readTimeout,
				WriteTimeout:      apiWriteTimeout(cfg.ForwardTimeout), // past every handler's budget
				IdleTimeout:       idleTimeout,
				MaxHeaderBytes:    maxHeaderBytes,
				ErrorLog:          errorLog,
			}},
			{variable: "METRICS_ADDR", logKey: "metrics_addr", addr: cfg.MetricsAddr, http: &http.Server{
				Handler:           metricsHandler(reg),
				ReadHeaderTimeout: readHeaderTimeout,
				ReadTimeout:       readTimeout,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       idleTimeout,
				ErrorLog:          errorLog,
			}},
		},
	}
	a.stoppers = append(a.stoppers, w.stoppers...)
	if dur == nil {
		return a, nil
	}
	// In-flight deliveries get SHUTDOWN_TIMEOUT from the signal; the bound
	// covers the delay before it too.
	a.draining = append(a.draining, func() { dur.beginStop(cfg.ShutdownDelay + cfg.ShutdownTimeout) })
	a.stoppers = append(a.stoppers, dur.stop)
	if cfg.AdminAddr != "" {
		admin, err := dur.adminHandler(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		a.servers = append(a.servers, &server{variable: "ADMIN_ADDR", logKey: "admin_addr", addr: cfg.AdminAddr, http: &http.Server{
			Handler:           admin,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          errorLog,
		}})
	}
	return a, nil
}

// startBackground starts what runs beside the servers: durable delivery, whose
// database a schema behind this version makes the start fail (exit 1).
func (s *app) startBackground(ctx context.Context) error {
	if s.durable == nil {
		return nil
	}
	if err := s.durable.start(ctx); err != nil {
		s.durable.pool.Close()
		if errors.Is(err, errSchemaBehind) {
			return exitError{code: 1}
		}
		return err
	}
	return nil
}

// listen claims the address of every server that is switched on, or none:
// when one is taken, those already claimed are released.
func (s *app) listen() error {
	for _, srv := range s.servers {
		if srv.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", srv.addr)
		if err != nil {
			s.close()
			return fmt.Errorf("listening on %s %s: %w", srv.variable, srv.addr, err)
		}
		srv.ln = ln
	}
	return nil
}

// start serves every claimed listener in the background and logs where (or
// "off"). A server that fails sends its error on the returned channel.
func (s *app) start(log *slog.Logger) <-chan error {
	failed := make(chan error, len(s.servers))
	var where []any
	for _, srv := range s.servers {
		if srv.ln == nil {
			where = append(where, slog.String(srv.logKey, "off"))
			continue
		}
		where = append(where, slog.String(srv.logKey, srv.ln.Addr().String()))
		go func() {
			if err := srv.http.Serve(srv.ln); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("serving %s: %w", srv.variable, err)
			}
		}()
	}
	log.Info("listening", where...)
	return failed
}

// drain shuts the service down as load balancers expect: readiness 503 at
// once, keep serving for SHUTDOWN_DELAY while they take the replica out, then
// let in-flight requests and background work finish within SHUTDOWN_TIMEOUT.
// Anything cut at the timeout makes the exit code 1.
func (s *app) drain(ctx context.Context, cfg config.Config, log *slog.Logger, failed <-chan error) error {
	s.readiness.Drain()
	for _, f := range s.draining {
		f()
	}
	log.Info("draining", slog.Duration("shutdown_delay", cfg.ShutdownDelay), slog.Duration("shutdown_timeout", cfg.ShutdownTimeout))
	select {
	case <-time.After(cfg.ShutdownDelay):
	case err := <-failed:
		return err
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	cut := false
	if err := s.shutdownServers(ctx); err != nil {
		log.Error("shutdown: requests still running at SHUTDOWN_TIMEOUT were cut", slog.Any("error", err))
		cut = true
	}
	if err := s.stopBackground(ctx); err != nil {
		log.Error("shutdown: background work still running at SHUTDOWN_TIMEOUT was cut", slog.Any("error", err))
		cut = true
	}
	if cut {
		return exitError{code: 1}
	}
	log.Info("stopped")
	return nil
}

// shutdownServers stops accepting and waits for in-flight requests until ctx
// ends; then it closes what is left.
func (s *app) shutdownServers(ctx context.Context) error {
	var errs error
	for _, srv := range s.servers {
		if srv.ln == nil {
			continue
		}
		if err := srv.http.Shutdown(ctx); err != nil {
			srv.http.Close()
			errs = errors.Join(errs, fmt.Errorf("%s: %w", srv.variable, err))
		}
	}
	return errs
}

// stopBackground runs the stoppers in order until ctx ends.
func (s *app) stopBackground(ctx context.Context) error {
	var errs error
	for _, stop := range s.stoppers {
		errs = errors.Join(errs, stop(ctx))
	}
	return errs
}

// close closes every claimed listener and its server at once, for the ways
// out that skip draining (a listener taken, a server failed).
func (s *app) close() {
	for _, srv := range s.servers {
		if srv.ln != nil {
			srv.http.Close()
			srv.ln.Close()
		}
	}
}

// metricsHandler serves Prometheus metrics from reg only: no default registry.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// newLogger returns the service's logger. With tracing on, the log lines of a
// traced request carry its trace_id and span_id; with it off, the handler is
// not wrapped at all.
func newLogger(cfg config.Config, traced bool, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	if traced {
		h = telemetry.LogHandler(h)
	}
	return slog.New(h)
}

// traceFlushTimeout bounds the export of the last spans at exit: a collector
// that does not answer must not hold the process after its servers stopped.
const traceFlushTimeout = 5 * time.Second

// flushTraces exports the spans still queued and stops the exporter.
func flushTraces(stop func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("the last spans could not be exported", slog.String("error", err.Error()))
	}
}

// apiWriteTimeout is the public API's write timeout: past the longest a
// handler works, so that its answer, a 504 at worst, is always written rather
// than the connection closed under it. The longest is the webhook's forward
// budget, or a billing route's Stripe budget after the one JWKS refresh that a
// token signed with a new key waits for; 5 s more cover stripe-go's pause
// before a retry, which does not watch the deadline, and the writing.
func apiWriteTimeout(forwardTimeout time.Duration) time.Duration {
	return max(forwardTimeout, auth.DefaultFetchTimeout+stripeBudget) + 5*time.Second
}
