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

	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/httpapi"
	"github.com/acme/payments-api/internal/telemetry"
)

// exitError asks main for a specific exit code; its message, if any, has
// already been written.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `usage:
  payments-api                    serve (configuration from the environment)
  payments-api healthcheck [URL]  exit 0 if URL answers 200 (default ` + defaultHealthcheckURL + `)
  payments-api version            print the version
`

// run is the whole program, minus os.Exit: main passes the process's
// arguments, environment and output streams, tests pass their own.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return serve(ctx, getenv, stdout, stderr)
	}
	switch args[1] {
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "healthcheck":
		return healthcheck(ctx, args[2:], stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "payments-api: unknown command %q\n%s", args[1], usage)
		return exitError{code: 2}
	}
}

// Server timeouts. Handlers may take up to the forward budget (webhook) or two
// Stripe calls (checkout on a cold price cache); the write timeout leaves room
// beyond both.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	idleTimeout       = 90 * time.Second // above common load balancer idle timeouts (60 s)
	maxHeaderBytes    = 32 << 10
	stripeTimeout     = 10 * time.Second
)

// serve loads the configuration, builds the service and serves until ctx ends
// or SIGINT/SIGTERM arrives, then shuts down as the contract says: readiness 503
// at once, keep serving for SHUTDOWN_DELAY, then let in-flight requests finish
// within SHUTDOWN_TIMEOUT.
func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, cfgErr := config.Load(getenv)
	tracing, tracingErr := telemetry.ConfigFromEnv(getenv)
	if err := errors.Join(cfgErr, tracingErr); err != nil {
		fmt.Fprintln(stderr, err) // one line per problem
		return exitError{code: 2}
	}

	log := newLogger(cfg, tracing.Enabled(), stdout)
	log.Info("starting", slog.String("version", version), slog.Any("config", cfg), slog.Any("tracing", tracing))
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}

	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	// Background work (JWKS refresh) must outlive the signal: requests that are
	// still being served while draining need their keys. It stops after shutdown.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()

	// Tracing starts first and stops last, so that the spans of the requests
	// drained at shutdown are still exported.
	_, stopTracing, err := telemetry.Setup(ctx, tracing, version, log)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer flushTraces(stopTracing, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	opts, err := buildOptions(bg, cfg, log, reg)
	if err != nil {
		return fmt.Errorf("building the service: %w", err)
	}

	api := &http.Server{
		Handler:           httpapi.NewServer(opts),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      max(cfg.ForwardTimeout, 2*stripeTimeout) + 5*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	apiLn, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listening on LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	servers := []*http.Server{api}
	listeners := []net.Listener{apiLn}
	metricsAddr := "off"
	if cfg.MetricsAddr != "" {
		metricsLn, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			apiLn.Close()
			return fmt.Errorf("listening on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
		}
		metricsAddr = metricsLn.Addr().String()
		servers = append(servers, &http.Server{
			Handler:           metricsHandler(reg),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		})
		listeners = append(listeners, metricsLn)
	}

	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	log.Info("listening", slog.String("addr", apiLn.Addr().String()), slog.String("metrics_addr", metricsAddr))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	// A second signal now kills the process at once: the operator's way out of a
	// shutdown that takes too long.
	stopSignals()

	opts.Readiness.Drain()
	log.Info("draining", slog.Duration("shutdown_delay", cfg.ShutdownDelay), slog.Duration("shutdown_timeout", cfg.ShutdownTimeout))
	select {
	case <-time.After(cfg.ShutdownDelay):
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var shutdownErr error
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			srv.Close()
			shutdownErr = errors.Join(shutdownErr, err)
		}
	}
	if shutdownErr != nil {
		log.Error("shutdown: requests still running at SHUTDOWN_TIMEOUT were cut", slog.Any("error", shutdownErr))
		return exitError{code: 1}
	}
	log.Info("stopped")
	return nil
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
