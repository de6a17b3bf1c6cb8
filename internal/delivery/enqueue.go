package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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

// Group commit. Each event is committed before Stripe is answered, and on a
// busy replica most of a commit's cost is per transaction (its round trips,
// River's insert notification, the commit), not per event. So events that
// arrive while commits are in flight wait for the next one and share it:
// at most maxCommits transactions at a time, each taking up to maxBatch
// events. An event arriving at an idle queue is committed at once, alone; no
// event ever waits for others to arrive.
const (
	maxCommits = 2
	maxBatch   = 128
	// commitTimeoutFallback stands for the deadline of a caller that has
	// none (the webhook always sets one).
	commitTimeoutFallback = 30 * time.Second
)

// committer groups concurrent Enqueue calls into shared transactions.
type committer struct {
	mu      sync.Mutex
	waiting []*enqueueCall
	running int // commit loops in flight, at most maxCommits
}

// enqueueCall is one Enqueue waiting for its commit.
type enqueueCall struct {
	ctx       context.Context
	args      EventArgs
	duplicate bool               // set by its commit, sent once that commits
	done      chan enqueueResult // buffered: the commit never waits for its caller
}

type enqueueResult struct {
	duplicate bool
	err       error
}

// Enqueue commits the event to the queue and reports whether it was there
// already: queued, being delivered, or delivered within the retention. Those
// are duplicates and are not delivered again. An event that was discarded (or
// cancelled) is queued again, as the same job, and is not a duplicate: Stripe
// or an operator resending it means it is wanted now. The request id of ctx
// is stored with a new event for its delivery.
//
// Enqueue is the webhook's Queue. It returns once the event's transaction
// committed (or failed), or when ctx ends; an event whose ctx ended before
// its commit began is left out of it. Insert and requeue are in one
// transaction, so that two replicas receiving the same event at once make
// one job.
func (q *Queue) Enqueue(ctx context.Context, eventID, eventType string, body []byte) (duplicate bool, err error) {
	if !q.accepting.Load() {
		return false, ErrNotStarted
	}
	args := EventArgs{EventID: eventID, Type: eventType, Body: body, RequestID: requestlog.ID(ctx)}
	if q.opts.Traceparent != nil {
		args.Traceparent = q.opts.Traceparent(ctx)
	}
	call := &enqueueCall{ctx: ctx, args: args, done: make(chan enqueueResult, 1)}

	c := &q.commits
	c.mu.Lock()
	c.waiting = append(c.waiting, call)
	start := c.running < maxCommits
	if start {
		c.running++
	}
	c.mu.Unlock()
	if start {
		go q.commitLoop()
	}

	select {
	case res := <-call.done:
		return res.duplicate, res.err
	case <-ctx.Done():
		// Out of the waiting list at once, body and all: while the database
		// hangs, callers giving up must not pile up there.
		c.mu.Lock()
		c.waiting = slices.DeleteFunc(c.waiting, func(w *enqueueCall) bool { return w == call })
		c.mu.Unlock()
		return false, fmt.Errorf("delivery: queueing an event: %w", context.Cause(ctx))
	}
}

// commitLoop commits what is waiting, batch after batch, and ends when
// nothing is.
func (q *Queue) commitLoop() {
	c := &q.commits
	for {
		c.mu.Lock()
		n := min(len(c.waiting), maxBatch)
		if n == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		batch := slices.Clone(c.waiting[:n])
		c.waiting = slices.Delete(c.waiting, 0, n)
		c.mu.Unlock()
		q.commitBatch(batch)
	}
}

// commitBatch commits batch in one transaction and answers each call. If
// that fails, each call still waiting is tried again in a transaction of its
// own: a batch makes one database error (a deadlock abort, a row too large)
// everyone's, and a 503 should stay the event's own.
func (q *Queue) commitBatch(batch []*enqueueCall) {
	err := q.commitTogether(batch)
	if err != nil && len(batch) > 1 {
		for _, call := range batch {
			call.answer(q.commitTogether([]*enqueueCall{call}))
		}
		return
	}
	for _, call := range batch {
		call.answer(err)
	}
}

// answer gives the caller its result: err, or what its commit found.
func (c *enqueueCall) answer(err error) {
	c.done <- enqueueResult{duplicate: c.duplicate && err == nil, err: err}
}

// commitTogether commits the calls of batch still waiting in one
// transaction, sorted by event id, setting each one's duplicate. A call that
// gave up is answered already (by its ctx); its event is left out, and
// Stripe, having had no 2xx, sends it again.
func (q *Queue) commitTogether(batch []*enqueueCall) error {
	live := slices.DeleteFunc(slices.Clone(batch), func(c *enqueueCall) bool { return c.ctx.Err() != nil })
	if len(live) == 0 {
		return nil
	}
	// The same order of event ids in every transaction: two replicas
	// committing overlapping batches wait for each other instead of
	// deadlocking.
	slices.SortStableFunc(live, func(a, b *enqueueCall) int { return cmp.Compare(a.args.EventID, b.args.EventID) })
	ctx, cancel := batchContext(live)
	defer cancel()
	return q.insertBatch(ctx, live)
}

// batchContext is the context of a batch's transaction: the latest of its
// callers' deadlines, so that no caller's commit is cut short by another's.
// Cancelling one caller does not cancel the others' commit.
func batchContext(batch []*enqueueCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			d = time.Now().Add(commitTimeoutFallback)
		}
		if d.After(latest) {
			latest = d
		}
	}
	// One caller's values (its trace, its request id: the lowest event id's)
	// for River's own log lines about the batch; none of its cancellation.
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}

// insertBatch inserts batch, sorted by event id, in one transaction, queues
// again the discarded events among them, and sets each call's duplicate.
func (q *Queue) insertBatch(ctx context.Context, batch []*enqueueCall) error {
	// One event twice in a batch (Stripe's retry racing the original into this
	// replica) is inserted once: PostgreSQL refuses a row changed twice by one
	// statement. The later call is a duplicate of the earlier, as it would
	// be one transaction later.
	params := make([]river.InsertManyParams, 0, len(batch))
	for i, call := range batch {
		call.duplicate = i > 0 && call.args.EventID == batch[i-1].args.EventID
		if call.duplicate {
			continue
		}
		params = append(params, river.InsertManyParams{Args: call.args, InsertOpts: &river.InsertOpts{Queue: QueueName, UniqueOpts: uniqueOpts}})
	}

	tx, err := q.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("delivery: queueing an event: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // after Commit: a no-op

	inserted, err := q.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("delivery: queueing an event: %w", err)
	}
	if len(inserted) != len(params) {
		return fmt.Errorf("delivery: queueing an event: %d results for %d events", len(inserted), len(params))
	}
	next := 0
	for _, call := range batch {
		if call.duplicate {
			continue // the in-batch repeat above
		}
		res := inserted[next]
		next++
		// River returns the rows in the order given, which PostgreSQL does for
		// INSERT … SELECT unnest(…) … RETURNING without promising it; were it
		// ever otherwise, answering a caller with another event's result would
		// be worse than failing the batch.
		if err := sameEvent(res.Job, call.args.EventID); err != nil {
			return err
		}
		call.duplicate = res.UniqueSkippedAsDuplicate
		if res.UniqueSkippedAsDuplicate && isDead(res.Job.State) {
			if _, err := q.client.JobRetryTx(ctx, tx, res.Job.ID); err != nil {
				return fmt.Errorf("delivery: queueing a discarded event again: %w", err)
			}
			call.duplicate = false
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("delivery: queueing an event: %w", err)
	}
	return nil
}

// sameEvent checks that job is the one of eventID.
func sameEvent(job *rivertype.JobRow, eventID string) error {
	var stored struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(job.EncodedArgs, &stored); err != nil {
		return fmt.Errorf("delivery: reading back a queued event: %w", err)
	}
	if stored.EventID != eventID {
		return fmt.Errorf("delivery: queueing %s: the database returned job %d of %s in its place", eventID, job.ID, stored.EventID)
	}
	return nil
}

// isDead reports whether a job in state will never be delivered unless it is
// queued again.
func isDead(state rivertype.JobState) bool {
	return state == rivertype.JobStateDiscarded || state == rivertype.JobStateCancelled
}
