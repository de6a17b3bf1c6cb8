// Package forward delivers verified Stripe events to the Next.js application.
//
// Each attempt POSTs the event's exact raw bytes, re-signed in Stripe's own scheme
// with the Next.js secret, so that a stock stripe.webhooks.constructEvent on the
// Next.js side verifies it. Attempts are retried with exponential backoff and full
// jitter on network errors, 408, 429 and 5xx, all within one time budget and the
// caller's context: when Stripe hangs up, retries stop at once.
package forward

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/requestlog"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultInitialBackoff = 200 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
	DefaultUserAgent      = "payments-api"
)

// drainLimit bounds how much of a response body is read so that the connection
// can be reused; a receiver sending more than this costs us a new connection,
// not unbounded reading.
const drainLimit = 64 << 10

// Attempt outcomes, the values of the outcome label of
// payments_api_webhook_forward_attempts_total.
const (
	OutcomeSuccess         = "success"          // 2xx
	OutcomeRetryableStatus = "retryable_status" // 408, 429, 5xx
	OutcomeRejected        = "rejected"         // any other 4xx (or 1xx): not retried
	OutcomeRedirected      = "redirected"       // 3xx: redirects are not followed, not retried
	OutcomeNetworkError    = "network_error"    // no response: dial, reset, TLS…
	OutcomeTimeout         = "timeout"          // the forward budget ran out during the attempt
	OutcomeCanceled        = "canceled"         // the caller went away (Stripe closed the connection)
)

// Options configures a Forwarder. URL and Secret are required.
type Options struct {
	// URL is the Next.js webhook route, an absolute http(s) URL
	// (NEXTJS_WEBHOOK_URL, checked by the configuration).
	URL *url.URL
	// Secret signs every forwarded event; the HMAC key is the whole string.
	Secret string
	// Timeout is the whole budget for one event, retries and backoff included
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// Client sends the requests. When nil, a client with a tuned, pooled transport
	// (NewTransport) is built. Whatever client is given, redirects are never followed.
	Client *http.Client
	// InitialBackoff and MaxBackoff bound the exponential backoff between attempts
	// (DefaultInitialBackoff and DefaultMaxBackoff when zero). Each wait is drawn
	// uniformly from [0, backoff) ("full jitter").
	InitialBackoff, MaxBackoff time.Duration
	// UserAgent is sent with every attempt (DefaultUserAgent when empty).
	UserAgent string
	// Registerer receives the forwarder's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now gives the signing timestamp (time.Now when nil).
	Now func() time.Time
}

// Forwarder delivers events to one URL. It is safe for concurrent use and meant
// to be shared, so that connections to Next.js are reused.
type Forwarder struct {
	url       string
	secret    string
	timeout   time.Duration
	client    *http.Client
	initial   time.Duration
	max       time.Duration
	userAgent string
	now       func() time.Time

	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns a Forwarder for opts, registering its metrics
// (payments_api_webhook_forward_attempts_total{outcome} and
// payments_api_webhook_forward_duration_seconds{outcome}) on opts.Registerer.
func New(opts Options) (*Forwarder, error) {
	if opts.URL == nil {
		return nil, errors.New("forward: URL is required")
	}
	if opts.Secret == "" {
		return nil, errors.New("forward: Secret is required")
	}
	if opts.Timeout < 0 || opts.InitialBackoff < 0 || opts.MaxBackoff < 0 {
		return nil, errors.New("forward: durations must not be negative")
	}
	f := &Forwarder{
		url:       opts.URL.String(),
		secret:    opts.Secret,
		timeout:   cmp.Or(opts.Timeout, DefaultTimeout),
		initial:   cmp.Or(opts.InitialBackoff, DefaultInitialBackoff),
		max:       cmp.Or(opts.MaxBackoff, DefaultMaxBackoff),
		userAgent: cmp.Or(opts.UserAgent, DefaultUserAgent),
		now:       opts.Now,
	}
	if f.max < f.initial {
		return nil, errors.New("forward: MaxBackoff must not be below InitialBackoff")
	}
	if f.now == nil {
		f.now = time.Now
	}

	var c http.Client
	if opts.Client != nil {
		c = *opts.Client // a copy: the caller's client keeps its own redirect policy
	} else {
		c = http.Client{Transport: NewTransport()}
	}
	// A redirect is a misconfigured URL (http→https, a trailing slash): following
	// it would re-POST the event somewhere nobody verified. It fails, loudly.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f.client = &c

	f.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payments_api_webhook_forward_attempts_total",
		Help: "Attempts to deliver a Stripe event to Next.js, by outcome.",
	}, []string{"outcome"})
	f.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "payments_api_webhook_forward_duration_seconds",
		Help:    "Time to deliver one Stripe event to Next.js, retries included, by outcome (success or failure).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
	}, []string{"outcome"})
	for _, o := range []string{OutcomeSuccess, OutcomeRetryableStatus, OutcomeRejected, OutcomeRedirected, OutcomeNetworkError, OutcomeTimeout, OutcomeCanceled} {
		f.attempts.WithLabelValues(o)
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{f.attempts, f.duration} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("forward: registering metrics: %w", err)
			}
		}
	}
	return f, nil
}

// NewTransport is the transport a Forwarder uses when Options.Client is nil;
// a caller that wraps it (to trace each attempt, say) passes it in a Client of
// its own. It is http.DefaultTransport with a larger idle pool per host and
// shorter connection set-up. Every event goes to the same Next.js host, and the
// default of 2 idle connections would make a burst of deliveries dial again and
// again. A dial or TLS handshake that hangs gives up after 5 s (not 30 s and
// 10 s), leaving room for a retry within the 10 s forward budget.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.MaxIdleConns = 64
	t.MaxIdleConnsPerHost = 32
	return t
}

// CloseIdleConnections closes the forwarder's idle pooled connections.
func (f *Forwarder) CloseIdleConnections() { f.client.CloseIdleConnections() }

// Error describes a failed delivery. Its text holds the last attempt's outcome
// and status, never the payload or the receiver's answer body.
type Error struct {
	Attempts int
	// Outcome is the last attempt's outcome, or timeout or canceled when the
	// budget or the caller ran out while waiting to retry after it.
	Outcome string
	Status  int   // HTTP status of the last response, 0 when there was none
	Err     error // the transport or context error that ended the delivery, if any
	reason  string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("forward failed after %d attempt(s): %s", e.Attempts, e.Outcome)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (status %d)", e.Status)
	}
	if e.reason != "" {
		msg += ": " + e.reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Forward delivers body, the raw event, to Next.js with eventID as its
// Idempotency-Key. It returns the number of attempts made and nil once Next.js
// answered 2xx, or an *Error. The budget is the smaller of ctx and the forward
// timeout; ctx must be the inbound request's context (never a process-wide one
// cancelled at SIGTERM), so that an in-flight delivery survives a graceful
// shutdown and stops as soon as Stripe hangs up.
func (f *Forwarder) Forward(ctx context.Context, eventID string, body []byte) (attempts int, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	defer func() {
		outcome := "success"
		if err != nil {
			outcome = "failure"
		}
		f.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	}()

	requestID := requestlog.ID(ctx)
	backoff := f.initial
	for {
		attempts++
		res := f.attempt(ctx, eventID, requestID, body)
		f.attempts.WithLabelValues(res.outcome).Inc()
		if res.outcome == OutcomeSuccess {
			return attempts, nil
		}
		fail := &Error{Attempts: attempts, Outcome: res.outcome, Status: res.status, Err: res.err}
		if !res.retryable {
			return attempts, fail
		}

		// Full jitter: spreads the retries of many events failing together.
		wait := time.Duration(rand.Int64N(int64(backoff)))
		backoff = min(2*backoff, f.max)
		if res.retryAfter > wait {
			wait = res.retryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			// No attempt fits in what is left: fail now rather than sleep into the
			// deadline. Stripe redelivers the event later.
			fail.reason = "budget exhausted before the next attempt"
			if res.retryAfter > 0 {
				fail.reason = "Retry-After beyond the budget"
			}
			return attempts, fail
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			fail.Outcome, fail.Err = ctxOutcome(ctx), context.Cause(ctx)
			fail.reason = "stopped while waiting to retry"
			return attempts, fail
		case <-timer.C:
		}
	}
}

type result struct {
	outcome    string
	status     int
	retryable  bool
	retryAfter time.Duration
	err        error
}

func (f *Forwarder) attempt(ctx context.Context, eventID, requestID string, body []byte) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return result{outcome: OutcomeRejected, err: err}
	}
	// Signed per attempt, so a slow retry never carries a stale timestamp.
	t := f.now()
	sig := webhook.ComputeSignature(t, body, f.secret)
	req.Header["Stripe-Signature"] = []string{"t=" + strconv.FormatInt(t.Unix(), 10) + ",v1=" + hex.EncodeToString(sig)}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Idempotency-Key"] = []string{eventID}
	req.Header["User-Agent"] = []string{f.userAgent}
	if requestID != "" {
		req.Header["X-Request-Id"] = []string{requestID}
	}

	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{outcome: ctxOutcome(ctx), err: context.Cause(ctx)}
		}
		return result{outcome: OutcomeNetworkError, retryable: true, err: err}
	}
	// Drained and closed, bounded, so the connection goes back to the pool.
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()

	res := result{status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		res.outcome = OutcomeSuccess
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		res.outcome, res.retryable = OutcomeRetryableStatus, true
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case s >= 300 && s < 400:
		res.outcome = OutcomeRedirected
	default:
		res.outcome = OutcomeRejected
	}
	return res
}

func ctxOutcome(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return OutcomeTimeout
	}
	return OutcomeCanceled
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP-date, as a
// duration from now; 0 when absent, invalid or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Anything beyond a day is as good as "never" for our budget; capping
		// also keeps the multiplication from overflowing.
		return time.Duration(min(secs, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
