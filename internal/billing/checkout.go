package billing

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
)

// DefaultPriceTTL is how long a looked-up Stripe Price is trusted.
const DefaultPriceTTL = 10 * time.Minute

// MaxTrialDays bounds CheckoutOptions.TrialDays, as Stripe does.
const MaxTrialDays = 730

// Outcomes counted in payments_api_checkout_sessions_total{outcome}, beside
// the shared ones (OutcomeInvalidRequest…).
const (
	OutcomeCreated             = "created"
	OutcomeIdempotencyConflict = "idempotency_conflict" // 409
	OutcomeAlreadySubscribed   = "already_subscribed"   // 409
)

var checkoutOutcomes = []string{
	OutcomeCreated, OutcomeInvalidRequest, OutcomeRateLimited, OutcomeIdempotencyConflict,
	OutcomeAlreadySubscribed, OutcomeStripeError, OutcomeStripeTimeout, OutcomeCanceled,
	OutcomeUnauthenticated,
}

// CheckoutOptions configures CheckoutHandler.
type CheckoutOptions struct {
	// Stripe is the Stripe port, normally a *StripeClient.
	Stripe Stripe
	// Customers finds or creates the user's Stripe customer.
	Customers *Customers
	// Limiter limits checkouts per user; nil means no limit. Pass the
	// portal's Limiter: the two share a user's allowance.
	Limiter Limiter
	// PriceIDs are the prices a user may buy; any other price_id is a 400.
	PriceIDs []string
	// Origins are the origins that return URLs a client sends may point to;
	// normally the CORS allowed origins.
	Origins origin.Set
	// SuccessURL and CancelURL are used when the request names none. They are
	// taken as given, checked by the caller; SuccessURL may hold
	// {CHECKOUT_SESSION_ID}.
	SuccessURL, CancelURL string
	// AllowPromotionCodes shows Checkout's promotion code field.
	AllowPromotionCodes bool
	// TrialDays is the free trial of subscription prices, 0 to MaxTrialDays;
	// 0 means none.
	TrialDays int
	// SingleSubscription refuses a subscription checkout (409) to a user who
	// already has a live subscription (SubscriptionStatus.Live).
	SingleSubscription bool
	// PriceTTL is how long a Stripe Price is cached; 0 means DefaultPriceTTL.
	PriceTTL time.Duration
	// Registerer receives payments_api_checkout_sessions_total; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Now is the clock of the price cache; nil means time.Now.
	Now func() time.Time
}

type checkoutHandler struct {
	stripe    Stripe
	customers *Customers
	prices    *priceCache
	priceIDs  map[string]struct{}
	origins   origin.Set
	success   string
	cancel    string
	promo     bool
	trialDays int64
	single    bool
}

// CheckoutHandler returns the POST /stripe/checkout handler. It must run behind the
// auth middleware, which puts the caller's auth.Identity in the context. An
// error means invalid options or a metric that cannot be registered.
func CheckoutHandler(o CheckoutOptions) (http.Handler, error) {
	switch {
	case o.Stripe == nil:
		return nil, errors.New("billing: checkout: no Stripe port")
	case o.Customers == nil:
		return nil, errors.New("billing: checkout: no customer rule")
	case len(o.PriceIDs) == 0:
		return nil, errors.New("billing: checkout: no price ids")
	case o.Origins.Len() == 0:
		return nil, errors.New("billing: checkout: no allowed origins")
	case o.SuccessURL == "" || o.CancelURL == "":
		return nil, errors.New("billing: checkout: no default success or cancel URL")
	case o.TrialDays < 0 || o.TrialDays > MaxTrialDays:
		return nil, fmt.Errorf("billing: checkout: %d trial days, want 0 to %d", o.TrialDays, MaxTrialDays)
	case o.PriceTTL < 0:
		return nil, fmt.Errorf("billing: checkout: negative price TTL %v", o.PriceTTL)
	}
	h := &checkoutHandler{
		stripe:    o.Stripe,
		customers: o.Customers,
		priceIDs:  make(map[string]struct{}, len(o.PriceIDs)),
		origins:   o.Origins,
		success:   o.SuccessURL,
		cancel:    o.CancelURL,
		promo:     o.AllowPromotionCodes,
		trialDays: int64(o.TrialDays),
		single:    o.SingleSubscription,
	}
	for _, id := range o.PriceIDs {
		if id == "" {
			return nil, errors.New("billing: checkout: empty price id")
		}
		h.priceIDs[id] = struct{}{}
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	h.prices = newPriceCache(o.Stripe, cmp.Or(o.PriceTTL, DefaultPriceTTL), now)

	outcomes, err := outcomeCounters(o.Registerer, "payments_api_checkout_sessions_total",
		"POST /stripe/checkout requests by outcome.", checkoutOutcomes)
	if err != nil {
		return nil, err
	}
	return limitedPost[checkoutResponse]{limiter: o.Limiter, outcomes: outcomes, serve: h.serve}, nil
}

// checkoutRequest is the body of POST /stripe/checkout. Pointers tell "absent"
// from "present but empty".
type checkoutRequest struct {
	PriceID    string  `json:"price_id"`
	Quantity   *int64  `json:"quantity"`
	SuccessURL *string `json:"success_url"`
	CancelURL  *string `json:"cancel_url"`
}

var checkoutShape = bodyShape{
	fields: "price_id, quantity, success_url and cancel_url",
	fieldDetail: func(field string) string {
		switch field {
		case "quantity":
			return fmt.Sprintf("quantity must be an integer from 1 to %d.", MaxQuantity)
		case "price_id", "success_url", "cancel_url":
			return field + " must be a string."
		}
		return "A field has the wrong type."
	},
}

type checkoutResponse struct {
	SessionID string `json:"session_id"`
	URL       string `json:"url"`
}

// serve creates the session for who.
func (h *checkoutHandler) serve(w http.ResponseWriter, r *http.Request, who auth.Identity) (checkoutResponse, string, error) {
	ctx := r.Context()
	params, err := h.readRequest(w, r, who)
	if err != nil {
		return checkoutResponse{}, OutcomeInvalidRequest, err
	}
	if outcome, err := h.setMode(ctx, &params, who); err != nil {
		return checkoutResponse{}, outcome, err
	}
	if outcome, err := h.setCustomer(ctx, &params, who); err != nil {
		return checkoutResponse{}, outcome, err
	}

	sess, err := h.stripe.CreateCheckoutSession(ctx, params)
	if err != nil {
		if kindOf(err) == KindIdempotencyConflict {
			return checkoutResponse{}, OutcomeIdempotencyConflict,
				problem.Wrap(http.StatusConflict, "This Idempotency-Key was already used for a different checkout request.", err)
		}
		outcome, perr := upstreamProblem(err, "create the checkout session")
		return checkoutResponse{}, outcome, perr
	}
	if sess.ID == "" || sess.URL == "" {
		return checkoutResponse{}, OutcomeStripeError, problem.Wrap(http.StatusBadGateway, "The payment provider could not create the checkout session.",
			fmt.Errorf("billing: Stripe session %q has no id or url", sess.ID))
	}
	requestlog.Add(ctx, slog.String("checkout_session_id", sess.ID))
	return checkoutResponse{SessionID: sess.ID, URL: sess.URL}, OutcomeCreated, nil
}

// readRequest checks the request's headers and body and returns the session
// parameters that come from them and from the identity.
func (h *checkoutHandler) readRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) (SessionParams, error) {
	if err := checkContentType(r); err != nil {
		return SessionParams{}, err
	}
	key, err := checkIdempotencyKey(r.Header)
	if err != nil {
		return SessionParams{}, err
	}
	var req checkoutRequest
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, MaxBodyBytes), &req, checkoutShape); err != nil {
		return SessionParams{}, err
	}
	p, err := h.validate(req, who)
	if err != nil {
		return SessionParams{}, err
	}
	if key != "" {
		p.IdempotencyKey = scopedIdempotencyKey(who.UserID, key)
	}
	return p, nil
}

// validate checks the decoded request and fills the session parameters that
// come from it and from the identity.
func (h *checkoutHandler) validate(req checkoutRequest, who auth.Identity) (SessionParams, error) {
	if req.PriceID == "" {
		return SessionParams{}, problem.New(http.StatusBadRequest, "price_id is required.")
	}
	if _, ok := h.priceIDs[req.PriceID]; !ok {
		return SessionParams{}, problem.New(http.StatusBadRequest, "price_id is not one of the prices on offer.")
	}
	p := SessionParams{
		PriceID:             req.PriceID,
		Quantity:            1,
		SuccessURL:          h.success,
		CancelURL:           h.cancel,
		ClientReferenceID:   who.UserID,
		Metadata:            map[string]string{"user_id": who.UserID},
		AllowPromotionCodes: h.promo,
	}
	if req.Quantity != nil {
		if q := *req.Quantity; q < 1 || q > MaxQuantity {
			return SessionParams{}, problem.New(http.StatusBadRequest, checkoutShape.fieldDetail("quantity"))
		}
		p.Quantity = *req.Quantity
	}
	if req.SuccessURL != nil {
		if err := h.origins.CheckReturnURL(*req.SuccessURL); err != nil {
			return SessionParams{}, problem.Wrap(http.StatusBadRequest, "success_url must be an absolute http(s) URL on an allowed origin.", err)
		}
		p.SuccessURL = *req.SuccessURL
	}
	if req.CancelURL != nil {
		if err := h.origins.CheckReturnURL(*req.CancelURL); err != nil {
			return SessionParams{}, problem.Wrap(http.StatusBadRequest, "cancel_url must be an absolute http(s) URL on an allowed origin.", err)
		}
		p.CancelURL = *req.CancelURL
	}
	return p, nil
}

// setMode learns the session mode from the Stripe Price: a recurring price
// is a subscription, which gets the trial and the user id too.
func (h *checkoutHandler) setMode(ctx context.Context, p *SessionParams, who auth.Identity) (string, error) {
	price, err := h.prices.get(ctx, p.PriceID)
	if err != nil {
		if kindOf(err) == KindNotFound {
			return OutcomeInvalidRequest, problem.Wrap(http.StatusBadRequest, "price_id is not available.", err)
		}
		return upstreamProblem(err, "create the checkout session")
	}
	if !price.Active {
		return OutcomeInvalidRequest, problem.New(http.StatusBadRequest, "price_id is not available.")
	}
	p.Mode = ModePayment
	if price.Recurring {
		p.Mode = ModeSubscription
		p.SubscriptionMetadata = map[string]string{"user_id": who.UserID}
		p.TrialDays = h.trialDays
	}
	return "", nil
}

// setCustomer puts the user's Stripe customer on the session, creating it on
// the user's first checkout, and applies the single-subscription guard.
func (h *checkoutHandler) setCustomer(ctx context.Context, p *SessionParams, who auth.Identity) (string, error) {
	id, created, err := h.customers.FindOrCreate(ctx, who)
	if err != nil {
		if kindOf(err) == KindIdempotencyConflict {
			// Only a change of the user's email within the minute after the
			// first checkout makes the same key carry other parameters; by
			// then search finds the customer.
			return OutcomeIdempotencyConflict, problem.Wrap(http.StatusConflict,
				"Your billing account is still being set up; try again in a minute.", err)
		}
		return upstreamProblem(err, "create the checkout session")
	}
	requestlog.Add(ctx, slog.String("customer_id", id))
	p.CustomerID = id
	// A customer created just now has no subscription to guard against.
	if !h.single || p.Mode != ModeSubscription || created {
		return "", nil
	}
	// One page of the subscriptions that are not canceled: only a user with a
	// hundred incomplete or paused ones could hide a live one from it.
	subs, err := h.stripe.Subscriptions(ctx, SubscriptionQuery{CustomerID: id, Limit: MaxPage})
	if err != nil {
		return upstreamProblem(err, "create the checkout session")
	}
	for _, s := range subs {
		if s.Status.Live() {
			return OutcomeAlreadySubscribed, problem.Newf(http.StatusConflict,
				"You already have a subscription (%s): use the billing portal to change plans.", s.Status)
		}
	}
	return "", nil
}

// scopedIdempotencyKey derives the key sent to Stripe from the user and the
// client's key, so that two users sending the same key never share a session
// and nobody can replay another user's key.
func scopedIdempotencyKey(userID, key string) string {
	sum := sha256.Sum256([]byte(userID + "\x00" + key))
	return "checkout:" + hex.EncodeToString(sum[:])
}
