package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationsFS holds our own migrations, numbered goose SQL files. River's
// come with River.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// VersionTable is the table where goose records which of our migrations ran;
// River records its own in river_migration.
const VersionTable = "payments_api_schema_migrations"

// migrateLockKey is the PostgreSQL advisory lock that serialises migrations.
// River's migrator takes no lock of its own: two `payments-api migrate` at once
// (a Helm hook retried while the first still runs, two clusters sharing a
// database) would both try to create the same tables. The value is arbitrary,
// chosen to be unlike any other application's key in a shared database.
const migrateLockKey int64 = 0x7061796d_61706921 // "paymapi!"

// ErrSchemaBehind is returned by CheckSchema when migrations are pending.
var ErrSchemaBehind = errors.New("the database schema is behind this version of payments-api; run `payments-api migrate`")

// Applied is one migration that Migrate ran.
type Applied struct {
	Component string // "river" (the queue's tables) or "payments-api" (ours)
	Version   int64
	Name      string
}

func (a Applied) String() string { return fmt.Sprintf("%s %d %s", a.Component, a.Version, a.Name) }

// Migrate brings River's schema and ours up to date and returns what it ran,
// nothing when the schema was current. It holds an advisory lock throughout,
// so a second Migrate at the same time waits and then finds nothing to do.
// Migrations only ever add: a replica of the previous version keeps working
// while they run.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]Applied, error) {
	if pool.Config().MaxConns < 2 {
		// One connection holds the lock while the migrators use another.
		return nil, errors.New("postgres: migrating needs a pool of at least 2 connections")
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return nil, fmt.Errorf("postgres: waiting for the migration lock: %w", err)
	}
	defer func() {
		// An unlock that fails (the connection broke) is harmless: the server
		// releases a session's locks when the session ends, and a broken
		// connection is not returned to the pool.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey)
	}()

	applied, err := migrateRiver(ctx, pool, log)
	if err != nil {
		return applied, err
	}
	ours, err := migrateOurs(ctx, pool)
	return append(applied, ours...), err
}

func migrateRiver(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]Applied, error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("postgres: river migrator: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: river migrations: %w", err)
	}
	var applied []Applied
	for _, v := range res.Versions {
		applied = append(applied, Applied{Component: "river", Version: int64(v.Version), Name: v.Name})
	}
	return applied, nil
}

func migrateOurs(ctx context.Context, pool *pgxpool.Pool) ([]Applied, error) {
	provider, db, err := newProvider(pool)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	results, err := provider.Up(ctx)
	var applied []Applied
	for _, r := range results {
		if r.Error == nil {
			applied = append(applied, Applied{Component: "payments-api", Version: r.Source.Version, Name: migrationName(r.Source.Path)})
		}
	}
	if err != nil {
		return applied, fmt.Errorf("postgres: payments-api migrations: %w", err)
	}
	return applied, nil
}

// CheckSchema returns nil when every migration, River's and ours, has run;
// an error wrapping ErrSchemaBehind, which names what is missing, when some
// have not; another error when the database could not be asked. A schema
// ahead of this binary (a newer version migrated it, then was rolled back) is
// current: migrations only ever add.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("postgres: river migrator: %w", err)
	}
	res, err := migrator.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: checking river's schema: %w", err)
	}
	var missing []string
	if !res.OK {
		missing = append(missing, "river: "+strings.Join(res.Messages, "; "))
	}

	pending, err := oursPending(ctx, pool)
	if err != nil {
		return err
	}
	if pending {
		missing = append(missing, "payments-api: unapplied migrations")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (%s)", ErrSchemaBehind, strings.Join(missing, ", "))
	}
	return nil
}

// oursPending reports whether any of our migrations has not run, including
// all of them when goose's table does not exist yet.
func oursPending(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var table *string
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::text", VersionTable).Scan(&table); err != nil {
		return false, fmt.Errorf("postgres: checking our schema: %w", err)
	}
	if table == nil {
		return true, nil
	}
	provider, db, err := newProvider(pool)
	if err != nil {
		return false, err
	}
	defer db.Close()
	pending, err := provider.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: checking our schema: %w", err)
	}
	return pending, nil
}

// newProvider returns goose's migrator for our migrations, over a database/sql
// handle on pool. The caller closes db, which leaves pool open.
func newProvider(pool *pgxpool.Pool) (*goose.Provider, *sql.DB, error) {
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	return provider, db, nil
}

// migrationName is a migration file's name without its number and extension:
// "00001_customers.sql" is "customers".
func migrationName(path string) string {
	name := strings.TrimSuffix(path[strings.LastIndex(path, "/")+1:], ".sql")
	if _, rest, ok := strings.Cut(name, "_"); ok {
		return rest
	}
	return name
}
