// Command payments-api serves the payments API between the Next.js frontend,
// Clerk and Stripe. Configuration comes from environment variables only; see the
// README.
//
//	payments-api                    serve
//	payments-api healthcheck [URL]  exit 0 when URL (default the local /readyz) answers 200
//	payments-api version            print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/acme/payments-api/internal/ratelimit"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	// go-redis logs on its own, as plain text on stderr, through one logger per
	// process; the rate limiter reports Redis failures itself, as JSON once a
	// minute, so the library's lines are dropped. Only main touches
	// process-wide state, hence here and not in run.
	ratelimit.RouteClientLogs(slog.New(slog.DiscardHandler))
	err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	var exit exitError
	if !errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "payments-api: %v\n", err)
		exit.code = 1
	}
	os.Exit(exit.code)
}
