package delivery

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/acme/payments-api/internal/requestlog"
)

// ErrNotStarted is returned by Enqueue before Start succeeded: the database
// has not answered yet, or its schema is behind.
var ErrNotStarted = errors.New("delivery: the queue is not started")

// uniqueOpts makes an event id one job, whatever its state: River's default
// leaves discarded and cancelled jobs out, so a redelivery of a discarded
// event would become a second job beside the dead one. With every state in,
// the insert finds the existing job, and Enqueue decides what to do with it.
var uniqueOpts = river.UniqueOpts{ByArgs: true, ByState: rivertype.JobStates()}

// Enqueue commits the event to the queue and reports whether it was there
// already: queued, being delivered, or delivered within the retention. Those
// are duplicates and are not delivered again. An event that was discarded (or
// cancelled) is queued again, as the same job, and is not a duplicate: Stripe
// or an operator resending it means it is wanted now. The request id of ctx
// is stored with a new event for its delivery.
//
// Enqueue is the webhook's Queue. Insert and requeue are one transaction, so
// that two replicas receiving the same event at once make one job.
func (q *Queue) Enqueue(ctx context.Context, eventID, eventType string, body []byte) (duplicate bool, err error) {
	if !q.accepting.Load() {
		return false, ErrNotStarted
	}
	args := EventArgs{EventID: eventID, Type: eventType, Body: body, RequestID: requestlog.ID(ctx)}
	if q.opts.Traceparent != nil {
		args.Traceparent = q.opts.Traceparent(ctx)
	}

	tx, err := q.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("delivery: queueing an event: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // after Commit: a no-op

	res, err := q.client.InsertTx(ctx, tx, args, &river.InsertOpts{Queue: QueueName, UniqueOpts: uniqueOpts})
	if err != nil {
		return false, fmt.Errorf("delivery: queueing an event: %w", err)
	}
	duplicate = res.UniqueSkippedAsDuplicate
	if duplicate && isDead(res.Job.State) {
		if _, err := q.client.JobRetryTx(ctx, tx, res.Job.ID); err != nil {
			return false, fmt.Errorf("delivery: queueing a discarded event again: %w", err)
		}
		duplicate = false
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("delivery: queueing an event: %w", err)
	}
	return duplicate, nil
}

// isDead reports whether a job in state will never be delivered unless it is
// queued again.
func isDead(state rivertype.JobState) bool {
	return state == rivertype.JobStateDiscarded || state == rivertype.JobStateCancelled
}
