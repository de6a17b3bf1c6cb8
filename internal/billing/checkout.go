// Package checkout serves POST /stripe/checkout: it turns an authenticated
// user's choice of price into a Stripe Checkout Session and answers with the
// URL to send the browser to.
//
// The handler runs behind the auth middleware and takes the user from the
// request context (auth.IdentityFrom) and from nothing else. It rate-limits per
// user, decodes the body strictly, learns the session mode from the Stripe
// Price (cached), and talks to Stripe only through the Stripe port, whose
// stripe-go implementation is StripeClient.
package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
)

// DefaultPriceTTL is how long a looked-up Stripe Price is trusted.
const DefaultPriceTTL = 10 * time.Minute

// Outcomes counted in payments_api_checkout_sessions_total{outcome}.
const (
	OutcomeCreated             = "created"
	OutcomeInvalidRequest      = "invalid_request"      // 400, 405, 413, 415
	OutcomeRateLimited         = "rate_limited"         // 429
	OutcomeIdempotencyConflict = "idempotency_conflict" // 409
	OutcomeStripeError         = "stripe_error"         // 502
	OutcomeStripeTimeout       = "stripe_timeout"       // 504
	OutcomeCanceled            = "canceled"             // the client went away
	OutcomeUnauthenticated     = "unauthenticated"      // no identity: a wiring bug, 500
)

var outcomes = [...]string{
	OutcomeCreated, OutcomeInvalidRequest, OutcomeRateLimited, OutcomeIdempotencyConflict,
	OutcomeStripeError, OutcomeStripeTimeout, OutcomeCanceled, OutcomeUnauthenticated,
}

// Options configures Handler.
type Options struct {
	// Stripe is the Stripe port, normally a *StripeClient.
	Stripe Stripe
	// PriceIDs are the prices a user may buy; any other price_id is a 400.
	PriceIDs []string
	// SuccessURL and CancelURL are used when the request names none. They must
	// be on an allowed origin. SuccessURL may hold {CHECKOUT_SESSION_ID}.
	SuccessURL, CancelURL string
	// AllowedOrigins are the origins (scheme://host[:port]) that return URLs
	// may point to; normally the CORS allowed origins.
	AllowedOrigins []string
	// RateLimit is the per-user rate in requests per second, rate.Inf to
	// disable limiting. A configured "N per D" is RateLimit = rate.Every(D/N)
	// (N/D.Seconds()) with RateBurst = N: a user may click N times at once,
	// then once every D/N.
	RateLimit rate.Limit
	RateBurst int
	// MaxTrackedUsers caps the per-user limiters kept in memory; 0 means
	// DefaultMaxTrackedUsers.
	MaxTrackedUsers int
	// PriceTTL is how long a Stripe Price is cached; 0 means DefaultPriceTTL.
	PriceTTL time.Duration
	// Registerer receives payments_api_checkout_sessions_total; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type handler struct {
	stripe     Stripe
	prices     *priceCache
	priceIDs   map[string]struct{}
	origins    origin.Set // the rule is shared with the configuration
	successURL string
	cancelURL  string
	limiter    *userLimiter // nil: no limit
	now        func() time.Time
	outcomes   map[string]prometheus.Counter
}

// Handler returns the POST /stripe/checkout handler. It must run behind the
// auth middleware, which puts the caller's auth.Identity in the context. An
// error means invalid options or a metric that cannot be registered.
func Handler(o Options) (http.Handler, error) {
	h, err := newHandler(o)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func newHandler(o Options) (*handler, error) {
	if o.Stripe == nil {
		return nil, errors.New("checkout: no Stripe port")
	}
	if len(o.PriceIDs) == 0 {
		return nil, errors.New("checkout: no price ids")
	}
	h := &handler{
		stripe:     o.Stripe,
		priceIDs:   make(map[string]struct{}, len(o.PriceIDs)),
		successURL: o.SuccessURL,
		cancelURL:  o.CancelURL,
		now:        o.Now,
		outcomes:   make(map[string]prometheus.Counter, len(outcomes)),
	}
	for _, id := range o.PriceIDs {
		if id == "" {
			return nil, errors.New("checkout: empty price id")
		}
		h.priceIDs[id] = struct{}{}
	}
	var err error
	if h.origins, err = origin.NewSet(o.AllowedOrigins); err != nil {
		return nil, fmt.Errorf("checkout: allowed origins: %w", err)
	}
	if err := h.origins.CheckReturnURL(o.SuccessURL); err != nil {
		return nil, fmt.Errorf("checkout: success URL %q: %v", o.SuccessURL, err)
	}
	if err := h.origins.CheckReturnURL(o.CancelURL); err != nil {
		return nil, fmt.Errorf("checkout: cancel URL %q: %v", o.CancelURL, err)
	}
	if h.now == nil {
		h.now = time.Now
	}
	ttl := o.PriceTTL
	switch {
	case ttl < 0:
		return nil, fmt.Errorf("checkout: negative price TTL %v", ttl)
	case ttl == 0:
		ttl = DefaultPriceTTL
	}
	h.prices = newPriceCache(o.Stripe, ttl, h.now)

	if o.RateLimit != rate.Inf {
		if o.RateLimit <= 0 || o.RateBurst < 1 {
			return nil, fmt.Errorf("checkout: rate limit %v with burst %d; use rate.Inf to disable limiting", o.RateLimit, o.RateBurst)
		}
		maxUsers := o.MaxTrackedUsers
		switch {
		case maxUsers < 0:
			return nil, fmt.Errorf("checkout: negative MaxTrackedUsers %d", maxUsers)
		case maxUsers == 0:
			maxUsers = DefaultMaxTrackedUsers
		}
		h.limiter = newUserLimiter(o.RateLimit, o.RateBurst, maxUsers)
	}

	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payments_api_checkout_sessions_total",
		Help: "POST /stripe/checkout requests by outcome.",
	}, []string{"outcome"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(vec); err != nil {
			return nil, fmt.Errorf("checkout: register metrics: %w", err)
		}
	}
	// Bound once: every outcome shows from the start (at 0), and counting
	// costs no label lookup per request.
	for _, name := range outcomes {
		h.outcomes[name] = vec.WithLabelValues(name)
	}
	return h, nil
}

type response struct {
	SessionID string `json:"session_id"`
	URL       string `json:"url"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, outcome, err := h.serve(w, r)
	h.outcomes[outcome].Inc()
	if err != nil {
		problem.Write(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// An encoding error means the client went away; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(res)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) (response, string, error) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		return response{}, OutcomeInvalidRequest,
			problem.New(http.StatusMethodNotAllowed, "Use POST.").WithHeader("Allow", http.MethodPost)
	}
	id, ok := auth.IdentityFrom(ctx)
	if !ok || id.UserID == "" {
		return response{}, OutcomeUnauthenticated, errors.New("checkout: no authenticated identity in the request context; is the auth middleware mounted in front?")
	}

	// Limit before any work, so that malformed requests count too.
	if h.limiter != nil {
		if d := h.limiter.wait(id.UserID, h.now()); d > 0 {
			secs := int(math.Ceil(d.Seconds()))
			return response{}, OutcomeRateLimited,
				problem.New(http.StatusTooManyRequests, "Too many checkout attempts; try again later.").
					WithHeader("Retry-After", strconv.Itoa(max(secs, 1)))
		}
	}

	if err := checkContentType(r); err != nil {
		return response{}, OutcomeInvalidRequest, err
	}
	key, err := checkIdempotencyKey(r.Header)
	if err != nil {
		return response{}, OutcomeInvalidRequest, err
	}
	req, err := decodeRequest(w, r)
	if err != nil {
		return response{}, OutcomeInvalidRequest, err
	}
	params, err := h.validate(req, id)
	if err != nil {
		return response{}, OutcomeInvalidRequest, err
	}
	if key != "" {
		params.IdempotencyKey = scopedIdempotencyKey(id.UserID, key)
	}

	price, err := h.prices.get(ctx, params.PriceID)
	if err != nil {
		outcome, perr := stripeProblem(err)
		return response{}, outcome, perr
	}
	if !price.Active {
		return response{}, OutcomeInvalidRequest, problem.New(http.StatusBadRequest, "price_id is not available.")
	}
	params.Mode = ModePayment
	if price.Recurring {
		params.Mode = ModeSubscription
		params.SubscriptionMetadata = map[string]string{"user_id": id.UserID}
	}

	sess, err := h.stripe.CreateCheckoutSession(ctx, params)
	if err != nil {
		outcome, perr := stripeProblem(err)
		return response{}, outcome, perr
	}
	if sess.ID == "" || sess.URL == "" {
		return response{}, OutcomeStripeError, problem.Wrap(http.StatusBadGateway, "The payment provider could not create the checkout session.",
			fmt.Errorf("checkout: Stripe session %q has no id or url", sess.ID))
	}
	requestlog.Add(ctx, slog.String("checkout_session_id", sess.ID))
	return response{SessionID: sess.ID, URL: sess.URL}, OutcomeCreated, nil
}

// validate checks the decoded request and fills the session parameters that
// come from it and from the identity.
func (h *handler) validate(req request, id auth.Identity) (SessionParams, error) {
	if req.PriceID == "" {
		return SessionParams{}, problem.New(http.StatusBadRequest, "price_id is required.")
	}
	if _, ok := h.priceIDs[req.PriceID]; !ok {
		return SessionParams{}, problem.New(http.StatusBadRequest, "price_id is not one of the prices on offer.")
	}
	p := SessionParams{
		PriceID:           req.PriceID,
		Quantity:          1,
		SuccessURL:        h.successURL,
		CancelURL:         h.cancelURL,
		ClientReferenceID: id.UserID,
		CustomerEmail:     id.Email,
		Metadata:          map[string]string{"user_id": id.UserID},
	}
	if req.Quantity != nil {
		if q := *req.Quantity; q < 1 || q > MaxQuantity {
			return SessionParams{}, problem.New(http.StatusBadRequest, fieldTypeDetail("quantity"))
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

// scopedIdempotencyKey derives the key sent to Stripe from the user and the
// client's key, so that two users sending the same key never share a session
// and nobody can replay another user's key.
func scopedIdempotencyKey(userID, key string) string {
	sum := sha256.Sum256([]byte(userID + "\x00" + key))
	return "checkout:" + hex.EncodeToString(sum[:])
}

// stripeProblem maps a failed Stripe call to the client's problem and the
// outcome to count. Stripe's own text never reaches the client.
func stripeProblem(err error) (string, error) {
	kind := KindUnavailable
	var se *StripeError
	switch {
	case errors.As(err, &se):
		kind = se.Kind
	case errors.Is(err, context.DeadlineExceeded):
		kind = KindTimeout
	case errors.Is(err, context.Canceled):
		kind = KindCanceled
	}
	switch kind {
	case KindNotFound:
		return OutcomeInvalidRequest, problem.Wrap(http.StatusBadRequest, "price_id is not available.", err)
	case KindIdempotencyConflict:
		return OutcomeIdempotencyConflict, problem.Wrap(http.StatusConflict, "This Idempotency-Key was already used for a different checkout request.", err)
	case KindTimeout:
		return OutcomeStripeTimeout, problem.Wrap(http.StatusGatewayTimeout, "The payment provider did not answer in time.", err)
	case KindCanceled:
		return OutcomeCanceled, problem.Wrap(http.StatusBadGateway, "The request was canceled before the payment provider answered.", err)
	}
	return OutcomeStripeError, problem.Wrap(http.StatusBadGateway, "The payment provider could not create the checkout session.", err)
}
