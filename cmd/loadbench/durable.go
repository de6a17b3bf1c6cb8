package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"time"

	"github.com/acme/payments-api/internal/deliverytest"
	"github.com/acme/payments-api/internal/pgtest"
)

// Durable delivery's targets: the acknowledgement's p99 at a steady 1,000
// events a second, and the rate at which a backlog (an outage's worth of
// events) drains to a Next.js that answers at once.
const (
	durableRate    = 1_000
	durableBacklog = 50_000
	// drainLimit bounds the wait for the backlog to drain.
	drainLimit = 5 * time.Minute
)

// durableScenarios measure the service with DATABASE_URL set, each on a
// PostgreSQL of its own (pgtest: Debian's server binaries, a throwaway data
// directory, fsync off), migrated by the binary under measurement.
func durableScenarios() []Scenario {
	var drain struct {
		from  int64     // Next.js deliveries counted before the service started
		start time.Time // when the backlog was in place
	}
	return []Scenario{
		{
			Name:      "webhook, durable (queued), at 1,000 events/s",
			Want:      http.StatusOK,
			Rate:      durableRate,
			PerSecond: durableRate + durableRate/10,
			Setup:     durableSetup(0, nil),
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.webhookRequests(forwardedType, n) },
		},
		{
			// Ignored events at a low rate keep the driver busy; what is
			// measured is the drain, reported under the table.
			Name:      "webhook, ignored, while 50,000 queued events drain",
			Want:      http.StatusOK,
			Rate:      100,
			PerSecond: 110,
			Setup: durableSetup(durableBacklog, func(st *Stand) {
				drain.from, drain.start = st.forwarded.Load(), time.Now()
			}),
			Prepare: func(st *Stand, n int) (Requests, error) { return st.webhookRequests(ignoredType, n) },
			Report: func(ctx context.Context, st *Stand, svc *Service) (string, error) {
				deadline := time.Now().Add(drainLimit)
				for st.forwarded.Load()-drain.from < durableBacklog {
					if time.Now().After(deadline) {
						return "", fmt.Errorf("%d of %d events delivered after %v", st.forwarded.Load()-drain.from, durableBacklog, drainLimit)
					}
					select {
					case <-ctx.Done():
						return "", ctx.Err()
					case <-time.After(10 * time.Millisecond): // polling a counter
					}
				}
				took := time.Since(drain.start)
				return fmt.Sprintf("drained %d events in %.1f s, start-up included: %.0f deliveries/s (target ≥ 1,000)",
					durableBacklog, took.Seconds(), float64(durableBacklog)/took.Seconds()), nil
			},
		},
	}
}

// durableSetup starts a PostgreSQL for the scenario, migrates it with the
// service's own `migrate`, puts backlog events in the queue, calls ready
// (when not nil) and hands the service its DATABASE_URL.
func durableSetup(backlog int, ready func(*Stand)) func(context.Context, *Stand) (map[string]string, func(), error) {
	return func(ctx context.Context, st *Stand) (map[string]string, func(), error) {
		db, err := pgtest.Launch()
		if err != nil {
			return nil, nil, err
		}
		dsn := db.URL("postgres")
		migrate := exec.CommandContext(ctx, st.opts.service, "migrate")
		migrate.Env = []string{"DATABASE_URL=" + dsn}
		if out, err := migrate.CombinedOutput(); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("payments-api migrate: %w\n%s", err, out)
		}
		if backlog > 0 {
			if err := deliverytest.Backlog(ctx, dsn, backlog); err != nil {
				db.Close()
				return nil, nil, err
			}
		}
		if ready != nil {
			ready(st)
		}
		return map[string]string{"DATABASE_URL": dsn}, db.Close, nil
	}
}
