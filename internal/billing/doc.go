// Package billing serves a signed-in user's dealings with Stripe: checkout
// (POST /stripe/checkout), the billing portal (POST /stripe/portal) and the
// user's subscription state (GET /stripe/subscription).
//
// The handlers run behind the auth middleware and take the user from the
// request context (auth.IdentityFrom) and from nothing else. Each user has one
// Stripe customer (Customers: found in a CustomerStore or with Stripe's
// Customer Search, else created). Checkout and the portal share a per-user
// Limiter. Stripe is reached only through the Stripe port, whose stripe-go
// implementation, StripeClient, is the one file that imports stripe-go.
package billing
