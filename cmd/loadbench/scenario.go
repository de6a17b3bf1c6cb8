package main

import (
	"context"
	"net/http"
	"time"
)

// Scenario is one row of the table. To measure something new, add a Scenario to
// scenarios(): a name, what the service needs (Setup, for a database or a
// Redis it starts, and the environment that points the service at it), the
// requests, built before the clock starts, and the status every answer must
// have.
type Scenario struct {
	// Name labels the row; -run matches it.
	Name string
	// Bare sends the requests to the bare net/http server instead of the service.
	Bare bool
	// Setup, when set, runs before the service starts: it may start what the
	// scenario needs and return more environment and a cleanup.
	Setup func(ctx context.Context, st *Stand) (env map[string]string, cleanup func(), err error)
	// Want is the status every answer must have; any other counts as an error.
	Want int
	// Rate, when above zero, sends this many requests per second (an open loop:
	// latency counts from when a request was due, so a stalled service shows;
	// see pace). Zero sends as fast as the connections are answered: a closed
	// loop that keeps the service saturated.
	Rate int
	// PerSecond bounds the requests prepared: PerSecond × (warm-up + duration).
	// A scenario that runs out early is measured over the time it ran.
	PerSecond int
	// Prepare builds n distinct requests (tokens minted, events signed) and
	// returns the function that writes request i, whole, to the end of dst.
	Prepare func(st *Stand, n int) (Requests, error)
	// Report, when set, runs after the measurement while the service still
	// runs; what it returns is printed under the table (a backlog's drain rate…).
	Report func(ctx context.Context, st *Stand, svc *Service) (string, error)
}

// Requests appends the raw HTTP/1.1 request number i to dst.
type Requests func(dst []byte, i int) []byte

// The event types of the webhook scenarios: one the service forwards by
// default, one it acknowledges and drops.
const (
	forwardedType = "checkout.session.completed"
	ignoredType   = "customer.created"
)

// scenarios lists every scenario, in the order of the table. The bare server
// comes first and last: the others are compared with the mean of the two, so
// that a burst of other work on the machine during one of them shows.
func scenarios() []Scenario {
	bare := func(name string) Scenario {
		return Scenario{
			Name:      name,
			Bare:      true,
			Want:      http.StatusOK,
			PerSecond: 80_000,
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.webhookRequests(ignoredType, n) },
		}
	}
	all := []Scenario{
		bare("bare net/http (same request as webhook, ignored)"),
		{
			Name:      "webhook, ignored type",
			Want:      http.StatusOK,
			PerSecond: 50_000,
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.webhookRequests(ignoredType, n) },
		},
		{
			Name:      "webhook, forwarded (synchronous)",
			Want:      http.StatusOK,
			PerSecond: 30_000,
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.webhookRequests(forwardedType, n) },
		},
		{
			// Saturated: every connection has a request waiting, so a
			// request's latency is mostly its wait behind the others, and
			// p99/p50 says how evenly the service takes its turns.
			Name:      "checkout, 401 (bad signature)",
			Want:      http.StatusUnauthorized,
			PerSecond: 40_000,
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.checkoutRequests(n, false) },
		},
		{
			// The same at a fixed rate well below saturation: the latency of
			// the path itself, without the queueing that saturation adds.
			Name:      "checkout, 401, at 2,000 req/s",
			Want:      http.StatusUnauthorized,
			Rate:      2_000,
			PerSecond: 2_100,
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.checkoutRequests(n, false) },
		},
		{
			Name:      "checkout, valid token",
			Want:      http.StatusOK,
			PerSecond: 6_000,
			Prepare:   func(st *Stand, n int) (Requests, error) { return st.checkoutRequests(n, true) },
		},
	}
	all = append(all, durableScenarios()...)
	return append(all, bare("bare net/http, again"))
}

// prepared is how many requests a scenario builds for a run of d.
func (sc Scenario) prepared(d time.Duration) int {
	return max(1, int(float64(sc.PerSecond)*d.Seconds()))
}
