package billing

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// DefaultStripeBudget bounds all the Stripe calls of one request to checkout,
// the portal or the subscription state together, when their options name no
// budget. Each call keeps its own timeout (StripeOptions.Timeout) but never
// runs beyond what is left of the budget.
//
// A checkout of a new user makes up to five calls in a row (price, customer
// search, customer creation, subscription list, session), so per-call
// timeouts alone add up to more than a client or the server waits: with a
// budget, a Stripe that is slow on every call costs the user one 504 within
// the budget, never an answer the server can no longer write.
const DefaultStripeBudget = 20 * time.Second

// stripeBudget checks a handler option's budget; 0 means DefaultStripeBudget.
func stripeBudget(handler string, d time.Duration) (time.Duration, error) {
	if d < 0 {
		return 0, fmt.Errorf("billing: %s: negative Stripe budget %v", handler, d)
	}
	if d == 0 {
		return DefaultStripeBudget, nil
	}
	return d, nil
}

// withBudget returns r with a context that ends after budget, from now: every
// Stripe call made for r ends by then, and fails as a timeout (504).
func withBudget(r *http.Request, budget time.Duration) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), budget)
	return r.WithContext(ctx), cancel
}
