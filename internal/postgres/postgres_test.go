package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/acme/payments-api/internal/pgtest"
	"github.com/acme/payments-api/internal/postgres"
)

func TestMain(m *testing.M) { pgtest.Run(m) }

var discard = slog.New(slog.DiscardHandler)

// migrated is a database with every migration applied, copied per test.
var migrated = pgtest.NewTemplate("postgres_migrated", func(ctx context.Context, url string) error {
	pool, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = postgres.Migrate(ctx, pool, discard)
	return err
})

func open(t *testing.T, url string, opts postgres.Options) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func ctxTimeout(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestOpen(t *testing.T) {
	t.Parallel()
	base := "postgres://u:s3cret-pw@127.0.0.1:5/db?sslmode=disable"
	tests := []struct {
		name        string
		url         string
		opts        postgres.Options
		wantMax     int32
		wantTimeout time.Duration
		wantApp     string
	}{
		{"defaults", base, postgres.Options{}, postgres.DefaultMaxConns, postgres.DefaultConnectTimeout, "payments-api"},
		{"options", base, postgres.Options{MaxConns: 7, ConnectTimeout: time.Second, ApplicationName: "payments-api migrate"}, 7, time.Second, "payments-api migrate"},
		{"the URL wins", base + "&pool_max_conns=3&connect_timeout=9&application_name=mine", postgres.Options{MaxConns: 7, ConnectTimeout: time.Second}, 3, 9 * time.Second, "mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := postgres.Open(context.Background(), tt.url, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			cfg := pool.Config()
			if got := cfg.MaxConns; got != tt.wantMax {
				t.Errorf("MaxConns = %d, want %d", got, tt.wantMax)
			}
			if got := cfg.ConnConfig.ConnectTimeout; got != tt.wantTimeout {
				t.Errorf("ConnectTimeout = %v, want %v", got, tt.wantTimeout)
			}
			if got := cfg.ConnConfig.RuntimeParams["application_name"]; got != tt.wantApp {
				t.Errorf("application_name = %q, want %q", got, tt.wantApp)
			}
		})
	}

	t.Run("invalid URL", func(t *testing.T) {
		_, err := postgres.Open(context.Background(), "postgres://u:s3cret-pw@127.0.0.1:5/db?sslmode=sometimes", postgres.Options{})
		if err == nil {
			t.Fatal("Open accepted sslmode=sometimes")
		}
		for _, leak := range []string{"s3cret-pw", "127.0.0.1", "u:"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("error %q repeats %q from the URL", err, leak)
			}
		}
	})
}

// TestMigrate runs the migrations on an empty database, then again: the first
// run applies River's and ours and makes the schema current, the second finds
// nothing to do.
func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := ctxTimeout(t)
	pool := open(t, pgtest.Database(t), postgres.Options{})

	if err := postgres.CheckSchema(ctx, pool); !errors.Is(err, postgres.ErrSchemaBehind) {
		t.Fatalf("CheckSchema on an empty database = %v, want ErrSchemaBehind", err)
	}
	applied, err := postgres.Migrate(ctx, pool, discard)
	if err != nil {
		t.Fatal(err)
	}
	want := len(riverVersions(t, pool)) + 1 // River's, and our customers table
	if len(applied) != want {
		t.Errorf("applied %d migrations (%v), want %d", len(applied), applied, want)
	}
	if last := applied[len(applied)-1]; last.String() != "payments-api 1 customers" {
		t.Errorf("last applied = %q, want %q", last, "payments-api 1 customers")
	}
	if err := postgres.CheckSchema(ctx, pool); err != nil {
		t.Fatalf("CheckSchema after Migrate = %v, want nil", err)
	}

	again, err := postgres.Migrate(ctx, pool, discard)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", again, err)
	}
	for _, table := range []string{"river_job", "river_migration", "customers", postgres.VersionTable} {
		var name *string
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::text", table).Scan(&name); err != nil || name == nil {
			t.Errorf("table %s after Migrate: %v, %v", table, name, err)
		}
	}
}

func riverVersions(t *testing.T, pool *pgxpool.Pool) []rivermigrate.Migration {
	t.Helper()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	return m.AllVersions()
}

// TestMigrateConcurrently runs Migrate from two pools at once, as two
// `payments-api migrate` processes would: both succeed, every migration runs
// exactly once between them, and the schema ends current.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := ctxTimeout(t)
	url := pgtest.Database(t)
	pools := []*pgxpool.Pool{open(t, url, postgres.Options{}), open(t, url, postgres.Options{})}

	var (
		wg      sync.WaitGroup
		applied [2][]postgres.Applied
		errs    [2]error
		start   = make(chan struct{})
	)
	for i, pool := range pools {
		wg.Go(func() {
			<-start
			applied[i], errs[i] = postgres.Migrate(ctx, pool, discard)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	seen := map[string]int{}
	for _, a := range append(applied[0], applied[1]...) {
		seen[a.String()]++
	}
	want := len(riverVersions(t, pools[0])) + 1
	if len(seen) != want {
		t.Errorf("distinct migrations applied = %d, want %d: %v", len(seen), want, seen)
	}
	for m, n := range seen {
		if n != 1 {
			t.Errorf("migration %s ran %d times, want once", m, n)
		}
	}
	if err := postgres.CheckSchema(ctx, pools[1]); err != nil {
		t.Errorf("CheckSchema = %v, want nil", err)
	}
}

// TestCheckSchema names what is behind, and accepts a schema ahead of this
// binary (a newer version migrated it, then was rolled back).
func TestCheckSchema(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		change   string // SQL run on a migrated database
		wantErr  bool
		wantText string
	}{
		{"current", "", false, ""},
		{"ours not applied", "DROP TABLE customers; DROP TABLE " + postgres.VersionTable, true, "payments-api"},
		{"our version row missing", "DELETE FROM " + postgres.VersionTable + " WHERE version_id = 1", true, "payments-api"},
		{"river behind", "DELETE FROM river_migration WHERE version = (SELECT max(version) FROM river_migration)", true, "river"},
		{"ours ahead", "INSERT INTO " + postgres.VersionTable + " (version_id, is_applied) VALUES (99, true)", false, ""},
		{"river ahead", "INSERT INTO river_migration (line, version) VALUES ('main', 999)", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxTimeout(t)
			pool := open(t, migrated.Database(t), postgres.Options{})
			if tt.change != "" {
				if _, err := pool.Exec(ctx, tt.change); err != nil {
					t.Fatal(err)
				}
			}
			err := postgres.CheckSchema(ctx, pool)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("CheckSchema = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, postgres.ErrSchemaBehind) || !strings.Contains(err.Error(), tt.wantText) ||
				!strings.Contains(err.Error(), "payments-api migrate") {
				t.Fatalf("CheckSchema = %v, want ErrSchemaBehind naming %q and the migrate command", err, tt.wantText)
			}
		})
	}
}

// unreachable opens a pool on port 1 of loopback, where nothing listens.
func unreachable(t *testing.T, opts postgres.Options) *pgxpool.Pool {
	t.Helper()
	return open(t, "postgres://postgres@127.0.0.1:1/db?sslmode=disable", opts)
}

// TestUnreachable: a database that does not answer is an error of its own,
// never mistaken for a schema that is behind.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ctx := ctxTimeout(t)
	pool := unreachable(t, postgres.Options{ConnectTimeout: time.Second})
	if err := postgres.CheckSchema(ctx, pool); err == nil || errors.Is(err, postgres.ErrSchemaBehind) {
		t.Errorf("CheckSchema = %v, want a connection error", err)
	}
	if _, err := postgres.Migrate(ctx, pool, discard); err == nil {
		t.Error("Migrate succeeded against nothing")
	}
	if _, err := postgres.Migrate(ctx, unreachable(t, postgres.Options{MaxConns: 1}), discard); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("Migrate with one connection = %v, want a pool-size error", err)
	}
}

func TestCustomers(t *testing.T) {
	t.Parallel()
	ctx := ctxTimeout(t)
	store := postgres.NewCustomers(open(t, migrated.Database(t), postgres.Options{}))

	got, err := store.Customer(ctx, "user_none")
	if err != nil || got != "" {
		t.Fatalf("Customer of a user with none = %q, %v; want \"\", nil", got, err)
	}

	steps := []struct {
		user, customer string
		wantErr        bool
		wantUser       string // the user's customer afterwards
	}{
		{"user_a", "cus_a", false, "cus_a"},
		{"user_a", "cus_a", false, "cus_a"},  // idempotent
		{"user_a", "cus_a2", false, "cus_a"}, // first writer wins
		{"user_b", "cus_a", true, ""},        // one customer, two users: refused
		{"user_b", "cus_b", false, "cus_b"},
	}
	for _, s := range steps {
		err := store.SaveCustomer(ctx, s.user, s.customer)
		if (err != nil) != s.wantErr {
			t.Fatalf("SaveCustomer(%s, %s) = %v, want error %v", s.user, s.customer, err, s.wantErr)
		}
		if s.wantErr && (strings.Contains(err.Error(), "cus_a") || strings.Contains(err.Error(), "user_b")) {
			t.Errorf("error %q repeats the ids", err)
		}
		got, err := store.Customer(ctx, s.user)
		if err != nil || got != s.wantUser {
			t.Fatalf("after SaveCustomer(%s, %s): Customer = %q, %v; want %q", s.user, s.customer, got, err, s.wantUser)
		}
	}
}

// TestCustomersRace saves two customers for one user at once: both calls
// succeed and one id is kept.
func TestCustomersRace(t *testing.T) {
	t.Parallel()
	ctx := ctxTimeout(t)
	store := postgres.NewCustomers(open(t, migrated.Database(t), postgres.Options{}))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = store.SaveCustomer(ctx, "user_race", "cus_"+string(rune('a'+i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("SaveCustomer %d: %v", i, err)
		}
	}
	got, err := store.Customer(ctx, "user_race")
	if err != nil || len(got) != len("cus_a") || !strings.HasPrefix(got, "cus_") {
		t.Fatalf("Customer = %q, %v; want one of the saved ids", got, err)
	}
}

func TestCustomersDatabaseDown(t *testing.T) {
	t.Parallel()
	ctx := ctxTimeout(t)
	store := postgres.NewCustomers(unreachable(t, postgres.Options{ConnectTimeout: time.Second}))
	if _, err := store.Customer(ctx, "user_a"); err == nil {
		t.Error("Customer succeeded without a database")
	}
	if err := store.SaveCustomer(ctx, "user_a", "cus_a"); err == nil {
		t.Error("SaveCustomer succeeded without a database")
	}
}
