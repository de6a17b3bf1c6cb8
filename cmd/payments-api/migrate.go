package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/payments-api/internal/postgres"
)

// reachTimeout is how long the database subcommands try to reach the database
// before they give up (exit 1): long enough for a database that is starting,
// short enough for a Helm hook or a person to hear of a wrong host.
const reachTimeout = 30 * time.Second

// migrate runs `payments-api migrate`: River's and our migrations, then exit.
// It prints what it applied (or that nothing was needed) on stdout and its log
// on stderr. Running it again, or from two places at once, is safe.
// reach is how long to try reaching the database (reachTimeout in production).
func migrate(ctx context.Context, dsn string, reach time.Duration, stdout, stderr io.Writer) error {
	log := subcommandLogger(stderr)
	pool, err := openReachable(ctx, dsn, "payments-api migrate", reach, log)
	if err != nil {
		return err
	}
	defer pool.Close()

	applied, err := postgres.Migrate(ctx, pool, log)
	for _, a := range applied {
		fmt.Fprintf(stdout, "applied %s\n", a)
	}
	if err != nil {
		log.Error("migration failed", slog.Any("error", err))
		return exitError{code: 1}
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "the schema is up to date; nothing to apply")
	}
	return nil
}

// openReachable opens a pool on dsn and waits until the database answers,
// trying again every second for reach. A database still unreachable then is
// logged and is exit status 1.
func openReachable(ctx context.Context, dsn, app string, reach time.Duration, log *slog.Logger) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, dsn, postgres.Options{ApplicationName: app, MaxConns: 4})
	if err != nil {
		log.Error("DATABASE_URL cannot be used", slog.Any("error", err))
		return nil, exitError{code: 2}
	}
	reachCtx, cancel := context.WithTimeout(ctx, reach)
	defer cancel()
	for {
		err := pool.Ping(reachCtx)
		if err == nil {
			return pool, nil
		}
		select {
		case <-reachCtx.Done():
			pool.Close()
			if ctx.Err() == nil && errors.Is(reachCtx.Err(), context.DeadlineExceeded) {
				log.Error("the database did not answer", slog.Duration("waited", reach), slog.Any("error", err))
			}
			return nil, exitError{code: 1}
		case <-time.After(time.Second):
			log.Info("waiting for the database", slog.Any("error", err))
		}
	}
}

// subcommandLogger writes a subcommand's log lines on stderr as text: a
// person or a Helm hook's log reads them, not a log pipeline.
func subcommandLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
