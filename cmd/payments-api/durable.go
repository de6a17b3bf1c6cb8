package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/postgres"
	"github.com/acme/payments-api/internal/tracing"
)

// Durable mode's start-up timing.
const (
	// firstCheckTimeout bounds the start-up check of the database: past it the
	// service starts without the database rather than hang.
	firstCheckTimeout = 10 * time.Second
	// dbRetryMax is the longest wait between two tries to reach a database
	// that was down at start (doubling from a second).
	dbRetryMax = 30 * time.Second
	// schemaRecheck is how often a schema found behind is checked again, so
	// that running `payments-api migrate` is enough, without a restart.
	schemaRecheck = 30 * time.Second
	// poolHeadroom is the pool's connections beyond the workers: River's
	// listener and maintenance, and the webhook's inserts.
	poolHeadroom = 10
	// maxStopGrace is the most of SHUTDOWN_TIMEOUT kept for recording the
	// outcome of deliveries cut at shutdown (a quarter of it when shorter).
	maxStopGrace = 2 * time.Second
)

// softStopTimeout is how long deliveries in flight at SIGTERM may run: all of
// SHUTDOWN_TIMEOUT but a grace in which River puts those it cut back in the
// queue. Without it they would be cut at the very moment the process gives
// up waiting, left "running", and redone only by another replica's rescue.
func softStopTimeout(shutdown time.Duration) time.Duration {
	return shutdown - min(maxStopGrace, shutdown/4)
}

// errSchemaBehind stops the service at start: the schema must be migrated
// first. Its line has already been logged.
var errSchemaBehind = errors.New("the database schema is behind")

// durable is durable delivery, wired when DATABASE_URL is set: the pool, the
// queue the webhook commits events to, and its workers, which call the
// forwarder for one attempt at a time.
type durable struct {
	pool  *pgxpool.Pool
	queue *delivery.Queue
	log   *slog.Logger
	// retryMax and recheck are dbRetryMax and schemaRecheck; tests shorten them.
	retryMax, recheck time.Duration

	waiting sync.WaitGroup // the background wait for a database down at start
	cancel  context.CancelFunc
	begin   sync.Once
	stopped chan struct{} // closed once the queue has stopped
	stopErr error         // the queue's Stop result, set before stopped closes
}

// newDurable builds durable delivery; nothing connects yet.
// With tracer (tracing on), each event keeps the trace context of the request
// that queued it, and each delivery attempt links back to it.
func newDurable(ctx context.Context, cfg config.Config, fwd delivery.Attempter, tracer *tracing.Tracer, log *slog.Logger, reg prometheus.Registerer) (*durable, error) {
	pool, err := postgres.Open(ctx, cfg.DatabaseURL.Value(), postgres.Options{MaxConns: int32(cfg.DeliveryWorkers + poolHeadroom)})
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	queue, err := delivery.New(pool, delivery.Options{
		Forwarder:       fwd,
		Workers:         cfg.DeliveryWorkers,
		MaxAttempts:     cfg.DeliveryMaxAttempts,
		Retention:       cfg.DeliveryRetention,
		ForwardTimeout:  cfg.ForwardTimeout,
		ShutdownTimeout: softStopTimeout(cfg.ShutdownTimeout),
		Logger:          log,
		Registerer:      reg,
		Tracer:          tracer,
		Traceparent:     traceparentOf(tracer),
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &durable{
		pool: pool, queue: queue, log: log,
		retryMax: dbRetryMax, recheck: schemaRecheck,
		stopped: make(chan struct{}),
	}, nil
}

// traceparentOf is tracing.Traceparent when tracing is on, else nil: the
// queue then stores no trace context at all.
func traceparentOf(tracer *tracing.Tracer) func(context.Context) string {
	if tracer == nil {
		return nil
	}
	return tracing.Traceparent
}

// start applies the start-up rules. A database that answers with its schema
// behind stops the service (errSchemaBehind): running a new version on an old
// schema would fail every webhook. A database that answers with a current
// schema starts the workers. A database that does not answer is not fatal:
// checkout does not need it, and webhooks answer 503 (Stripe redelivers)
// until it answers; a background wait then checks the schema and starts the
// workers, or keeps webhooks at 503 with an error line while it is behind.
// ctx bounds the background wait.
func (d *durable) start(ctx context.Context) error {
	checkCtx, cancel := context.WithTimeout(ctx, firstCheckTimeout)
	err := d.pool.Ping(checkCtx)
	if err == nil {
		err = postgres.CheckSchema(checkCtx, d.pool)
		if errors.Is(err, postgres.ErrSchemaBehind) {
			cancel()
			d.log.Error("the database schema is behind this version: run `payments-api migrate` (in Kubernetes the chart's migration Job does), then start again",
				slog.Any("error", err))
			return errSchemaBehind
		}
	}
	if err == nil {
		err = d.queue.Start(checkCtx)
	}
	cancel()
	if err == nil {
		d.log.Info("durable delivery started")
		return nil
	}
	d.log.Warn("the database does not answer; webhooks answer 503 until it does, checkout is unaffected", slog.Any("error", err))
	waitCtx, stop := context.WithCancel(ctx)
	d.cancel = stop
	d.waiting.Go(func() { d.waitForDatabase(waitCtx) })
	return nil
}

// waitForDatabase tries until the database answers with a current schema and
// the workers start, or ctx ends.
func (d *durable) waitForDatabase(ctx context.Context) {
	wait := time.Second
	var lastBehind time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := d.pool.Ping(ctx)
		if err != nil {
			d.log.Debug("the database still does not answer", slog.Any("error", err))
			wait = min(2*wait, d.retryMax)
			continue
		}
		if err := postgres.CheckSchema(ctx, d.pool); err != nil {
			if errors.Is(err, postgres.ErrSchemaBehind) {
				// Said once a minute at most: it stays true until someone migrates.
				if time.Since(lastBehind) >= time.Minute {
					lastBehind = time.Now()
					d.log.Error("the database answers but its schema is behind: run `payments-api migrate`; webhooks answer 503 meanwhile",
						slog.Any("error", err))
				}
				wait = d.recheck
			} else {
				d.log.Debug("checking the schema failed", slog.Any("error", err))
				wait = min(2*wait, d.retryMax)
			}
			continue
		}
		if err := d.queue.Start(ctx); err != nil {
			d.log.Debug("starting the workers failed", slog.Any("error", err))
			wait = min(2*wait, d.retryMax)
			continue
		}
		d.log.Info("the database answers; durable delivery started")
		return
	}
}

// beginStop starts stopping at once, in the background: no delivery starts
// from now on, those in flight get SHUTDOWN_TIMEOUT (the queue's soft stop),
// and timeout bounds the whole. Webhooks are still committed meanwhile, for
// other replicas to deliver.
func (d *durable) beginStop(timeout time.Duration) {
	d.begin.Do(func() {
		if d.cancel != nil {
			d.cancel()
		}
		go func() {
			d.waiting.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			d.stopErr = d.queue.Stop(ctx)
			close(d.stopped)
		}()
	})
}

// stop waits, until ctx ends, for the stop begun by beginStop (beginning it
// if need be), then closes the pool. It runs once the HTTP servers are shut
// down, so no webhook still needs the pool. Calling it again is harmless.
func (d *durable) stop(ctx context.Context) error {
	d.beginStop(time.Until(deadlineOr(ctx, time.Now().Add(time.Minute))))
	defer d.pool.Close()
	select {
	case <-d.stopped:
		return d.stopErr
	case <-ctx.Done():
		return fmt.Errorf("deliveries still running: %w", ctx.Err())
	}
}

func deadlineOr(ctx context.Context, def time.Time) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return def
}

// adminHandler is River UI behind basic auth, for the admin listener.
func (d *durable) adminHandler(ctx context.Context, cfg config.Config, log *slog.Logger) (http.Handler, error) {
	return d.queue.AdminHandler(ctx, delivery.AdminOptions{
		Username: cfg.AdminUsername,
		Password: cfg.AdminPassword.Value(),
		Logger:   log,
	})
}
