package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/redistest"
)

// redisPassword is distinctive so that a log line holding it is found.
const redisPassword = "redis-pw-Zq8vK3nLx"

// TestRunSharedRateLimit runs two replicas on one Redis: together they allow a
// user CHECKOUT_RATE_LIMIT requests, not twice that, and the refusal's
// Retry-After is the wait Redis computed; another user is unaffected. With
// Redis stopped every request goes through, counted as a limiter error, and
// readiness stays 200; once Redis is back the limit holds again. The URL's
// password reaches no log line.
func TestRunSharedRateLimit(t *testing.T) {
	redis := redistest.Start(t, redistest.Options{Password: redisPassword})
	st := startStack(t, map[string]string{
		"CHECKOUT_RATE_LIMIT": "3/h",
		"REDIS_URL":           redis.URL(),
	})
	replicas := []*service{st.svc, startService(t, st.env)}
	for _, r := range replicas {
		waitReady(t, r.url)
	}

	// checkout posts as user to replica i; text/plain makes an allowed
	// request a 415 without any Stripe call, so only the limit is measured.
	checkout := func(i int, user string) *http.Response {
		t.Helper()
		token, err := st.clerk.Mint(fakeclerk.Token{Subject: user, AuthorizedParty: testOrigin})
		if err != nil {
			t.Fatal(err)
		}
		resp := postCheckout(t, replicas[i%2].url, token, "text/plain", "price please")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	first := time.Now()
	for i := range 3 {
		if resp := checkout(i, "user_shared"); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("request %d (replica %d) = %d, want 415: within the shared limit", i+1, i%2, resp.StatusCode)
		}
	}
	for i := range 2 {
		resp := checkout(i, "user_shared")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("request 4 on replica %d = %d, want 429: the replicas share one limit of 3", i, resp.StatusCode)
		}
		// GCRA's next slot is 1h/3 after the first request, rounded up to a
		// whole second.
		elapsed := time.Since(first)
		lo, hi := int((20*time.Minute - elapsed).Seconds()), int((20 * time.Minute).Seconds())
		if got, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || got < lo || got > hi {
			t.Errorf("Retry-After = %q, want %d..%d (Redis' wait for the next request)", resp.Header.Get("Retry-After"), lo, hi)
		}
	}
	if resp := checkout(1, "user_other"); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("another user = %d, want 415: the limit is per user", resp.StatusCode)
	}

	// Redis down: fail open, counted, ready.
	redis.Stop()
	for i := range 4 {
		if resp := checkout(i, "user_shared"); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("with Redis down, request %d = %d, want 415: a user is never refused because Redis is down", i+1, resp.StatusCode)
		}
	}
	for i, r := range replicas {
		if got := metricstest.Value(t, scrape(t, r), "payments_api_rate_limit_errors_total", nil); got < 2 {
			t.Errorf("replica %d counted %v limiter errors with Redis down, want at least 2", i, got)
		}
		if code, body := get(t, r.url+"/readyz"); code != http.StatusOK {
			t.Errorf("replica %d /readyz = %d %s with Redis down, want 200", i, code, body)
		}
	}

	// Redis back (empty): the limit holds again. go-redis may take about a
	// second to dial again; requests in that second go through.
	redis.Restart()
	var refused *http.Response
	for deadline := time.Now().Add(15 * time.Second); refused == nil && time.Now().Before(deadline); {
		for i := range 4 {
			if resp := checkout(i, "user_after"); resp.StatusCode == http.StatusTooManyRequests {
				refused = resp
				break
			}
		}
	}
	if refused == nil {
		t.Fatal("no 429 within 15 s of Redis coming back: the limit did not resume")
	}
	if got, err := strconv.Atoi(refused.Header.Get("Retry-After")); err != nil || got < 1 || got > 1200 {
		t.Errorf("Retry-After after Redis came back = %q, want 1..1200", refused.Header.Get("Retry-After"))
	}

	for i, r := range replicas {
		if out := r.stdout.String(); strings.Contains(out, redisPassword) {
			t.Errorf("replica %d logged the REDIS_URL password", i)
		}
	}
}
