package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/acme/payments-api/internal/delivery"
)

// enqueueResult is what one Enqueue call returned.
type enqueueResult struct {
	id        string
	duplicate bool
	err       error
}

// lineUp holds River's table locked against inserts, so that the queue's
// commits in flight wait, and releases it when the test calls the returned
// function.
func lineUp(t *testing.T, e *env) (release func()) {
	t.Helper()
	tx, err := e.pool.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(testCtx(t), "LOCK TABLE river_job IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			_ = tx.Rollback(context.Background())
		}
	}
	t.Cleanup(release)
	return release
}

// enqueueAsync starts Enqueue of id and waits until the queue's commits are
// in the given state (commit loops running, calls waiting), so that calls
// line up in the order made.
func enqueueAsync(t *testing.T, ctx context.Context, e *env, id string, out chan<- enqueueResult, running, waiting int) {
	t.Helper()
	go func() {
		dup, err := e.q.Enqueue(ctx, id, "invoice.paid", event(id, "invoice.paid"))
		out <- enqueueResult{id: id, duplicate: dup, err: err}
	}()
	waitCommits(t, e, running, waiting)
}

// waitCommits waits until the queue's commits are in the given state.
func waitCommits(t *testing.T, e *env, running, waiting int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d commits running, %d calls waiting", running, waiting), func() bool {
		r, w := e.q.Commits()
		return r == running && w == waiting
	})
}

// blockCommits takes both of e's commits with events that wait on lineUp's
// lock.
func blockCommits(t *testing.T, e *env, prefix string, out chan<- enqueueResult) {
	t.Helper()
	enqueueAsync(t, testCtx(t), e, prefix+"_a", out, 1, 0)
	enqueueAsync(t, testCtx(t), e, prefix+"_b", out, 2, 0)
}

// collect gathers n results by event id; a repeated id keeps each result.
func collect(t *testing.T, n int, out <-chan enqueueResult) map[string][]enqueueResult {
	t.Helper()
	got := map[string][]enqueueResult{}
	for range n {
		r := <-out
		got[r.id] = append(got[r.id], r)
	}
	return got
}

// TestGroupCommit: Enqueue calls that arrive while the commits are busy share
// one transaction, and each gets its own answer: new, a duplicate in the
// batch, a duplicate of a delivered event, a discarded event queued again,
// and a caller that gave up before its commit, whose event is left out.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	url := migrated.Database(t)
	stopped(t, url, "evt_done", "evt_dead")
	n := newNext(t)
	e := replica(t, url, n, delivery.Options{})
	e.rig(t, "evt_dead", "discarded", 0)

	release := lineUp(t, e)
	out := make(chan enqueueResult, 16)
	// Two events take the two commits, which wait on the lock.
	blockCommits(t, e, "evt_first", out)
	// These wait, in this order, for the next commit.
	batch := []string{"evt_new_3", "evt_new_1", "evt_done", "evt_new_2", "evt_dead", "evt_new_1"}
	for i, id := range batch {
		enqueueAsync(t, testCtx(t), e, id, out, 2, i+1)
	}
	gaveUp, cancel := context.WithCancel(testCtx(t))
	gone := make(chan enqueueResult, 1)
	enqueueAsync(t, gaveUp, e, "evt_gone", gone, 2, len(batch)+1)
	cancel()
	if r := <-gone; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Enqueue with a cancelled context = %v, %v; want context.Canceled", r.duplicate, r.err)
	}
	waitCommits(t, e, 2, len(batch)) // the call that gave up left the line
	release()

	got := collect(t, 2+len(batch), out)
	type answers struct{ calls, duplicates int }
	want := map[string]answers{
		"evt_first_a": {1, 0}, "evt_first_b": {1, 0},
		"evt_new_1": {2, 1}, "evt_new_2": {1, 0}, "evt_new_3": {1, 0},
		"evt_done": {1, 1}, "evt_dead": {1, 0},
	}
	for id, w := range want {
		var a answers
		for _, r := range got[id] {
			if r.err != nil {
				t.Errorf("Enqueue(%s): %v", id, r.err)
			}
			a.calls++
			if r.duplicate {
				a.duplicates++
			}
		}
		if a != w {
			t.Errorf("Enqueue(%s): %d calls, %d duplicates; want %d, %d", id, a.calls, a.duplicates, w.calls, w.duplicates)
		}
	}

	// One insert: River stamps a batch's jobs with one creation time.
	var stamps int
	if err := e.pool.QueryRow(testCtx(t), `SELECT count(DISTINCT created_at) FROM river_job
		WHERE args->>'event_id' IN ('evt_new_1', 'evt_new_2', 'evt_new_3')`).Scan(&stamps); err != nil {
		t.Fatal(err)
	}
	if stamps != 1 {
		t.Errorf("the waiting events were inserted at %d times, want 1 (one batch)", stamps)
	}
	if got := e.jobs(t, "evt_gone"); got != 0 {
		t.Errorf("evt_gone, given up before its commit, has %d jobs, want 0", got)
	}
	for _, id := range []string{"evt_first_a", "evt_first_b", "evt_new_1", "evt_new_2", "evt_new_3", "evt_dead"} {
		eventually(t, id+" delivered", func() bool { return e.state(t, id) == "completed" })
		if got := e.jobs(t, id); got != 1 {
			t.Errorf("%s has %d jobs, want 1", id, got)
		}
	}
}

// TestGroupCommitOppositeOrders: two replicas commit batches of the same
// events, lined up in opposite orders, at the same moment. Each event is one
// job and no commit fails: the batches lock rows in the same order, so they
// wait for each other rather than deadlock.
func TestGroupCommitOppositeOrders(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	url := migrated.Database(t)
	a, b := replica(t, url, n, delivery.Options{}), replica(t, url, n, delivery.Options{})

	const events = 100
	ids := make([]string, events)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_both_%03d", i)
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)

	release := lineUp(t, a)
	out := make(chan enqueueResult, 2*events+4)
	blockCommits(t, a, "evt_block_a", out)
	blockCommits(t, b, "evt_block_b", out)
	for i := range ids {
		enqueueAsync(t, testCtx(t), a, ids[i], out, 2, i+1)
		enqueueAsync(t, testCtx(t), b, reversed[i], out, 2, i+1)
	}
	release()

	got := collect(t, 2*events+4, out)
	for _, id := range ids {
		queued := 0
		for _, r := range got[id] {
			if r.err != nil {
				t.Errorf("Enqueue(%s): %v", id, r.err)
			} else if !r.duplicate {
				queued++
			}
		}
		if queued != 1 {
			t.Errorf("%s queued by %d replicas, want 1", id, queued)
		}
	}
	var jobs int
	if err := a.pool.QueryRow(testCtx(t), "SELECT count(*) FROM river_job WHERE args->>'event_id' LIKE 'evt_both_%'").Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != events {
		t.Errorf("%d jobs, want %d", jobs, events)
	}
}

// TestGroupCommitOneBadEvent: an event the database refuses (PostgreSQL's
// jsonb takes no NUL character, which JSON allows in an event id) fails its
// batch; the others in it are committed one by one and answered as if it had
// not been there, and only it gets an error.
func TestGroupCommitOneBadEvent(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	e := replica(t, migrated.Database(t), n, delivery.Options{})

	release := lineUp(t, e)
	out := make(chan enqueueResult, 8)
	blockCommits(t, e, "evt_block", out)
	batch := []string{"evt_fine_1", "evt_\x00bad", "evt_fine_2"}
	for i, id := range batch {
		enqueueAsync(t, testCtx(t), e, id, out, 2, i+1)
	}
	release()

	got := collect(t, 2+len(batch), out)
	for id, rs := range got {
		r := rs[0]
		switch {
		case id == "evt_\x00bad" && r.err == nil:
			t.Errorf("Enqueue of an event id with a NUL character succeeded")
		case id != "evt_\x00bad" && (r.err != nil || r.duplicate):
			t.Errorf("Enqueue(%s) = %v, %v; want queued", id, r.duplicate, r.err)
		}
	}
	for _, id := range []string{"evt_fine_1", "evt_fine_2"} {
		eventually(t, id+" delivered", func() bool { return e.state(t, id) == "completed" })
	}
}
