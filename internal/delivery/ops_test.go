package delivery_test

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/metricstest"
)

// rig puts the event's job in state, created age ago, as if it had got there:
// the states that are slow or awkward to reach for real. Jobs waiting for an
// attempt are scheduled an hour ahead, and a running one was attempted just
// now, so that no worker or rescuer touches them during the test.
func (e *env) rig(t *testing.T, id, state string, age time.Duration) {
	t.Helper()
	_, err := e.pool.Exec(testCtx(t), `
		UPDATE river_job SET
			state = $2::river_job_state,
			created_at = now() - make_interval(secs => $3),
			scheduled_at = now() + interval '1 hour',
			attempted_at = CASE WHEN $2 = 'running' THEN now() ELSE attempted_at END,
			finalized_at = CASE WHEN $2 IN ('completed', 'discarded', 'cancelled') THEN now() ELSE NULL END
		WHERE args->>'event_id' = $1`, id, state, age.Seconds())
	if err != nil {
		t.Fatal(err)
	}
}

// stopped builds a queue, delivers the given events through it and stops it,
// leaving their jobs for the test to rig.
func stopped(t *testing.T, url string, ids ...string) *env {
	t.Helper()
	n := newNext(t)
	e := newEnv(t, url, n, delivery.Options{})
	if err := e.q.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		e.enqueue(t, id)
	}
	eventually(t, "all delivered", func() bool { return n.processed() == len(ids) })
	if err := e.q.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestMetrics: the jobs gauge has a series for each of River's states, with
// its count; the oldest pending event's age leaves discarded ones out.
func TestMetrics(t *testing.T) {
	t.Parallel()
	url := migrated.Database(t)

	empty := replica(t, migrated.Database(t), newNext(t), delivery.Options{})
	eventually(t, "gauges refreshed", func() bool {
		return metricstest.Sum(t, empty.reg, "payments_api_delivery_jobs", nil) == 0
	})
	for _, s := range delivery.States() {
		if got := metricstest.Value(t, empty.reg, "payments_api_delivery_jobs", map[string]string{"state": s}); got != 0 {
			t.Errorf("jobs{state=%s} on an empty queue = %v, want 0", s, got)
		}
	}
	if got := metricstest.Value(t, empty.reg, "payments_api_delivery_oldest_pending_seconds", nil); got != 0 {
		t.Errorf("oldest pending on an empty queue = %v, want 0", got)
	}

	states := delivery.States()
	var ids []string
	for _, s := range states {
		ids = append(ids, "evt_"+s)
	}
	ids = append(ids, "evt_completed_2")
	e := stopped(t, url, ids...)
	ages := map[string]time.Duration{
		"retryable": time.Hour,      // the oldest pending
		"discarded": 48 * time.Hour, // older, but given up on: not pending
		"cancelled": 48 * time.Hour,
		"completed": 48 * time.Hour, // older, but delivered: not pending
	}
	for _, s := range states {
		e.rig(t, "evt_"+s, s, cmp.Or(ages[s], time.Minute))
	}

	live := replica(t, url, newNext(t), delivery.Options{})
	eventually(t, "gauges refreshed", func() bool {
		return metricstest.Sum(t, live.reg, "payments_api_delivery_jobs", nil) == float64(len(ids))
	})
	for _, s := range states {
		want := 1.0
		if s == "completed" {
			want = 2
		}
		if got := metricstest.Value(t, live.reg, "payments_api_delivery_jobs", map[string]string{"state": s}); got != want {
			t.Errorf("jobs{state=%s} = %v, want %v", s, got, want)
		}
	}
	oldest := metricstest.Value(t, live.reg, "payments_api_delivery_oldest_pending_seconds", nil)
	if math.Abs(oldest-3600) > 120 {
		t.Errorf("oldest pending = %v s, want about 3600 (the retryable one; completed, discarded and cancelled excluded)", oldest)
	}

	// Every state of an event not delivered yet counts, the one in flight
	// included: each in turn becomes the oldest, by a different age, so that a
	// reading from before the change cannot pass.
	for i, s := range []string{"available", "pending", "scheduled", "running", "retryable"} {
		age := time.Duration(2+i) * time.Hour
		e.rig(t, "evt_"+s, s, age)
		eventually(t, "the "+s+" event is the oldest pending", func() bool {
			got := metricstest.Value(t, live.reg, "payments_api_delivery_oldest_pending_seconds", nil)
			return math.Abs(got-age.Seconds()) < 120
		})
	}
}

// TestList filters by state and type, limits, orders newest first, and
// refuses what it cannot do.
func TestList(t *testing.T) {
	t.Parallel()
	e := stopped(t, migrated.Database(t), "evt_a", "evt_b", "evt_c", "evt_d")
	e.rig(t, "evt_b", "discarded", time.Minute)
	e.rig(t, "evt_c", "retryable", time.Minute)
	if _, err := e.pool.Exec(testCtx(t), `UPDATE river_job SET args = jsonb_set(args, '{type}', '"invoice.paid"') WHERE args->>'event_id' IN ('evt_c', 'evt_d')`); err != nil {
		t.Fatal(err)
	}

	ids := func(evs []delivery.Event) string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.EventID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name string
		p    delivery.ListParams
		want string
	}{
		{"all, newest first", delivery.ListParams{}, "evt_d,evt_c,evt_b,evt_a"},
		{"one state", delivery.ListParams{States: []string{"discarded"}}, "evt_b"},
		{"two states", delivery.ListParams{States: []string{"discarded", "retryable"}}, "evt_c,evt_b"},
		{"type", delivery.ListParams{Type: "invoice.paid"}, "evt_d,evt_c"},
		{"type and state", delivery.ListParams{Type: "invoice.paid", States: []string{"completed"}}, "evt_d"},
		{"unknown type", delivery.ListParams{Type: "nope"}, ""},
		{"limit", delivery.ListParams{Limit: 2}, "evt_d,evt_c"},
		{"quote in the type", delivery.ListParams{Type: `x"}`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(e.list(t, tt.p)); got != tt.want {
				t.Errorf("List(%+v) = %s, want %s", tt.p, got, tt.want)
			}
		})
	}

	evs := map[string]delivery.Event{}
	for _, ev := range e.list(t, delivery.ListParams{}) {
		evs[ev.EventID] = ev
	}
	if ev := evs["evt_c"]; ev.Type != "invoice.paid" || ev.NextAttemptAt == nil || time.Until(*ev.NextAttemptAt) < 50*time.Minute {
		t.Errorf("retryable event = %+v, want its next attempt in about an hour", ev)
	}
	if ev := evs["evt_a"]; ev.State != "completed" || ev.Attempts != 1 || ev.NextAttemptAt != nil || ev.LastError != "" || time.Since(ev.CreatedAt) > time.Hour {
		t.Errorf("delivered event = %+v, want completed, 1 attempt, no next attempt, no error", ev)
	}

	for _, p := range []delivery.ListParams{{Limit: -1}, {Limit: delivery.MaxListLimit + 1}, {States: []string{"done"}}} {
		if _, err := e.q.List(testCtx(t), p); err == nil {
			t.Errorf("List(%+v) succeeded, want an error", p)
		}
	}
	_, err := e.q.List(testCtx(t), delivery.ListParams{States: []string{"done"}})
	if err == nil || !strings.Contains(err.Error(), "discarded") {
		t.Errorf("unknown state error = %v, want it to list the known states", err)
	}
	if !slices.Equal(delivery.States(), []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}) {
		t.Errorf("States() = %v", delivery.States())
	}
}

// TestRetention: the leader removes delivered events after the retention and
// discarded ones after 30 days, not before; a removed event is no longer a
// duplicate and Stripe's redelivery of it is delivered again.
func TestRetention(t *testing.T) {
	t.Parallel()
	url := migrated.Database(t)
	e := stopped(t, url, "evt_old", "evt_recent", "evt_dead_old", "evt_dead_recent")
	finalized := map[string]struct {
		state string
		ago   time.Duration
	}{
		"evt_old":         {"completed", 49 * time.Hour},
		"evt_recent":      {"completed", 47 * time.Hour},
		"evt_dead_old":    {"discarded", 31 * 24 * time.Hour},
		"evt_dead_recent": {"discarded", 29 * 24 * time.Hour},
	}
	for id, f := range finalized {
		_, err := e.pool.Exec(testCtx(t), `UPDATE river_job SET state = $2::river_job_state,
			finalized_at = now() - make_interval(secs => $3) WHERE args->>'event_id' = $1`, id, f.state, f.ago.Seconds())
		if err != nil {
			t.Fatal(err)
		}
	}

	// A new leader cleans up at once when it starts.
	n := newNext(t)
	live := replica(t, url, n, delivery.Options{Retention: 48 * time.Hour})
	eventually(t, "old events removed", func() bool { return live.jobs(t, "evt_old") == 0 && live.jobs(t, "evt_dead_old") == 0 })
	for _, id := range []string{"evt_recent", "evt_dead_recent"} {
		if live.jobs(t, id) != 1 {
			t.Errorf("%s was removed before its retention", id)
		}
	}

	if live.enqueue(t, "evt_old") {
		t.Error("an event removed after its retention is still a duplicate")
	}
	if !live.enqueue(t, "evt_recent") {
		t.Error("an event delivered within the retention is not a duplicate")
	}
	eventually(t, "redelivered", func() bool { return n.processed() == 1 })
	if got := n.Processed()[0].ID; got != "evt_old" {
		t.Errorf("redelivered %s, want evt_old", got)
	}
}
