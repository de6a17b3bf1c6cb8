// Package webhook receives Stripe events: it reads the raw body, verifies the
// Stripe-Signature with stripe-go, and hands events of the configured types to a
// Forwarder. Stripe is answered 200 only once the event is delivered (or is of a
// type nobody wants); a failed delivery answers 502 so that Stripe redelivers.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
)

// MaxBodyBytes is the largest event body accepted; larger ones get 413.
const MaxBodyBytes = 512 << 10

// DefaultTolerance is how far a signature timestamp may be in the past or the
// future.
const DefaultTolerance = 300 * time.Second

// Outcomes, the values of the outcome label of payments_api_webhook_events_total.
const (
	OutcomeForwarded        = "forwarded"
	OutcomeIgnored          = "ignored"
	OutcomeForwardFailed    = "forward_failed"
	OutcomeInvalidSignature = "invalid_signature"
	OutcomeInvalidPayload   = "invalid_payload"
	OutcomeTooLarge         = "too_large"
)

// otherType is the type label of every event type outside the forward list,
// including those of unverified requests: it keeps the label set bounded.
const otherType = "other"

// Problem details. Each names what is wrong without echoing the header or body.
const (
	detailTooLarge       = "The event body is larger than 512 KiB."
	detailUnreadable     = "The event body could not be read."
	detailNotSigned      = "The Stripe-Signature header is missing."
	detailBadHeader      = "The Stripe-Signature header is malformed."
	detailNoV1           = "The Stripe-Signature header has no v1 signature."
	detailNoMatch        = "No v1 signature in the Stripe-Signature header matches the body."
	detailTooOld         = "The Stripe-Signature timestamp is too old."
	detailInFuture       = "The Stripe-Signature timestamp is in the future."
	detailUnparsable     = "The event body is not a valid Stripe event."
	detailMissingFields  = "The event has no id or type."
	detailForwardFailure = "The event could not be delivered to the application; it will be accepted on redelivery."
)

// Forwarder delivers a verified event's raw body; *forward.Forwarder is one.
type Forwarder interface {
	Forward(ctx context.Context, eventID string, body []byte) (attempts int, err error)
}

// Options configures Handler. Secret and Forwarder are required.
type Options struct {
	// Secret is the Stripe endpoint's signing secret (whsec_…).
	Secret string
	// Tolerance is how far the signature timestamp may be in the past or the
	// future (DefaultTolerance when zero).
	Tolerance time.Duration
	// ForwardTypes lists the event types handed to Forwarder; other types are
	// acknowledged and dropped.
	ForwardTypes []string
	// Forwarder delivers the events of ForwardTypes.
	Forwarder Forwarder
	// Registerer receives payments_api_webhook_events_total; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock of the future-timestamp check (time.Now when nil). The
	// too-old check is stripe-go's, on the wall clock.
	Now func() time.Time
}

// Handler returns the handler of POST /stripe/webhook. It panics when opts lack
// Secret or Forwarder or when its metric cannot be registered: wiring mistakes
// to be found at start-up, not by Stripe.
func Handler(opts Options) http.Handler {
	if opts.Secret == "" || opts.Forwarder == nil {
		panic("webhook: Options.Secret and Options.Forwarder are required")
	}
	h := &handler{
		secret:    opts.Secret,
		tolerance: opts.Tolerance,
		forward:   make(map[string]bool, len(opts.ForwardTypes)),
		fwd:       opts.Forwarder,
		now:       opts.Now,
	}
	if h.tolerance <= 0 {
		h.tolerance = DefaultTolerance
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payments_api_webhook_events_total",
		Help: "Stripe webhook requests by event type (forwarded types by name, all others \"other\") and outcome.",
	}, []string{"type", "outcome"})
	for _, t := range opts.ForwardTypes {
		h.forward[t] = true
		h.events.WithLabelValues(t, OutcomeForwarded)
		h.events.WithLabelValues(t, OutcomeForwardFailed)
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
	secret    string
	tolerance time.Duration
	forward   map[string]bool
	fwd       Forwarder
	now       func() time.Time
	events    *prometheus.CounterVec
}

// The two success bodies; constants, as they never vary.
const (
	respForwarded = `{"received":true,"forwarded":true}` + "\n"
	respIgnored   = `{"received":true,"forwarded":false}` + "\n"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()

	body, err := readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.count(ctx, otherType, OutcomeTooLarge)
			problem.Write(w, r, problem.Wrap(http.StatusRequestEntityTooLarge, detailTooLarge, err))
			return
		}
		h.count(ctx, otherType, OutcomeInvalidPayload)
		problem.Write(w, r, problem.Wrap(http.StatusBadRequest, detailUnreadable, err))
		return
	}

	header := r.Header.Get("Stripe-Signature")
	// stripe-go refuses old timestamps only; a future one is refused here, before
	// the HMAC check just as the library checks age before it.
	if t, ok := signatureTime(header); ok && t.Sub(h.now()) > h.tolerance {
		h.count(ctx, otherType, OutcomeInvalidSignature)
		problem.Write(w, r, problem.Wrap(http.StatusBadRequest, detailInFuture,
			fmt.Errorf("signature timestamp %s ahead of the clock", t.Sub(h.now()).Round(time.Second))))
		return
	}
	event, err := stripewebhook.ConstructEventWithOptions(body, header, h.secret, stripewebhook.ConstructEventOptions{
		Tolerance:                h.tolerance,
		IgnoreAPIVersionMismatch: true, // Stripe endpoints send their own, newer versions
	})
	if err != nil {
		status, detail, outcome := classify(err, header)
		h.count(ctx, otherType, outcome)
		problem.Write(w, r, problem.Wrap(status, detail, err))
		return
	}
	if event.ID == "" || event.Type == "" {
		h.count(ctx, otherType, OutcomeInvalidPayload)
		problem.Write(w, r, problem.New(http.StatusBadRequest, detailMissingFields))
		return
	}

	eventType := string(event.Type)
	requestlog.Add(ctx, slog.String("event_id", event.ID), slog.String("event_type", eventType))
	if !h.forward[eventType] {
		h.count(ctx, otherType, OutcomeIgnored)
		writeJSON(w, respIgnored)
		return
	}

	attempts, err := h.fwd.Forward(ctx, event.ID, body)
	requestlog.Add(ctx, slog.Int("forward_attempts", attempts))
	if err != nil {
		h.count(ctx, eventType, OutcomeForwardFailed)
		problem.Write(w, r, problem.Wrap(http.StatusBadGateway, detailForwardFailure, err))
		return
	}
	h.count(ctx, eventType, OutcomeForwarded)
	writeJSON(w, respForwarded)
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

// classify maps a stripe-go verification error to a response. The library's
// sentinel errors cover the header and signature; any other error comes from
// decoding the event after the signature matched.
func classify(err error, header string) (status int, detail, outcome string) {
	switch {
	case errors.Is(err, stripewebhook.ErrNotSigned):
		return http.StatusBadRequest, detailNotSigned, OutcomeInvalidSignature
	case errors.Is(err, stripewebhook.ErrInvalidHeader):
		return http.StatusBadRequest, detailBadHeader, OutcomeInvalidSignature
	case errors.Is(err, stripewebhook.ErrTooOld):
		if _, ok := signatureTime(header); !ok {
			return http.StatusBadRequest, detailBadHeader, OutcomeInvalidSignature
		}
		return http.StatusBadRequest, detailTooOld, OutcomeInvalidSignature
	case errors.Is(err, stripewebhook.ErrNoValidSignature):
		if !hasV1(header) {
			return http.StatusBadRequest, detailNoV1, OutcomeInvalidSignature
		}
		return http.StatusBadRequest, detailNoMatch, OutcomeInvalidSignature
	default:
		return http.StatusBadRequest, detailUnparsable, OutcomeInvalidPayload
	}
}

// signatureTime returns the header's t= timestamp, read as stripe-go reads it
// (comma-separated key=value pairs, the last t wins), and false when the header
// has none the library would accept.
func signatureTime(header string) (time.Time, bool) {
	var (
		t  int64
		ok bool
	)
	for pair := range strings.SplitSeq(header, ",") {
		k, v, found := strings.Cut(pair, "=")
		if !found || strings.Contains(v, "=") {
			return time.Time{}, false
		}
		if k == "t" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			t, ok = n, true
		}
	}
	return time.Unix(t, 0), ok
}

// hasV1 reports whether the header carries a v1 entry at all; it only refines the
// problem detail, the verdict is stripe-go's.
func hasV1(header string) bool {
	for pair := range strings.SplitSeq(header, ",") {
		if k, v, _ := strings.Cut(pair, "="); k == "v1" && v != "" {
			return true
		}
	}
	return false
}
