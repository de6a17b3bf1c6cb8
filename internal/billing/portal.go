package billing

import (
	"bufio"
	"errors"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/problem"
)

// Outcomes counted in payments_api_portal_sessions_total{outcome}, beside the
// shared ones (OutcomeInvalidRequest…).
const (
	OutcomePortalCreated = "created"
	OutcomeNoCustomer    = "no_customer" // 404: the user never checked out
)

var portalOutcomes = []string{
	OutcomePortalCreated, OutcomeNoCustomer, OutcomeInvalidRequest, OutcomeRateLimited,
	OutcomeStripeError, OutcomeStripeTimeout, OutcomeCanceled, OutcomeUnauthenticated,
}

// PortalOptions configures PortalHandler.
type PortalOptions struct {
	// Stripe is the Stripe port, normally a *StripeClient.
	Stripe Stripe
	// Customers finds the user's Stripe customer.
	Customers *Customers
	// Limiter limits portal sessions per user; nil means no limit. Pass
	// checkout's Limiter: the two share a user's allowance.
	Limiter Limiter
	// Origins are the origins that a return URL a client sends may point to.
	Origins origin.Set
	// ReturnURL is used when the request names none; taken as given, checked
	// by the caller.
	ReturnURL string
	// Configuration is the billing portal configuration (bpc_…); empty means
	// the account's default.
	Configuration string
	// Registerer receives payments_api_portal_sessions_total; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

type portalHandler struct {
	stripe        Stripe
	customers     *Customers
	origins       origin.Set
	returnURL     string
	configuration string
}

// PortalHandler returns the POST /stripe/portal handler: it opens a Stripe billing
// portal session for the user's customer, where the user changes plans,
// updates a card or cancels. It must run behind the auth middleware. An error
// means invalid options or a metric that cannot be registered.
func PortalHandler(o PortalOptions) (http.Handler, error) {
	switch {
	case o.Stripe == nil:
		return nil, errors.New("billing: portal: no Stripe port")
	case o.Customers == nil:
		return nil, errors.New("billing: portal: no customer rule")
	case o.Origins.Len() == 0:
		return nil, errors.New("billing: portal: no allowed origins")
	case o.ReturnURL == "":
		return nil, errors.New("billing: portal: no default return URL")
	}
	outcomes, err := outcomeCounters(o.Registerer, "payments_api_portal_sessions_total",
		"POST /stripe/portal requests by outcome.", portalOutcomes)
	if err != nil {
		return nil, err
	}
	h := &portalHandler{
		stripe:        o.Stripe,
		customers:     o.Customers,
		origins:       o.Origins,
		returnURL:     o.ReturnURL,
		configuration: o.Configuration,
	}
	return limitedPost[portalResponse]{limiter: o.Limiter, outcomes: outcomes, serve: h.serve}, nil
}

// portalRequest is the optional body of POST /stripe/portal.
type portalRequest struct {
	ReturnURL *string `json:"return_url"`
}

var portalShape = bodyShape{
	fields:      "return_url",
	fieldDetail: func(string) string { return "return_url must be a string." },
}

type portalResponse struct {
	URL string `json:"url"`
}

// serve opens the portal for who.
func (h *portalHandler) serve(w http.ResponseWriter, r *http.Request, who auth.Identity) (portalResponse, string, error) {
	ctx := r.Context()
	returnURL, err := h.readReturnURL(w, r)
	if err != nil {
		return portalResponse{}, OutcomeInvalidRequest, err
	}

	customerID, err := h.customers.Find(ctx, who.UserID)
	if err != nil {
		outcome, perr := upstreamProblem(err, "open the billing portal")
		return portalResponse{}, outcome, perr
	}
	if customerID == "" {
		return portalResponse{}, OutcomeNoCustomer, problem.New(http.StatusNotFound,
			"You have no billing account yet: it is made at your first checkout.")
	}
	url, err := h.stripe.CreatePortalSession(ctx, PortalParams{
		CustomerID:    customerID,
		ReturnURL:     returnURL,
		Configuration: h.configuration,
	})
	if err != nil {
		outcome, perr := upstreamProblem(err, "open the billing portal")
		return portalResponse{}, outcome, perr
	}
	if url == "" {
		return portalResponse{}, OutcomeStripeError, problem.Wrap(http.StatusBadGateway,
			"The payment provider could not open the billing portal.", errors.New("billing: Stripe portal session has no url"))
	}
	return portalResponse{URL: url}, OutcomePortalCreated, nil
}

// readReturnURL reads the optional body and returns the URL the portal sends
// the user back to. No body at all (a bare fetch with only the token) means
// the default; a body follows checkout's JSON rules.
func (h *portalHandler) readReturnURL(w http.ResponseWriter, r *http.Request) (string, error) {
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if _, err := body.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return h.returnURL, nil
		}
		return "", problem.Wrap(http.StatusBadRequest, "The body could not be read.", err)
	}
	if err := checkContentType(r); err != nil {
		return "", err
	}
	var req portalRequest
	if err := decodeJSON(body, &req, portalShape); err != nil {
		return "", err
	}
	if req.ReturnURL == nil {
		return h.returnURL, nil
	}
	if err := h.origins.CheckReturnURL(*req.ReturnURL); err != nil {
		return "", problem.Wrap(http.StatusBadRequest, "return_url must be an absolute http(s) URL on an allowed origin.", err)
	}
	return *req.ReturnURL, nil
}
