package billing

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/acme/payments-api/internal/problem"
)

// Limiter limits requests per user. Checkout and the billing portal share one
// Limiter value, so that a user cannot spend one's allowance on the other.
// Implementations never fail: one that cannot decide allows the request.
type Limiter interface {
	// Allow takes one request of user's allowance. When none is left it
	// returns false and how long until one is.
	Allow(ctx context.Context, user string) (ok bool, retryAfter time.Duration)
}

// checkLimit returns the 429 problem when user is over the limit, else nil. A
// nil Limiter allows everything.
func checkLimit(ctx context.Context, l Limiter, user string) error {
	if l == nil {
		return nil
	}
	ok, wait := l.Allow(ctx, user)
	if ok {
		return nil
	}
	// Retry-After is whole seconds: round up, so that a client that waits
	// exactly that long is let through.
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	return problem.New(http.StatusTooManyRequests, "Too many checkout or billing portal requests; try again later.").
		WithHeader("Retry-After", strconv.Itoa(secs))
}
