package billing

import (
	"context"
	"fmt"
	"strings"
)

// Stripe is the part of the Stripe API that checkout needs: the "Stripe port".
// StripeClient implements it with stripe-go; nothing else in the package knows
// stripe-go, so a new stripe-go major version changes one file.
//
// Implementations bound every call with their own timeout, because the price
// cache detaches a shared lookup from the cancellation of the request that
// started it. Failures should be *StripeError so that the handler can tell a
// missing price from an outage.
type Stripe interface {
	Price(ctx context.Context, id string) (Price, error)
	CreateCheckoutSession(ctx context.Context, p SessionParams) (Session, error)
}

// Price is what checkout needs to know about a Stripe Price.
type Price struct {
	ID        string
	Active    bool
	Recurring bool // a subscription price; otherwise a one-time payment
}

// Mode is the Checkout Session mode.
type Mode string

// The session modes checkout uses.
const (
	ModePayment      Mode = "payment"
	ModeSubscription Mode = "subscription"
)

// SessionParams describes the Checkout Session to create, for one line item.
type SessionParams struct {
	Mode              Mode
	PriceID           string
	Quantity          int64
	SuccessURL        string // passed on verbatim: may hold {CHECKOUT_SESSION_ID}
	CancelURL         string
	ClientReferenceID string
	CustomerEmail     string            // empty: Checkout asks for it
	Metadata          map[string]string // on the session
	// SubscriptionMetadata goes on the subscription the session creates; only
	// used in subscription mode.
	SubscriptionMetadata map[string]string
	IdempotencyKey       string // empty: the adapter makes one per call
}

// Session is a created Checkout Session.
type Session struct {
	ID  string
	URL string
}

// ErrorKind classifies a failed Stripe call by what the caller can do about it.
type ErrorKind int

// The kinds of Stripe failure.
const (
	// KindUnavailable: Stripe could not be reached, failed (5xx), refused our key
	// (401/403), limited us (429) or answered something unexpected.
	KindUnavailable ErrorKind = iota
	// KindTimeout: no answer within the timeout.
	KindTimeout
	// KindCanceled: the caller gave up (the client went away).
	KindCanceled
	// KindNotFound: Stripe says the object does not exist (resource_missing).
	KindNotFound
	// KindInvalidRequest: Stripe refused the parameters (any other 4xx).
	KindInvalidRequest
	// KindIdempotencyConflict: the idempotency key was used with other parameters.
	KindIdempotencyConflict
)

var kindNames = [...]string{"unavailable", "timeout", "canceled", "not found", "invalid request", "idempotency conflict"}

func (k ErrorKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// StripeError is a failed Stripe call. Its text is for the log only and holds
// Stripe's status, error type, code, parameter and request id, but not Stripe's
// message, which can echo inputs such as the customer's email.
type StripeError struct {
	Kind      ErrorKind
	Op        string // "get price", "create checkout session"
	Status    int    // HTTP status Stripe answered; 0 when there was no answer
	Type      string // Stripe's error type, e.g. invalid_request_error
	Code      string // Stripe's error code, e.g. resource_missing
	Param     string
	RequestID string
	Err       error // transport or context failure, when there was no Stripe answer
}

func (e *StripeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stripe %s: %s", e.Op, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d", e.Status)
		for _, kv := range [][2]string{{"type", e.Type}, {"code", e.Code}, {"param", e.Param}, {"request_id", e.RequestID}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, ", %s %s", kv[0], kv[1])
			}
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *StripeError) Unwrap() error { return e.Err }
