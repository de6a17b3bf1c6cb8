package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/problem"
)

// Outcomes that checkout and the billing portal count alike.
const (
	OutcomeInvalidRequest  = "invalid_request" // 400, 405, 413, 415
	OutcomeRateLimited     = "rate_limited"    // 429
	OutcomeStripeError     = "stripe_error"    // 502
	OutcomeStripeTimeout   = "stripe_timeout"  // 504
	OutcomeCanceled        = "canceled"        // the client went away
	OutcomeUnauthenticated = "unauthenticated" // no identity: a wiring bug, 500
)

// limitedPost is what checkout and the portal share: POST only, an
// authenticated user within the shared per-user limit, the outcome counted,
// a JSON answer or a problem. serve does the rest.
type limitedPost[T any] struct {
	limiter  Limiter
	outcomes map[string]prometheus.Counter
	serve    func(w http.ResponseWriter, r *http.Request, who auth.Identity) (T, string, error)
}

func (h limitedPost[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, outcome, err := h.handle(w, r)
	h.outcomes[outcome].Inc()
	if err != nil {
		problem.Write(w, r, err)
		return
	}
	writeJSON(w, res)
}

func (h limitedPost[T]) handle(w http.ResponseWriter, r *http.Request) (T, string, error) {
	var zero T
	if r.Method != http.MethodPost {
		return zero, OutcomeInvalidRequest, methodNotAllowed(http.MethodPost)
	}
	who, err := userOf(r.Context())
	if err != nil {
		return zero, OutcomeUnauthenticated, err
	}
	// Limit before any work, so that malformed requests count too.
	if err := checkLimit(r.Context(), h.limiter, who.UserID); err != nil {
		return zero, OutcomeRateLimited, err
	}
	return h.serve(w, r, who)
}

// outcomeCounters registers the counter name{outcome} and returns it bound to
// each outcome: every outcome shows from the start (at 0), and counting costs
// no label lookup per request. A nil reg registers nothing.
func outcomeCounters(reg prometheus.Registerer, name, help string, outcomes []string) (map[string]prometheus.Counter, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"outcome"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			return nil, fmt.Errorf("billing: register %s: %w", name, err)
		}
	}
	m := make(map[string]prometheus.Counter, len(outcomes))
	for _, o := range outcomes {
		m[o] = vec.WithLabelValues(o)
	}
	return m, nil
}

// userOf returns the authenticated user. Its absence is a wiring bug (the
// handler mounted without the auth middleware): a 500, never an anonymous
// request to Stripe.
func userOf(ctx context.Context) (auth.Identity, error) {
	id, ok := auth.IdentityFrom(ctx)
	if !ok || id.UserID == "" {
		return auth.Identity{}, errors.New("billing: no authenticated identity in the request context; is the auth middleware mounted in front?")
	}
	return id, nil
}

// writeJSON answers 200 with v. Answers are per user: no cache may keep them.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// An encoding error means the client went away; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// methodNotAllowed is the 405 problem for a handler reached with another
// method than want (the router normally refuses those first).
func methodNotAllowed(want string) error {
	return problem.New(http.StatusMethodNotAllowed, "Use "+want+".").WithHeader("Allow", want)
}

// kindOf classifies a failed Stripe call.
func kindOf(err error) ErrorKind {
	var se *StripeError
	switch {
	case errors.As(err, &se):
		return se.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	return KindUnavailable
}

// upstreamProblem maps a Stripe failure the client can do nothing about to
// its problem and outcome; failed completes "The payment provider could not
// …". Stripe's own text never reaches the client.
func upstreamProblem(err error, failed string) (string, error) {
	switch kindOf(err) {
	case KindTimeout:
		return OutcomeStripeTimeout, problem.Wrap(http.StatusGatewayTimeout, "The payment provider did not answer in time.", err)
	case KindCanceled:
		return OutcomeCanceled, problem.Wrap(http.StatusBadGateway, "The request was canceled before the payment provider answered.", err)
	}
	return OutcomeStripeError, problem.Wrap(http.StatusBadGateway, "The payment provider could not "+failed+".", err)
}
