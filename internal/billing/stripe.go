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
	portalsession "github.com/stripe/stripe-go/v76/billingportal/session"
	checkoutsession "github.com/stripe/stripe-go/v76/checkout/session"
	"github.com/stripe/stripe-go/v76/customer"
	"github.com/stripe/stripe-go/v76/price"
	"github.com/stripe/stripe-go/v76/subscription"
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
	SecretKey string   // sk_… or rk_…
	APIURL    *url.URL // base URL; nil means Stripe's own (https://api.stripe.com)
	// Timeout bounds each call, retries included; 0 means DefaultStripeTimeout.
	Timeout time.Duration
	// MaxRetries is the number of network retries: 0 means DefaultMaxRetries,
	// a negative number none; at most 2.
	MaxRetries int
	// HTTPClient is the client to send requests with; nil means one with
	// Timeout as its per-attempt timeout. It is copied, never modified. A nil
	// Transport in it means NewTransport's.
	HTTPClient *http.Client
}

// stripeIdleConns is how many idle connections to Stripe are kept for reuse.
const stripeIdleConns = 64

// NewTransport is the transport a StripeClient uses unless its HTTPClient
// brings one; a caller that wraps it (to trace each call, say) passes it in a
// Client of its own. It is http.DefaultTransport keeping more idle
// connections. Over HTTP/2, which Go negotiates with api.stripe.com,
// concurrent calls share one connection and this changes nothing; over
// HTTP/1.1 (stripe-mock, an API URL behind a proxy that speaks only that),
// net/http keeps two idle connections per host, so beyond two calls at once
// each further call would open a connection, and close it a moment later.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = stripeIdleConns
	t.MaxIdleConnsPerHost = stripeIdleConns
	return t
}

// StripeClient is the Stripe port backed by stripe-go v76. It uses its own
// backend and key, never stripe-go's package-level globals.
type StripeClient struct {
	prices        price.Client
	sessions      checkoutsession.Client
	customers     customer.Client
	subscriptions subscription.Client
	portal        portalsession.Client
	timeout       time.Duration
}

var _ Stripe = (*StripeClient)(nil)

// NewStripeClient returns a Stripe port that talks to the API at o.APIURL with
// o.SecretKey.
func NewStripeClient(o StripeOptions) (*StripeClient, error) {
	if o.SecretKey == "" {
		return nil, errors.New("billing: empty Stripe secret key")
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("billing: negative Stripe timeout %v", o.Timeout)
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
		return nil, fmt.Errorf("billing: %d Stripe retries, at most %d", o.MaxRetries, maxRetries)
	}

	cfg := &stripe.BackendConfig{
		MaxNetworkRetries: stripe.Int64(retries),
		// stripe-go's default logger writes unstructured lines, with Stripe's
		// error messages, to stderr. Failures reach our log through the problem
		// writer instead.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if o.APIURL != nil {
		cfg.URL = stripe.String(o.APIURL.String())
	}

	var hc http.Client
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	} else {
		hc.Timeout = o.Timeout
	}
	base := hc.Transport
	if base == nil {
		base = NewTransport()
	}
	hc.Transport = userAgentTransport{base: base}
	cfg.HTTPClient = &hc

	backend := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	// These clients are what client.API.Init builds; using the few we need
	// directly spares compiling the ~130 other packages that client imports.
	// None touches stripe-go's package-level backends or key.
	return &StripeClient{
		prices:        price.Client{B: backend, Key: o.SecretKey},
		sessions:      checkoutsession.Client{B: backend, Key: o.SecretKey},
		customers:     customer.Client{B: backend, Key: o.SecretKey},
		subscriptions: subscription.Client{B: backend, Key: o.SecretKey},
		portal:        portalsession.Client{B: backend, Key: o.SecretKey},
		timeout:       o.Timeout,
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
	if p.CustomerID != "" {
		params.Customer = stripe.String(p.CustomerID)
	}
	if p.AllowPromotionCodes {
		params.AllowPromotionCodes = stripe.Bool(true)
	}
	for k, v := range p.Metadata {
		params.AddMetadata(k, v)
	}
	if p.Mode == ModeSubscription && (len(p.SubscriptionMetadata) > 0 || p.TrialDays > 0) {
		params.SubscriptionData = &stripe.CheckoutSessionSubscriptionDataParams{}
		if len(p.SubscriptionMetadata) > 0 {
			params.SubscriptionData.Metadata = p.SubscriptionMetadata
		}
		if p.TrialDays > 0 {
			params.SubscriptionData.TrialPeriodDays = stripe.Int64(p.TrialDays)
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

// SearchCustomers runs a Customer Search and returns its first page.
func (c *StripeClient) SearchCustomers(ctx context.Context, query string) ([]Customer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	params := &stripe.CustomerSearchParams{}
	params.Query = query
	params.Single = true // one page: the caller wants a customer, not an export
	params.Context = ctx
	it := c.customers.Search(params)
	var out []Customer
	for it.Next() {
		cu := it.Customer()
		out = append(out, Customer{ID: cu.ID, Created: cu.Created})
	}
	if err := it.Err(); err != nil {
		return nil, stripeFailure("search customers", err)
	}
	return out, nil
}

// CreateCustomer creates a Customer.
func (c *StripeClient) CreateCustomer(ctx context.Context, p CustomerParams) (Customer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	params := &stripe.CustomerParams{}
	if p.Email != "" {
		params.Email = stripe.String(p.Email)
	}
	for k, v := range p.Metadata {
		params.AddMetadata(k, v)
	}
	if p.IdempotencyKey != "" {
		params.SetIdempotencyKey(p.IdempotencyKey)
	}
	params.Context = ctx
	cu, err := c.customers.New(params)
	if err != nil {
		return Customer{}, stripeFailure("create customer", err)
	}
	return Customer{ID: cu.ID, Created: cu.Created, Replayed: replayed(cu.LastResponse)}, nil
}

// replayed reports whether Stripe answered an idempotent request with the
// result of an earlier one, which it marks with Idempotent-Replayed: true.
func replayed(r *stripe.APIResponse) bool {
	return r != nil && r.Header.Get("Idempotent-Replayed") == "true"
}

// Subscriptions returns one page of the customer's subscriptions, newest first.
func (c *StripeClient) Subscriptions(ctx context.Context, q SubscriptionQuery) ([]Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	params := &stripe.SubscriptionListParams{Customer: stripe.String(q.CustomerID)}
	if q.IncludeCanceled {
		params.Status = stripe.String("all")
	}
	params.Limit = stripe.Int64(int64(q.Limit))
	params.Single = true
	params.Context = ctx
	it := c.subscriptions.List(params)
	var out []Subscription
	for it.Next() {
		out = append(out, subscriptionOf(it.Subscription()))
	}
	if err := it.Err(); err != nil {
		return nil, stripeFailure("list subscriptions", err)
	}
	return out, nil
}

func subscriptionOf(s *stripe.Subscription) Subscription {
	out := Subscription{
		ID:                s.ID,
		Status:            SubscriptionStatus(s.Status),
		Created:           s.Created,
		CurrentPeriodEnd:  s.CurrentPeriodEnd,
		CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		TrialEnd:          s.TrialEnd,
	}
	if s.Items != nil && len(s.Items.Data) > 0 {
		item := s.Items.Data[0]
		out.Quantity = item.Quantity
		if item.Price != nil {
			out.PriceID = item.Price.ID
		}
	}
	return out
}

// CreatePortalSession creates a billing portal session and returns its URL.
func (c *StripeClient) CreatePortalSession(ctx context.Context, p PortalParams) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	params := &stripe.BillingPortalSessionParams{
		Customer:  stripe.String(p.CustomerID),
		ReturnURL: stripe.String(p.ReturnURL),
	}
	if p.Configuration != "" {
		params.Configuration = stripe.String(p.Configuration)
	}
	params.Context = ctx
	s, err := c.portal.New(params)
	if err != nil {
		return "", stripeFailure("create portal session", err)
	}
	return s.URL, nil
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
		case se.Code == stripe.ErrorCodeIdempotencyKeyInUse, s == http.StatusConflict:
			// Another request with the same key is still running: a
			// concurrent first checkout. Trying again soon succeeds.
			e.Kind = KindUnavailable
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
