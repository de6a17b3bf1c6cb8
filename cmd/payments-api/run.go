package main

import (
	"context"
	"fmt"
	"io"
)

// exitError asks main for a specific exit code; its message, if any, has
// already been written.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `usage:
  payments-api                    serve (configuration from the environment)
  payments-api healthcheck [URL]  exit 0 if URL answers 200 (default http://127.0.0.1:<port of LISTEN_ADDR>/readyz)
  payments-api version            print the version
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
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "payments-api: unknown command %q\n%s", args[1], usage)
		return exitError{code: 2}
	}
}
