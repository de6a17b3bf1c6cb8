package billing

import (
	"context"
	"fmt"
	"strings"
)

// Stripe is the part of the Stripe API that billing needs: the "Stripe port".
// StripeClient implements it with stripe-go; nothing else in the package knows
// stripe-go, so a new stripe-go major version changes one file.
//
// Implementations bound every call with their own timeout, because the price
// cache detaches a shared lookup from the cancellation of the request that
// started it. Failures should be *StripeError so that the handlers can tell a
// missing object from an outage.
type Stripe interface {
	Price(ctx context.Context, id string) (Price, error)
	CreateCheckoutSession(ctx context.Context, p SessionParams) (Session, error)
	// SearchCustomers runs a Customer Search query (Stripe's search query
	// language) and returns the first page of matches.
	SearchCustomers(ctx context.Context, query string) ([]Customer, error)
	CreateCustomer(ctx context.Context, p CustomerParams) (Customer, error)
	// Subscriptions returns one page of the customer's subscriptions, newest
	// first.
	Subscriptions(ctx context.Context, q SubscriptionQuery) ([]Subscription, error)
	// CreatePortalSession creates a billing portal session and returns its URL.
	CreatePortalSession(ctx context.Context, p PortalParams) (string, error)
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
	CustomerID        string            // cus_…
	Metadata          map[string]string // on the session
	// AllowPromotionCodes shows Checkout's promotion code field.
	AllowPromotionCodes bool
	// SubscriptionMetadata and TrialDays (0: no trial) apply to the
	// subscription the session creates; only used in subscription mode.
	SubscriptionMetadata map[string]string
	TrialDays            int64
	IdempotencyKey       string // empty: the adapter makes one per call
}

// Session is a created Checkout Session.
type Session struct {
	ID  string
	URL string
}

// Customer is a Stripe Customer.
type Customer struct {
	ID      string
	Created int64 // unix seconds
}

// CustomerParams describes the Customer to create.
type CustomerParams struct {
	Email          string // empty: none
	Metadata       map[string]string
	IdempotencyKey string
}

// MaxPage is the most objects Stripe lists in one page.
const MaxPage = 100

// SubscriptionQuery selects a customer's subscriptions.
type SubscriptionQuery struct {
	CustomerID string
	// IncludeCanceled lists every status; otherwise canceled subscriptions
	// are left out, as Stripe does by default.
	IncludeCanceled bool
	Limit           int // 1 to MaxPage
}

// SubscriptionStatus is a Stripe Subscription's status.
type SubscriptionStatus string

// The statuses of a Stripe Subscription.
const (
	StatusActive            SubscriptionStatus = "active"
	StatusTrialing          SubscriptionStatus = "trialing"
	StatusPastDue           SubscriptionStatus = "past_due"
	StatusUnpaid            SubscriptionStatus = "unpaid"
	StatusCanceled          SubscriptionStatus = "canceled"
	StatusIncomplete        SubscriptionStatus = "incomplete"
	StatusIncompleteExpired SubscriptionStatus = "incomplete_expired"
	StatusPaused            SubscriptionStatus = "paused"
)

// Live reports whether the subscription still bills the user or is about to:
// such a user changes plans in the billing portal rather than subscribing a
// second time. An incomplete subscription never started (its first payment
// is pending) and a paused one bills nothing, so neither counts.
func (s SubscriptionStatus) Live() bool {
	switch s {
	case StatusActive, StatusTrialing, StatusPastDue, StatusUnpaid:
		return true
	}
	return false
}

// Subscription is what the service tells about a Stripe Subscription. Times
// are unix seconds, 0 when there is none.
type Subscription struct {
	ID                string
	Status            SubscriptionStatus
	Created           int64
	PriceID           string // of the first item; "" when there is none
	Quantity          int64  // of the first item; 0 when none or metered
	CurrentPeriodEnd  int64
	CancelAtPeriodEnd bool
	TrialEnd          int64
}

// PortalParams describes the billing portal session to create.
type PortalParams struct {
	CustomerID    string
	ReturnURL     string
	Configuration string // bpc_…; empty: the account's default
}

// ErrorKind classifies a failed Stripe call by what the caller can do about it.
type ErrorKind int

// The kinds of Stripe failure.
const (
	// KindUnavailable: Stripe could not be reached, failed (5xx), refused our key
	// (401/403), limited us (429), was still busy with the same idempotency
	// key (409) or answered something unexpected.
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
