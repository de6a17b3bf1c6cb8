package delivery

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/tracing"
)

// worker delivers one event per job: a single attempt, River retrying.
type worker struct {
	river.WorkerDefaults[EventArgs]
	fwd     Attempter
	log     *slog.Logger
	metrics *metrics
	timeout time.Duration
	tracer  *tracing.Tracer
}

// Timeout is River's bound on one job, just beyond the forward timeout.
func (w *worker) Timeout(*river.Job[EventArgs]) time.Duration { return w.timeout }

// Work makes one delivery attempt and says what became of the event. An error
// makes River retry it with backoff, or discard it after the last attempt.
//
// With tracing on, the attempt is a span of a trace of its own, linked to the
// webhook request that queued the event: attempts can come days later.
func (w *worker) Work(ctx context.Context, job *river.Job[EventArgs]) error {
	ctx, span := w.tracer.StartLinked(ctx, "delivery.attempt", trace.SpanKindConsumer, job.Args.Traceparent)
	span.SetString("stripe.event_id", job.Args.EventID)
	span.SetString("stripe.event_type", job.Args.Type)
	span.SetInt("delivery.attempt", job.Attempt)
	err := w.attempt(ctx, job)
	span.End(err)
	return err
}

func (w *worker) attempt(ctx context.Context, job *river.Job[EventArgs]) error {
	a := job.Args
	err := w.fwd.Attempt(ctx, a.EventID, a.RequestID, a.Body)
	attrs := []any{
		slog.String("event_id", a.EventID),
		slog.String("event_type", a.Type),
		slog.Int("attempt", job.Attempt),
		slog.Int("max_attempts", job.MaxAttempts),
	}
	if a.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", a.RequestID))
	}
	switch {
	case err == nil:
		w.metrics.attempts.WithLabelValues(OutcomeDelivered).Inc()
		w.log.InfoContext(ctx, "event delivered", attrs...)
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The replica is stopping (or the job was cancelled): River puts the
		// event back without counting the attempt. Not a failure of Next.js.
		w.log.InfoContext(ctx, "delivery interrupted; the event stays queued", append(attrs, slog.Any("error", err))...)
	case job.Attempt >= job.MaxAttempts:
		w.metrics.attempts.WithLabelValues(OutcomeDiscarded).Inc()
		w.log.ErrorContext(ctx, "event discarded after its last delivery attempt; replay it with `payments-api events retry`",
			append(attrs, slog.Int("attempts", job.Attempt), slog.Any("error", err))...)
	default:
		w.metrics.attempts.WithLabelValues(OutcomeRetry).Inc()
		w.log.WarnContext(ctx, "delivery attempt failed; will retry", append(attrs, slog.Any("error", err))...)
	}
	return err
}
