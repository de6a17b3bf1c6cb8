package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/pgtest"
	"github.com/acme/payments-api/internal/postgres"
)

// deadDSN is a database nobody answers for: port 1 on loopback.
const deadDSN = "postgres://postgres@127.0.0.1:1/none?sslmode=disable"

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	return -1
}

// TestMigrateCommand: a fresh database is migrated and the output says what
// was applied; a second run applies nothing and says so; two at once both
// succeed.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.Database(t)

	var out, logs bytes.Buffer
	if err := migrate(ctx, dsn, reachTimeout, &out, &logs); err != nil {
		t.Fatalf("migrate = %v\n%s", err, logs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.HasPrefix(lines[0], "applied river 1 ") || lines[len(lines)-1] != "applied payments-api 1 customers" {
		t.Errorf("output = %q, want the applied migrations, River's then ours", out.String())
	}

	out.Reset()
	if err := migrate(ctx, dsn, reachTimeout, &out, &logs); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "the schema is up to date; nothing to apply\n"; got != want {
		t.Errorf("second run output = %q, want %q", got, want)
	}

	dsn2 := pgtest.Database(t)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() { codes[i] = exitCodeOf(migrate(ctx, dsn2, reachTimeout, &bytes.Buffer{}, &bytes.Buffer{})) })
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Errorf("two migrations at once exited %v, want 0 and 0", codes)
	}
	pool, err := postgres.Open(ctx, dsn2, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.CheckSchema(ctx, pool); err != nil {
		t.Errorf("schema after two migrations at once: %v", err)
	}
}

// TestMigrateUnreachable gives up after the reach timeout with exit status 1
// and a log line, and never prints a password.
func TestMigrateUnreachable(t *testing.T) {
	t.Parallel()
	var out, logs bytes.Buffer
	start := time.Now()
	err := migrate(context.Background(), "postgres://postgres:pa55word-secret@127.0.0.1:1/none?sslmode=disable", 2*time.Second, &out, &logs)
	if code := exitCodeOf(err); code != 1 {
		t.Fatalf("exit code = %d (%v), want 1", code, err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("gave up after %v, want about the 2 s reach timeout", d)
	}
	if !strings.Contains(logs.String(), "the database did not answer") || out.Len() != 0 {
		t.Errorf("stdout %q, stderr %q: want the reason on stderr only", out.String(), logs.String())
	}
	if strings.Contains(logs.String(), "pa55word") {
		t.Errorf("the log shows the password: %s", logs.String())
	}
	if reachTimeout != 30*time.Second {
		t.Errorf("reachTimeout = %v, want 30 s", reachTimeout)
	}
}

// migratedDSN is a migrated database on the shared cluster.
func migratedDSN(t *testing.T) string {
	t.Helper()
	dsn := pgtest.Database(t)
	if err := migrate(context.Background(), dsn, reachTimeout, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// migratedCluster starts a cluster of the test's own, to stop or restart,
// and migrates its postgres database, whose URL it returns.
func migratedCluster(t *testing.T) (*pgtest.Cluster, string) {
	t.Helper()
	c := pgtest.Start(t)
	dsn := c.URL("postgres")
	if err := migrate(context.Background(), dsn, reachTimeout, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return c, dsn
}

// seed puts events in the queue in the given states, oldest first, without a
// worker: rows as River leaves them.
func seed(t *testing.T, dsn string, events ...[3]string) {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for i, e := range events {
		id, typ, state := e[0], e[1], e[2]
		_, err := pool.Exec(ctx, `
			INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, errors, created_at, scheduled_at, finalized_at)
			VALUES (jsonb_build_object('event_id', $1::text, 'type', $2::text, 'body', ''), 'stripe_event', 3,
			        'payments_api_events', $3::river_job_state,
			        CASE WHEN $3 IN ('available', 'scheduled') THEN 0 ELSE 3 END,
			        CASE WHEN $3 = 'discarded' THEN ARRAY['{"at":"2026-01-01T00:00:00Z","attempt":3,"error":"forward failed after 1 attempt(s): rejected (status 404)","trace":""}'::jsonb] END,
			        '2026-01-01T00:00:00Z'::timestamptz + make_interval(mins => $4),
			        '2026-06-01T00:00:00Z',
			        CASE WHEN $3 IN ('completed', 'discarded', 'cancelled') THEN now() END)`,
			id, typ, state, i)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestEventsList prints the table and the JSON lines, filtered.
func TestEventsList(t *testing.T) {
	t.Parallel()
	dsn := migratedDSN(t)
	seed(t, dsn,
		[3]string{"evt_a", "invoice.paid", "completed"},
		[3]string{"evt_b", "checkout.session.completed", "discarded"},
		[3]string{"evt_c", "invoice.paid", "scheduled"},
	)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		err := events(context.Background(), args, dsn, reachTimeout, &out, &errOut)
		return exitCodeOf(err), out.String(), errOut.String()
	}

	code, out, _ := run("list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "EVENT ID") || !strings.HasPrefix(lines[1], "evt_c ") {
		t.Fatalf("list = %d\n%s\nwant a header and three events, newest first", code, out)
	}
	if !strings.Contains(lines[2], "discarded") || !strings.Contains(lines[2], "rejected (status 404)") || !strings.Contains(lines[2], "2026-01-01T00:01:00Z") {
		t.Errorf("discarded row = %q, want its state, last error and creation time", lines[2])
	}
	if !strings.Contains(lines[1], "2026-06-01T00:00:00Z") {
		t.Errorf("scheduled row = %q, want its next attempt", lines[1])
	}
	if got, want := strings.Fields(lines[0]), []string{"EVENT", "ID", "TYPE", "STATE", "ATTEMPTS", "LAST", "ERROR", "CREATED", "NEXT", "ATTEMPT"}; !slices.Equal(got, want) {
		t.Errorf("header = %q, want the columns %v", lines[0], want)
	}

	code, out, _ = run("list", "--state", "discarded", "--json")
	if code != 0 {
		t.Fatalf("list --json exited %d", code)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list --json = %q: %v", out, err)
	}
	want := map[string]any{
		"event_id": "evt_b", "type": "checkout.session.completed", "state": "discarded", "attempts": float64(3),
		"last_error": "forward failed after 1 attempt(s): rejected (status 404)", "created_at": "2026-01-01T00:01:00Z", "next_attempt_at": nil,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("keys = %v, want exactly %v", got, want)
	}

	code, out, _ = run("list", "--state", "scheduled", "--json")
	if code != 0 || !strings.Contains(out, `"last_error":null,"created_at":"2026-01-01T00:02:00Z","next_attempt_at":"2026-06-01T00:00:00Z"}`) {
		t.Errorf("list --state scheduled --json = %d %q, want its next attempt in RFC 3339 and a null last error", code, out)
	}

	code, out, _ = run("list", "--type", "invoice.paid", "--limit", "1", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"evt_c"`) {
		t.Errorf("list --type --limit 1 = %d %q, want evt_c alone", code, out)
	}
	code, out, _ = run("list", "--state", "completed,scheduled", "--json")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("list --state completed,scheduled = %d %q, want two lines", code, out)
	}
}

// TestEventsRetry replays by id and the whole dead letter, printing what it
// did with each; an unknown id is exit status 1.
func TestEventsRetry(t *testing.T) {
	t.Parallel()
	dsn := migratedDSN(t)
	seed(t, dsn,
		[3]string{"evt_done", "invoice.paid", "completed"},
		[3]string{"evt_dead1", "invoice.paid", "discarded"},
		[3]string{"evt_dead2", "invoice.paid", "discarded"},
		[3]string{"evt_waiting", "invoice.paid", "available"},
	)
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		err := events(context.Background(), args, dsn, reachTimeout, &out, &errOut)
		return exitCodeOf(err), out.String()
	}
	code, out := run("retry", "--discarded")
	if code != 0 || out != "evt_dead1 queued (was discarded)\nevt_dead2 queued (was discarded)\n" {
		t.Errorf("retry --discarded = %d %q", code, out)
	}
	code, out = run("retry", "--discarded")
	if code != 0 || out != "no discarded events\n" {
		t.Errorf("retry --discarded again = %d %q", code, out)
	}
	code, out = run("retry", "evt_done", "evt_waiting", "evt_nope")
	if code != 1 || out != "evt_done queued (was completed)\nevt_waiting already queued\nevt_nope not found\n" {
		t.Errorf("retry by ids = %d %q, want exit 1 for the unknown id", code, out)
	}
}

// TestEventsUsage refuses bad usage with exit status 2 before touching the
// database.
func TestEventsUsage(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{},
		{"lst"},
		{"list", "--state", "done"},
		{"list", "--limit", "0"},
		{"list", "--limit", "10001"},
		{"list", "extra"},
		{"list", "--bogus"},
		{"retry"},
		{"retry", "--discarded", "evt_1"},
	}
	for _, args := range tests {
		var out, errOut bytes.Buffer
		err := events(context.Background(), args, deadDSN, time.Millisecond, &out, &errOut)
		if code := exitCodeOf(err); code != 2 || errOut.Len() == 0 || out.Len() != 0 {
			t.Errorf("events %q = exit %d, stdout %q, stderr %q; want 2 with usage on stderr", args, code, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := exitCodeOf(events(context.Background(), []string{"list"}, deadDSN, time.Second, &out, &errOut)); code != 1 {
		t.Errorf("events list without a database = exit %d, want 1", code)
	}
}

// TestDatabaseCommandsThroughRun: migrate and events read DATABASE_URL alone
// (the rest of the configuration may be missing), refuse a missing or bad one
// with exit status 2 without echoing it, and work end to end through run.
func TestDatabaseCommandsThroughRun(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	tests := []struct {
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{[]string{"payments-api", "migrate"}, nil, 2, "", "DATABASE_URL: is required"},
		{[]string{"payments-api", "events", "list"}, nil, 2, "", "DATABASE_URL: is required"},
		{[]string{"payments-api", "migrate"}, map[string]string{"DATABASE_URL": "mysql://u:hunter2pw@db/x"}, 2, "", "DATABASE_URL: must be"},
		{[]string{"payments-api", "migrate", "now"}, map[string]string{"DATABASE_URL": dsn}, 2, "", "unexpected argument"},
		{[]string{"payments-api", "migrate"}, map[string]string{"DATABASE_URL": dsn}, 0, "applied payments-api 1 customers", ""},
		{[]string{"payments-api", "migrate"}, map[string]string{"DATABASE_URL": dsn}, 0, "nothing to apply", ""},
		{[]string{"payments-api", "events", "list", "--json"}, map[string]string{"DATABASE_URL": dsn}, 0, "", ""},
		{[]string{"payments-api", "events", "retry", "--discarded"}, map[string]string{"DATABASE_URL": dsn}, 0, "no discarded events", ""},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		getenv := func(k string) string { return tt.env[k] }
		code := exitCodeOf(run(context.Background(), tt.args, getenv, &out, &errOut))
		if code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) || !strings.Contains(errOut.String(), tt.wantErr) {
			t.Errorf("%q with %v = exit %d, stdout %q, stderr %q; want %d, %q, %q",
				tt.args, tt.env, code, out.String(), errOut.String(), tt.wantCode, tt.wantOut, tt.wantErr)
		}
		if strings.Contains(errOut.String()+out.String(), "hunter2pw") {
			t.Errorf("%q echoes the URL's password", tt.args)
		}
	}
}
