package billing

// This file is the only one in the package that imports stripe-go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	checkoutsession "github.com/stripe/stripe-go/v76/checkout/session"
	"github.com/stripe/stripe-go/v76/price"
)

// Defaults of StripeOptions.
const (
	DefaultStripeTimeout = 10 * time.Second
	DefaultMaxRetries    = 1
	// maxRetries caps retries: stripe-go sleeps 0.5-0.8 s between attempts
	// without watching the context, so each retry can overrun the timeout.
	maxRetries = 2
)

// userAgentProduct is appended to stripe-go's User-Agent so that Stripe's
// request logs show which integration called. stripe-go's own AppInfo is a
// package-level global (stripe.SetAppInfo), which this service does not touch.
const userAgentProduct = "payments-api"

// StripeOptions configures NewStripeClient.
type StripeOptions struct {
	SecretKey string // sk_… or rk_…
	APIURL    string // base URL; empty means Stripe's own (https://api.stripe.com)
	// Timeout bounds each call, retries included; 0 means DefaultStripeTimeout.
	Timeout time.Duration
	// MaxRetries is the number of network retries: 0 means DefaultMaxRetries,
	// a negative number none; at most 2.
	MaxRetries int
	// HTTPClient is the client to send requests with; nil means one with
	// Timeout as its per-attempt timeout. It is copied, never modified.
	HTTPClient *http.Client
}

// StripeClient is the Stripe port backed by stripe-go v76. It uses its own
// backend and key, never stripe-go's package-level globals.
type StripeClient struct {
	prices   price.Client
	sessions checkoutsession.Client
	timeout  time.Duration
}

var _ Stripe = (*StripeClient)(nil)

// NewStripeClient returns a Stripe port that talks to the API at o.APIURL with
// o.SecretKey.
func NewStripeClient(o StripeOptions) (*StripeClient, error) {
	if o.SecretKey == "" {
		return nil, errors.New("checkout: empty Stripe secret key")
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("checkout: negative Stripe timeout %v", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultStripeTimeout
	}
	retries := int64(o.MaxRetries)
	switch {
	case o.MaxRetries == 0:
		retries = DefaultMaxRetries
	case o.MaxRetries < 0:
		retries = 0
	case o.MaxRetries > maxRetries:
		return nil, fmt.Errorf("checkout: %d Stripe retries, at most %d", o.MaxRetries, maxRetries)
	}

	cfg := &stripe.BackendConfig{
		MaxNetworkRetries: stripe.Int64(retries),
		// stripe-go's default logger writes unstructured lines, with Stripe's
		// error messages, to stderr. Failures reach our log through the problem
		// writer instead.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if o.APIURL != "" {
		u, err := url.Parse(o.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("checkout: Stripe API URL %q is not an absolute http(s) URL", o.APIURL)
		}
		cfg.URL = stripe.String(o.APIURL)
	}

	var hc http.Client
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	} else {
		hc.Timeout = o.Timeout
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = userAgentTransport{base: base}
	cfg.HTTPClient = &hc

	backend := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	// price.Client and checkoutsession.Client are what client.API.Init builds;
	// using the two directly spares compiling the ~130 other packages that
	// client imports. Neither touches stripe-go's package-level backends or key.
	return &StripeClient{
		prices:   price.Client{B: backend, Key: o.SecretKey},
		sessions: checkoutsession.Client{B: backend, Key: o.SecretKey},
		timeout:  o.Timeout,
	}, nil
}

// Price looks up the Stripe Price id.
func (c *StripeClient) Price(ctx context.Context, id string) (Price, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	params := &stripe.PriceParams{}
	params.Context = ctx
	p, err := c.prices.Get(id, params)
	if err != nil {
		return Price{}, stripeFailure("get price", err)
	}
	return Price{
		ID:        p.ID,
		Active:    p.Active,
		Recurring: p.Type == stripe.PriceTypeRecurring || p.Recurring != nil,
	}, nil
}

// CreateCheckoutSession creates a Checkout Session with one line item.
func (c *StripeClient) CreateCheckoutSession(ctx context.Context, p SessionParams) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	params := &stripe.CheckoutSessionParams{
		Mode: stripe.String(string(p.Mode)),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Price:    stripe.String(p.PriceID),
			Quantity: stripe.Int64(p.Quantity),
		}},
		SuccessURL: stripe.String(p.SuccessURL),
		CancelURL:  stripe.String(p.CancelURL),
	}
	if p.ClientReferenceID != "" {
		params.ClientReferenceID = stripe.String(p.ClientReferenceID)
	}
	if p.CustomerEmail != "" {
		params.CustomerEmail = stripe.String(p.CustomerEmail)
	}
	for k, v := range p.Metadata {
		params.AddMetadata(k, v)
	}
	if p.Mode == ModeSubscription && len(p.SubscriptionMetadata) > 0 {
		params.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{
			Metadata: p.SubscriptionMetadata,
		}
	}
	if p.IdempotencyKey != "" {
		params.SetIdempotencyKey(p.IdempotencyKey)
	}
	params.Context = ctx
	s, err := c.sessions.New(params)
	if err != nil {
		return Session{}, stripeFailure("create checkout session", err)
	}
	return Session{ID: s.ID, URL: s.URL}, nil
}

// stripeFailure classifies a stripe-go error. Stripe's message is left out on
// purpose (see StripeError).
func stripeFailure(op string, err error) *StripeError {
	var se *stripe.Error
	if errors.As(err, &se) {
		e := &StripeError{
			Op:        op,
			Status:    se.HTTPStatusCode,
			Type:      string(se.Type),
			Code:      string(se.Code),
			Param:     se.Param,
			RequestID: se.RequestID,
		}
		switch s := se.HTTPStatusCode; {
		case se.Type == stripe.ErrorTypeIdempotency:
			e.Kind = KindIdempotencyConflict
		case se.Code == stripe.ErrorCodeResourceMissing:
			e.Kind = KindNotFound
		case s == http.StatusUnauthorized, s == http.StatusForbidden, s == http.StatusTooManyRequests:
			e.Kind = KindUnavailable
		case s >= 400 && s < 500:
			e.Kind = KindInvalidRequest
		default:
			e.Kind = KindUnavailable
		}
		return e
	}
	e := &StripeError{Op: op, Kind: KindUnavailable, Err: err}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.Kind = KindCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e.Kind = KindTimeout
	}
	return e
}

// userAgentTransport appends the service's name to stripe-go's User-Agent.
type userAgentTransport struct{ base http.RoundTripper }

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify its request: change a copy of the headers.
	r2 := r.Clone(r.Context())
	r2.Header.Set("User-Agent", r.Header.Get("User-Agent")+" "+userAgentProduct)
	return t.base.RoundTrip(r2)
}
