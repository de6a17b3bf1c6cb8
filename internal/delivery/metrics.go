package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
)

// Outcomes of a delivery attempt, the values of the outcome label of
// payments_api_delivery_attempts_total.
const (
	OutcomeDelivered = "delivered" // Next.js took the event
	OutcomeRetry     = "retry"     // it failed; another attempt is scheduled
	OutcomeDiscarded = "discarded" // it failed, and it was the last: dead letter
)

// metrics are the queue's Prometheus metrics.
type metrics struct {
	jobs          *prometheus.GaugeVec
	oldestPending prometheus.Gauge
	attempts      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "payments_api_delivery_jobs",
			Help: "Events in the delivery queue by River state, refreshed every 10 s (the same on every replica: aggregate with max).",
		}, []string{"state"}),
		oldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "payments_api_delivery_oldest_pending_seconds",
			Help: "Age of the oldest event not delivered yet (in flight included, discarded excluded); 0 when there is none.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_api_delivery_attempts_total",
			Help: "Delivery attempts made by this replica, by outcome: delivered, retry (failed, will be retried), discarded (failed for the last time).",
		}, []string{"outcome"}),
	}
	for _, s := range rivertype.JobStates() {
		m.jobs.WithLabelValues(string(s))
	}
	for _, o := range []string{OutcomeDelivered, OutcomeRetry, OutcomeDiscarded} {
		m.attempts.WithLabelValues(o)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.jobs, m.oldestPending, m.attempts} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("delivery: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// refreshLoop refreshes the gauges, and queues again the events River's
// rescuer discarded (see requeueRescued), every MetricsInterval until ctx
// ends. A failure keeps the last values and is logged at warn, at most once a
// minute: the database being down is reported better elsewhere.
func (q *Queue) refreshLoop(ctx context.Context) {
	t := time.NewTicker(q.opts.MetricsInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		err := errors.Join(q.requeueRescued(ctx), q.refreshMetrics(ctx))
		if err != nil && ctx.Err() == nil && time.Since(lastWarn) >= time.Minute {
			lastWarn = time.Now()
			q.log.WarnContext(ctx, "the delivery queue's periodic work (metrics, rescued events) failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pendingStates are the states of an event that will still be delivered.
var pendingStates = []string{
	string(rivertype.JobStateAvailable),
	string(rivertype.JobStatePending),
	string(rivertype.JobStateRetryable),
	string(rivertype.JobStateRunning),
	string(rivertype.JobStateScheduled),
}

// refreshMetrics counts the queue's events by state and finds the oldest one
// pending, in one round trip.
func (q *Queue) refreshMetrics(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, q.opts.MetricsInterval)
	defer cancel()
	rows, err := q.pool.Query(ctx, `
		SELECT state::text, count(*)::float8,
		       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM river_job
		WHERE kind = $1
		GROUP BY state`, Kind)
	if err != nil {
		return fmt.Errorf("delivery: counting queued events: %w", err)
	}
	defer rows.Close()
	counts := map[string]float64{}
	oldest := 0.0
	for rows.Next() {
		var (
			state    string
			n, older float64
		)
		if err := rows.Scan(&state, &n, &older); err != nil {
			return fmt.Errorf("delivery: counting queued events: %w", err)
		}
		counts[state] = n
		if slices.Contains(pendingStates, state) {
			oldest = max(oldest, older)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delivery: counting queued events: %w", err)
	}
	for _, s := range rivertype.JobStates() {
		q.metrics.jobs.WithLabelValues(string(s)).Set(counts[string(s)])
	}
	q.metrics.oldestPending.Set(oldest)
	return nil
}
