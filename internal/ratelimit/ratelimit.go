// Package ratelimit limits how often one user may start a payment: N requests
// at once, then one every period/N. Memory keeps the limit in this process
// (each replica counts on its own); Redis keeps it in a shared Redis, so that
// all replicas together allow N, not N per replica.
//
// Both answer Allow(ctx, user) (ok bool, retryAfter time.Duration) and never
// fail: when Redis does not answer, the Redis limiter lets the request through
// (fail open), because refusing a paying user is worse than letting an abuser
// through for as long as Redis is down.
package ratelimit

import (
	"fmt"
	"time"
)

// Rate is N requests per period Per, with a burst of N: a user may make N
// requests at once, then one every Per/N.
type Rate struct {
	N   int
	Per time.Duration
}

// interval returns the time it takes to earn one request back.
func (r Rate) interval() time.Duration { return r.Per / time.Duration(r.N) }

// check refuses a rate that limits nothing sensible; turning limits off is
// the caller's choice, made by not using a limiter.
func (r Rate) check() error {
	if r.N < 1 || r.Per <= 0 || r.interval() <= 0 {
		return fmt.Errorf("ratelimit: rate %d per %v; want at least 1 per positive period", r.N, r.Per)
	}
	return nil
}
