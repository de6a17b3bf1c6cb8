package delivery

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// rescuedError is the error River's rescuer records on a job it takes back
// from a replica that stopped answering (killed outright, its node lost).
const rescuedError = "Stuck job rescued by JobRescuer"

// requeueRescued queues again the events that River's rescuer discarded: a
// job left running by a dead replica during its last attempt. That attempt
// was cut, not refused by Next.js, and River's discard would lose the event
// without our worker seeing it (no error line, no count); it gets its attempt
// back instead, and a live replica delivers it. Rows are locked with SKIP
// LOCKED in one transaction, so that with every replica sweeping each event
// is queued again once.
func (q *Queue) requeueRescued(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, q.opts.MetricsInterval)
	defer cancel()
	tx, err := q.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("delivery: requeueing rescued events: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // after Commit: a no-op

	rows, err := tx.Query(ctx, `
		SELECT id, args->>'event_id', args->>'type', attempt
		FROM river_job
		WHERE kind = $1 AND state = 'discarded' AND errors[array_upper(errors, 1)]->>'error' = $2
		FOR UPDATE SKIP LOCKED`, Kind, rescuedError)
	if err != nil {
		return fmt.Errorf("delivery: requeueing rescued events: %w", err)
	}
	type rescued struct {
		id         int64
		event, typ string
		attempt    int
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rescued, error) {
		var j rescued
		err := r.Scan(&j.id, &j.event, &j.typ, &j.attempt)
		return j, err
	})
	if err != nil {
		return fmt.Errorf("delivery: requeueing rescued events: %w", err)
	}
	for _, j := range found {
		if _, err := q.client.JobRetryTx(ctx, tx, j.id); err != nil {
			return fmt.Errorf("delivery: requeueing rescued event %s: %w", j.event, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("delivery: requeueing rescued events: %w", err)
	}
	for _, j := range found {
		q.log.WarnContext(ctx, "a replica died during the event's last delivery attempt; queued again with one more attempt",
			slog.String("event_id", j.event), slog.String("event_type", j.typ), slog.Int("attempt", j.attempt))
	}
	return nil
}
