package main

import (
	"context"
	"fmt"
	"io"

	"github.com/acme/payments-api/internal/config"
)

// exitError asks main for a specific exit code; its message, if any, has
// already been written.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `usage:
  payments-api                    serve (configuration from the environment)
  payments-api healthcheck [URL]  exit 0 if URL answers 200 (default http://127.0.0.1:<port of LISTEN_ADDR>/readyz)
  payments-api version            print the version
  payments-api migrate            bring the database schema up to date (DATABASE_URL)
  payments-api events list|retry  list queued events, queue them again (DATABASE_URL; events -h)
`

// run is the whole program, minus os.Exit: main passes the process's
// arguments, environment and output streams, tests pass their own.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return serve(ctx, getenv, stdout, stderr)
	}
	switch args[1] {
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "healthcheck":
		return healthcheck(ctx, args[2:], getenv, stderr)
	case "migrate":
		if len(args) > 2 {
			fmt.Fprintf(stderr, "payments-api migrate: unexpected argument %q\n%s", args[2], usage)
			return exitError{code: 2}
		}
		dsn, err := databaseURL(getenv, stderr)
		if err != nil {
			return err
		}
		return migrate(ctx, dsn, reachTimeout, stdout, stderr)
	case "events":
		dsn, err := databaseURL(getenv, stderr)
		if err != nil {
			return err
		}
		return events(ctx, args[2:], dsn, reachTimeout, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "payments-api: unknown command %q\n%s", args[1], usage)
		return exitError{code: 2}
	}
}

// databaseURL reads DATABASE_URL for the commands that need only the
// database; a problem is printed and is exit status 2.
func databaseURL(getenv func(string) string, stderr io.Writer) (string, error) {
	u, err := config.DatabaseURL(getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return "", exitError{code: 2}
	}
	return u.Value(), nil
}
