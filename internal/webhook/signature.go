package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/payments-api/internal/problem"
)

// verifyTraced is verify in a span of its own, when tracing is on.
func (h *handler) verifyTraced(ctx context.Context, body []byte, header string) *problem.Error {
	_, span := h.tracer.Start(ctx, "webhook.verify_signature", trace.SpanKindInternal)
	pe := h.verify(body, header)
	if pe != nil {
		span.End(pe)
		return pe
	}
	span.End(nil)
	return nil
}

// verify checks the Stripe-Signature header against the raw body, as Stripe's
// own library does, and refuses a timestamp from the future as well as one too
// old: a captured request must not stay replayable for longer than the
// tolerance, whichever way the sender's clock is off. It returns the 400 to
// answer, or nil.
func (h *handler) verify(body []byte, header string) *problem.Error {
	// stripe-go refuses old timestamps only; a future one is refused here,
	// before the HMAC check just as the library checks age before it.
	if t, ok := signatureTime(header); ok && t.Sub(h.now()) > h.tolerance {
		return problem.Wrap(http.StatusBadRequest, detailInFuture,
			fmt.Errorf("signature timestamp %s ahead of the clock", t.Sub(h.now()).Round(time.Second)))
	}
	err := stripewebhook.ValidatePayloadWithTolerance(body, header, h.secret, h.tolerance)
	if err == nil {
		return nil
	}
	return problem.Wrap(http.StatusBadRequest, signatureDetail(err, header), err)
}

// signatureDetail says what is wrong with the header, from stripe-go's
// sentinel errors.
func signatureDetail(err error, header string) string {
	switch {
	case errors.Is(err, stripewebhook.ErrNotSigned):
		return detailNotSigned
	case errors.Is(err, stripewebhook.ErrTooOld):
		// stripe-go reads a header without t= as timestamp zero, which is
		// "too old"; it is a malformed header.
		if _, ok := signatureTime(header); !ok {
			return detailBadHeader
		}
		return detailTooOld
	case errors.Is(err, stripewebhook.ErrNoValidSignature):
		if !hasV1(header) {
			return detailNoV1
		}
		return detailNoMatch
	default: // stripewebhook.ErrInvalidHeader
		return detailBadHeader
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
