package forward

import (
	"context"
	"time"
)

// Attempt makes one delivery attempt of body to Next.js, with eventID as its
// Idempotency-Key and requestID (when not empty) as its X-Request-ID: durable
// mode, where the queue owns the retries. The attempt is bounded by the
// forward timeout and ctx. It returns nil once Next.js answered 2xx and an
// *Error otherwise: any other status, redirects and every 4xx included (over
// the queue's weeks of retries a misconfigured route or secret gets fixed, and
// the event is not lost meanwhile), and any network error or timeout. A
// Retry-After from Next.js is not waited for here; the queue's backoff decides
// when the next attempt comes.
//
// Each attempt counts in payments_api_webhook_forward_attempts_total and
// payments_api_webhook_forward_duration_seconds, as in synchronous mode.
func (f *Forwarder) Attempt(ctx context.Context, eventID, requestID string, body []byte) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	res := f.attempt(ctx, eventID, requestID, body)
	f.attempts.WithLabelValues(res.outcome).Inc()
	if res.outcome == OutcomeSuccess {
		f.duration.WithLabelValues("success").Observe(time.Since(start).Seconds())
		return nil
	}
	f.duration.WithLabelValues("failure").Observe(time.Since(start).Seconds())
	return &Error{Attempts: 1, Outcome: res.outcome, Status: res.status, Err: res.err}
}
