// Package delivery is durable webhook delivery: Stripe events are committed to
// a queue in PostgreSQL (River) before Stripe is answered, and workers deliver
// them to Next.js, one attempt at a time, retrying with backoff for weeks before
// an event is discarded to the dead letter, from which an operator replays it.
//
// Queue is the whole of it: Enqueue for the webhook, the workers, the queue's
// metrics, and the operations behind `payments-api events list` and `events
// retry`.
package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/acme/payments-api/internal/tracing"
)

// Defaults for the zero values of Options.
const (
	DefaultWorkers         = 10
	DefaultMaxAttempts     = 25 // with River's backoff, about three weeks
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultForwardTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
	DefaultMetricsInterval = 10 * time.Second
)

// DiscardedRetention is how long discarded (and cancelled) events are kept:
// long enough to notice the dead letter, fix Next.js and replay it, even over
// holidays.
const DiscardedRetention = 30 * 24 * time.Hour

// QueueName is the River queue of our deliveries. A name of our own keeps our
// workers off the jobs of another River application sharing the database.
const QueueName = "payments_api_events"

// River tuning, derived from the options. See riverConfig for why.
const (
	// jobTimeoutMargin lets the forwarder's own timeout end an attempt first,
	// with its precise error; River's job timeout is the backstop.
	jobTimeoutMargin = 5 * time.Second
	// rescueMargin is how long past the job timeout a job still "running" is
	// taken for one whose replica died.
	rescueMargin = 30 * time.Second
	// fetchCooldown is the shortest time between two fetches of jobs.
	fetchCooldown = 2 * time.Millisecond
)

// Attempter makes one delivery attempt; *forward.Forwarder is one. It returns
// nil once Next.js took the event.
type Attempter interface {
	Attempt(ctx context.Context, eventID, requestID string, body []byte) error
}

// Options configures a Queue.
type Options struct {
	// Forwarder delivers events. Nil makes a queue that only inserts, lists and
	// retries (the events subcommands): it has no workers.
	Forwarder Attempter
	// Workers is the number of concurrent deliveries (DefaultWorkers when zero).
	Workers int
	// MaxAttempts is the number of attempts before an event is discarded
	// (DefaultMaxAttempts when zero).
	MaxAttempts int
	// Retention is how long delivered events are kept, for audit and to
	// recognise Stripe's redeliveries as duplicates (DefaultRetention when zero).
	Retention time.Duration
	// ForwardTimeout bounds one attempt; River's job timeout and stuck-job
	// rescue derive from it (DefaultForwardTimeout when zero).
	ForwardTimeout time.Duration
	// ShutdownTimeout is how long deliveries in flight may finish once Stop is
	// called (DefaultShutdownTimeout when zero); those cut are retried.
	ShutdownTimeout time.Duration
	// Logger receives the queue's log lines (discarded when nil). River's own
	// lines come through it at warn and above.
	Logger *slog.Logger
	// Registerer receives the queue's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Traceparent, when set, returns the W3C traceparent of the request that
	// queues an event, stored with it so that each delivery attempt can link to
	// that request's trace.
	Traceparent func(context.Context) string
	// Tracer traces each delivery attempt, linked to the request that queued
	// the event (see Traceparent); nil (tracing off) traces nothing.
	Tracer *tracing.Tracer

	// RetryDelay, when set, replaces River's backoff (n⁴ seconds ±10 %): the
	// wait after the n-th failed attempt. For tests and the sandbox.
	RetryDelay func(attempt int) time.Duration
	// RescueAfter, when set, replaces the derived stuck-job horizon. For tests.
	RescueAfter time.Duration
	// MetricsInterval is how often the queue gauges are refreshed
	// (DefaultMetricsInterval when zero).
	MetricsInterval time.Duration
}

// Queue is the durable delivery queue on one database.
type Queue struct {
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	log     *slog.Logger
	metrics *metrics
	opts    Options

	accepting atomic.Bool // Start succeeded: Enqueue takes events
	commits   committer   // Enqueue's group commit
	stopOnce  sync.Once
	stop      context.CancelFunc
	stopped   sync.WaitGroup // the metrics loop
}

// New returns a queue on pool. It does not connect: Start does, and the
// events operations do when called.
func New(pool *pgxpool.Pool, opts Options) (*Queue, error) {
	opts.Workers = cmp.Or(opts.Workers, DefaultWorkers)
	opts.MaxAttempts = cmp.Or(opts.MaxAttempts, DefaultMaxAttempts)
	opts.Retention = cmp.Or(opts.Retention, DefaultRetention)
	opts.ForwardTimeout = cmp.Or(opts.ForwardTimeout, DefaultForwardTimeout)
	opts.ShutdownTimeout = cmp.Or(opts.ShutdownTimeout, DefaultShutdownTimeout)
	opts.MetricsInterval = cmp.Or(opts.MetricsInterval, DefaultMetricsInterval)
	if opts.Workers < 0 || opts.MaxAttempts < 0 || opts.Retention < 0 || opts.ForwardTimeout < 0 || opts.ShutdownTimeout < 0 {
		return nil, errors.New("delivery: options must not be negative")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	q := &Queue{pool: pool, log: log, metrics: m, opts: opts}
	client, err := river.NewClient(riverpgxv5.New(pool), q.riverConfig())
	if err != nil {
		return nil, fmt.Errorf("delivery: river client: %w", err)
	}
	q.client = client
	return q, nil
}

// riverConfig is River's configuration, its defaults tuned for webhook
// delivery.
func (q *Queue) riverConfig() *river.Config {
	jobTimeout := q.opts.ForwardTimeout + jobTimeoutMargin
	cfg := &river.Config{
		Logger: slog.New(minLevel{Handler: q.log.Handler(), min: slog.LevelWarn}),
		// River's default, 25, is ours too; DELIVERY_MAX_ATTEMPTS changes it.
		MaxAttempts: q.opts.MaxAttempts,
		// River keeps completed jobs 24 h. A delivered event is kept for the
		// retention (a week by default): it is the audit of what Next.js got, and
		// while it is kept a Stripe redelivery of it is recognised as a duplicate
		// and not delivered twice.
		CompletedJobRetentionPeriod: q.opts.Retention,
		// River keeps discarded jobs 7 days; the dead letter stays 30 days, so
		// that an outage found late can still be replayed. Cancelled events (an
		// operator's decision, in River UI) are kept as long, for the record.
		DiscardedJobRetentionPeriod: DiscardedRetention,
		CancelledJobRetentionPeriod: DiscardedRetention,
		// River's default job timeout is a minute; an attempt is bounded by the
		// forward timeout, so River's is a backstop just beyond it.
		JobTimeout: jobTimeout,
		// River rescues a job left running by a dead process after an hour. A
		// replica killed outright (OOM, node loss) must not delay its deliveries
		// that long: a job still running 30 s past its timeout cannot be alive
		// (its context was cancelled), so it is rescued then. With River's rescuer
		// running every 30 s, the scheduler every 5 s and a first retry after
		// about 1 s, another replica delivers it within FORWARD_TIMEOUT + ~75 s.
		RescueStuckJobsAfter: cmp.Or(q.opts.RescueAfter, jobTimeout+rescueMargin),
		// On Stop, deliveries in flight get the shutdown timeout, then their
		// contexts are cancelled; River puts a cut job back in the queue without
		// counting the attempt.
		SoftStopTimeout: q.opts.ShutdownTimeout,
		// River fetches at most every 100 ms, which caps 10 workers at about 100
		// deliveries a second when Next.js answers fast: far too slow to drain
		// the backlog of an outage (or a month-start wave of renewals). Measured
		// here draining 50,000 events: 5 ms gives about 900 a second on one
		// core, 2 ms about 2,900. An idle queue does not fetch more often for it
		// (fetches follow inserts, finished jobs and the 1 s poll); a busy one
		// makes at most 500 small fetch queries a second, and as many insert
		// notifications, which River limits with the same value.
		FetchCooldown: fetchCooldown,
	}
	if q.opts.RetryDelay != nil {
		cfg.RetryPolicy = retryDelay(q.opts.RetryDelay)
	}
	if q.opts.Forwarder != nil {
		workers := river.NewWorkers()
		river.AddWorker(workers, &worker{
			fwd:     q.opts.Forwarder,
			log:     q.log,
			metrics: q.metrics,
			timeout: jobTimeout,
			tracer:  q.opts.Tracer,
		})
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{QueueName: {MaxWorkers: q.opts.Workers}}
	}
	return cfg
}

// Start starts the workers and the metrics refresh, and makes Enqueue accept
// events. It fails when the database does not answer; the caller tries again
// later (and should check the schema first). ctx bounds only the start.
func (q *Queue) Start(ctx context.Context) error {
	if q.opts.Forwarder == nil {
		return errors.New("delivery: a queue without a Forwarder does not start")
	}
	// River's work outlives ctx: Stop ends it.
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("delivery: starting the workers: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.stop = cancel
	q.stopped.Go(func() { q.refreshLoop(loopCtx) })
	q.accepting.Store(true)
	return nil
}

// Stop stops fetching new deliveries at once, lets those in flight finish
// within the shutdown timeout, cuts the rest (they are retried, by this
// replica's successor or another), and waits until River has recorded every
// outcome or ctx ends. Enqueue keeps taking events until the pool is closed:
// a replica draining behind its load balancer still acknowledges what
// reaches it, and other replicas deliver it.
func (q *Queue) Stop(ctx context.Context) error {
	if !q.accepting.Load() {
		return nil
	}
	var err error
	q.stopOnce.Do(func() {
		q.stop()
		q.stopped.Wait()
		if e := q.client.Stop(ctx); e != nil {
			err = fmt.Errorf("delivery: stopping the workers: %w", e)
		}
	})
	return err
}

// minLevel drops records below min: River logs every job error at info, which
// our own lines already say better.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

// retryDelay is a River retry policy from the wait after the n-th failure.
type retryDelay func(n int) time.Duration

// NextRetry counts failures as River's default policy does: the job's
// recorded errors, plus the one being handled.
func (f retryDelay) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(f(len(job.Errors) + 1))
}
