// Package webhook receives Stripe events: it reads the raw body, verifies the
// Stripe-Signature on those exact bytes, reads the event's id and type, and
// hands events of the configured types on: to a Forwarder (synchronous mode:
// Stripe is answered 200 only once Next.js took the event, 502 otherwise, so
// that Stripe redelivers) or to a Queue (durable mode: 200 once the event is
// committed, 503 when the queue cannot take it).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/tracing"
)

// MaxBodyBytes is the largest event body accepted; larger ones get 413.
const MaxBodyBytes = 512 << 10

// DefaultTolerance is how far a signature timestamp may be in the past or the
// future.
const DefaultTolerance = 300 * time.Second

// DefaultQueueTimeout bounds one Queue.Enqueue call when Options.QueueTimeout
// is zero.
const DefaultQueueTimeout = 5 * time.Second

// QueueRetryAfter is the Retry-After of a 503 when the queue cannot take an
// event. Stripe keeps its own redelivery schedule (minutes, then hours) and
// does not read the header; it is for other senders (a replay tool, the
// Stripe CLI) and for people reading the response. 30 seconds is about what a
// PostgreSQL restart or fail-over takes, so a sooner retry would most likely
// fail again.
const QueueRetryAfter = "30"

// Outcomes, the values of the outcome label of payments_api_webhook_events_total.
const (
	OutcomeForwarded        = "forwarded"
	OutcomeIgnored          = "ignored"
	OutcomeForwardFailed    = "forward_failed"
	OutcomeQueued           = "queued"
	OutcomeDuplicate        = "duplicate"
	OutcomeQueueUnavailable = "queue_unavailable"
	OutcomeInvalidSignature = "invalid_signature"
	OutcomeInvalidPayload   = "invalid_payload"
	OutcomeTooLarge         = "too_large"
)

// otherType is the type label of every event type outside the forward list,
// including those of unverified requests: it keeps the label set bounded.
const otherType = "other"

// Problem details. Each names what is wrong without echoing the header or body.
const (
	detailTooLarge         = "The event body is larger than 512 KiB."
	detailUnreadable       = "The event body could not be read."
	detailNotSigned        = "The Stripe-Signature header is missing."
	detailBadHeader        = "The Stripe-Signature header is malformed."
	detailNoV1             = "The Stripe-Signature header has no v1 signature."
	detailNoMatch          = "No v1 signature in the Stripe-Signature header matches the body."
	detailTooOld           = "The Stripe-Signature timestamp is too old."
	detailInFuture         = "The Stripe-Signature timestamp is in the future."
	detailUnparsable       = "The event body is not a valid Stripe event."
	detailMissingFields    = "The event has no id or type."
	detailForwardFailure   = "The event could not be delivered to the application; it will be accepted on redelivery."
	detailQueueUnavailable = "The event could not be stored for delivery; it will be accepted on redelivery."
)

// Forwarder delivers a verified event's raw body; *forward.Forwarder is one.
type Forwarder interface {
	Forward(ctx context.Context, eventID string, body []byte) (attempts int, err error)
}

// Queue commits a verified event for delivery later (durable mode). Enqueue
// returns once the event is stored, unique by eventID: duplicate is true when
// an event with that id was already queued or delivered. The request id is in
// ctx (requestlog.ID), for the implementation to keep with the event. ctx ends
// after Options.QueueTimeout; the handler answers 503 then, whatever Enqueue
// still does.
type Queue interface {
	Enqueue(ctx context.Context, eventID, eventType string, body []byte) (duplicate bool, err error)
}

// Options configures Handler. Secret is required, and Forwarder or Queue.
type Options struct {
	// Secret is the Stripe endpoint's signing secret (whsec_…).
	Secret string
	// Tolerance is how far the signature timestamp may be in the past or the
	// future (DefaultTolerance when zero).
	Tolerance time.Duration
	// ForwardTypes lists the event types handed on; other types are
	// acknowledged and dropped.
	ForwardTypes []string
	// Forwarder delivers the events of ForwardTypes at once (synchronous mode).
	Forwarder Forwarder
	// Queue, when set, takes the events of ForwardTypes instead of Forwarder
	// (durable mode).
	Queue Queue
	// QueueTimeout bounds one Enqueue (DefaultQueueTimeout when zero).
	QueueTimeout time.Duration
	// Registerer receives payments_api_webhook_events_total; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock of the future-timestamp check (time.Now when nil). The
	// too-old check is stripe-go's, on the wall clock.
	Now func() time.Time
	// Tracer traces the signature check and the queueing of each event; nil
	// (tracing off) traces nothing.
	Tracer *tracing.Tracer
}

// Handler returns the handler of POST /stripe/webhook. It panics when opts lack
// Secret, or both Forwarder and Queue, or when its metric cannot be
// registered: wiring mistakes to be found at start-up, not by Stripe.
func Handler(opts Options) http.Handler {
	if opts.Secret == "" || (opts.Forwarder == nil && opts.Queue == nil) {
		panic("webhook: Options.Secret and one of Options.Forwarder or Options.Queue are required")
	}
	h := &handler{
		secret:       opts.Secret,
		tolerance:    opts.Tolerance,
		forward:      make(map[string]bool, len(opts.ForwardTypes)),
		fwd:          opts.Forwarder,
		queue:        opts.Queue,
		queueTimeout: opts.QueueTimeout,
		now:          opts.Now,
		tracer:       opts.Tracer,
	}
	if h.tolerance <= 0 {
		h.tolerance = DefaultTolerance
	}
	if h.queueTimeout <= 0 {
		h.queueTimeout = DefaultQueueTimeout
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payments_api_webhook_events_total",
		Help: "Stripe webhook requests by event type (forwarded types by name, all others \"other\") and outcome.",
	}, []string{"type", "outcome"})
	handedOn := []string{OutcomeForwarded, OutcomeForwardFailed}
	if h.queue != nil {
		handedOn = []string{OutcomeQueued, OutcomeDuplicate, OutcomeQueueUnavailable}
	}
	for _, t := range opts.ForwardTypes {
		h.forward[t] = true
		for _, o := range handedOn {
			h.events.WithLabelValues(t, o)
		}
	}
	for _, o := range []string{OutcomeIgnored, OutcomeInvalidSignature, OutcomeInvalidPayload, OutcomeTooLarge} {
		h.events.WithLabelValues(otherType, o)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.events)
	}
	return h
}

type handler struct {
	secret       string
	tolerance    time.Duration
	forward      map[string]bool
	fwd          Forwarder
	queue        Queue
	queueTimeout time.Duration
	now          func() time.Time
	events       *prometheus.CounterVec
	tracer       *tracing.Tracer
}

// The success bodies; constants, as they never vary.
const (
	respForwarded = `{"received":true,"forwarded":true}` + "\n"
	respIgnored   = `{"received":true,"forwarded":false}` + "\n"
	respQueued    = `{"received":true,"queued":true}` + "\n"
	respDuplicate = `{"received":true,"queued":true,"duplicate":true}` + "\n"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := readBody(w, r)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			h.count(ctx, otherType, OutcomeTooLarge)
			problem.Write(w, r, problem.Wrap(http.StatusRequestEntityTooLarge, detailTooLarge, err))
			return
		}
		h.count(ctx, otherType, OutcomeInvalidPayload)
		problem.Write(w, r, problem.Wrap(http.StatusBadRequest, detailUnreadable, err))
		return
	}
	if pe := h.verifyTraced(ctx, body, r.Header.Get("Stripe-Signature")); pe != nil {
		h.count(ctx, otherType, OutcomeInvalidSignature)
		problem.Write(w, r, pe)
		return
	}
	ev, err := parseEvent(body)
	if err != nil {
		h.count(ctx, otherType, OutcomeInvalidPayload)
		detail := detailUnparsable
		if errors.Is(err, errMissingFields) {
			detail = detailMissingFields
		}
		problem.Write(w, r, problem.Wrap(http.StatusBadRequest, detail, err))
		return
	}
	requestlog.Add(ctx, slog.String("event_id", ev.ID), slog.String("event_type", ev.Type))
	switch {
	case !h.forward[ev.Type]:
		h.count(ctx, otherType, OutcomeIgnored)
		writeJSON(w, respIgnored)
	case h.queue != nil:
		h.enqueue(w, r, ev, body)
	default:
		h.forwardNow(w, r, ev, body)
	}
}

// forwardNow delivers the event to Next.js before answering Stripe.
func (h *handler) forwardNow(w http.ResponseWriter, r *http.Request, ev event, body []byte) {
	ctx := r.Context()
	attempts, err := h.fwd.Forward(ctx, ev.ID, body)
	requestlog.Add(ctx, slog.Int("forward_attempts", attempts))
	if err != nil {
		h.count(ctx, ev.Type, OutcomeForwardFailed)
		problem.Write(w, r, problem.Wrap(http.StatusBadGateway, detailForwardFailure, err))
		return
	}
	h.count(ctx, ev.Type, OutcomeForwarded)
	writeJSON(w, respForwarded)
}

// enqueue commits the event to the queue before answering Stripe. The answer
// comes within queueTimeout even if Enqueue overstays it: Stripe gives up on
// slow endpoints and redelivers, and the redelivery is de-duplicated.
func (h *handler) enqueue(w http.ResponseWriter, r *http.Request, ev event, body []byte) {
	ctx, cancel := context.WithTimeout(r.Context(), h.queueTimeout)
	defer cancel()
	type answer struct {
		duplicate bool
		err       error
	}
	done := make(chan answer, 1)
	go func() {
		// The span is the queue's: the job stores its context, and each
		// delivery attempt links back to it.
		ctx, span := h.tracer.Start(ctx, "webhook.enqueue", trace.SpanKindProducer)
		span.SetString("stripe.event_id", ev.ID)
		span.SetString("stripe.event_type", ev.Type)
		dup, err := h.queue.Enqueue(ctx, ev.ID, ev.Type, body)
		span.SetBool("duplicate", dup)
		span.End(err)
		done <- answer{dup, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = fmt.Errorf("queue did not answer within %s: %w", h.queueTimeout, ctx.Err())
	}
	switch {
	case a.err != nil:
		h.count(r.Context(), ev.Type, OutcomeQueueUnavailable)
		problem.Write(w, r, problem.Wrap(http.StatusServiceUnavailable, detailQueueUnavailable,
			fmt.Errorf("enqueue: %w", a.err)).WithHeader("Retry-After", QueueRetryAfter))
	case a.duplicate:
		h.count(r.Context(), ev.Type, OutcomeDuplicate)
		writeJSON(w, respDuplicate)
	default:
		h.count(r.Context(), ev.Type, OutcomeQueued)
		writeJSON(w, respQueued)
	}
}

// count records the request's outcome in the metric and on its log line.
func (h *handler) count(ctx context.Context, eventType, outcome string) {
	h.events.WithLabelValues(eventType, outcome).Inc()
	requestlog.Add(ctx, slog.String("webhook_outcome", outcome))
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// readBody reads the raw body, at most MaxBodyBytes. The signature covers the
// exact bytes, so nothing may decode or normalise them before verification.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	rd := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if r.ContentLength < 0 {
		return io.ReadAll(rd)
	}
	// A declared length is exact (net/http ends the body there), so one buffer
	// of that size takes it all; a shorter body is io.ErrUnexpectedEOF.
	// bytes.Buffer.ReadFrom would grow even a presized buffer, as it keeps
	// 512 bytes free before every read.
	b := make([]byte, r.ContentLength)
	_, err := io.ReadFull(rd, b)
	return b, err
}
