// Package webhooktest signs webhook bodies exactly as Stripe does, for tests and
// the local tools that play Stripe (the sandbox's trigger, the load benchmark).
// It is the one place outside the webhook package that makes Stripe-Signature
// headers, so that every caller signs the same way: with stripe-go's own code.
package webhooktest

import (
	"time"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
)

// Sign returns the Stripe-Signature header ("t=…,v1=…") Stripe would send with
// body, signed with secret (the whole whsec_… string is the HMAC key) at time at.
// A zero at means now.
func Sign(body []byte, secret string, at time.Time) string {
	return SignScheme(body, secret, at, "v1")
}

// SignScheme is Sign with another signature scheme name (e.g. "v0", which
// receivers must ignore).
func SignScheme(body []byte, secret string, at time.Time, scheme string) string {
	if at.IsZero() {
		at = time.Now()
	}
	return stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: body, Secret: secret, Timestamp: at, Scheme: scheme,
	}).Header
}
