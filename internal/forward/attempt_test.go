package forward_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/metricstest"
)

// TestAttemptMakesOneAttempt: whatever Next.js answers, Attempt sends exactly
// one request and succeeds on 2xx only; the queue retries everything else.
func TestAttemptMakesOneAttempt(t *testing.T) {
	tests := []struct {
		status      int
		wantErr     bool
		wantOutcome string
	}{
		{200, false, forward.OutcomeSuccess},
		{204, false, forward.OutcomeSuccess},
		{301, true, forward.OutcomeRedirected},
		{308, true, forward.OutcomeRedirected},
		{400, true, forward.OutcomeRejected},
		{401, true, forward.OutcomeRejected},
		{404, true, forward.OutcomeRejected},
		{408, true, forward.OutcomeRetryableStatus},
		{429, true, forward.OutcomeRetryableStatus},
		{500, true, forward.OutcomeRetryableStatus},
		{503, true, forward.OutcomeRetryableStatus},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, n int) {
				w.Header().Set("Location", "https://elsewhere.example/")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(tt.status)
			})
			f, reg := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL)})
			err := f.Attempt(context.Background(), "evt_1", "req-queued", body)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Attempt = %v, want error %v", err, tt.wantErr)
			}
			if got := len(rc.requests()); got != 1 {
				t.Errorf("requests = %d, want 1", got)
			}
			var fe *forward.Error
			if tt.wantErr && (!errors.As(err, &fe) || fe.Outcome != tt.wantOutcome || fe.Status != tt.status || fe.Attempts != 1) {
				t.Errorf("error = %#v, want outcome %s, status %d, 1 attempt", err, tt.wantOutcome, tt.status)
			}
			if got := counter(t, reg, tt.wantOutcome); got != 1 {
				t.Errorf("attempts{outcome=%s} = %v, want 1", tt.wantOutcome, got)
			}
			if got := metricstest.Sum(t, reg, "payments_api_webhook_forward_duration_seconds", nil); got != 1 {
				t.Errorf("duration observations = %v, want 1", got)
			}
		})
	}
}

// TestAttemptSignsWithTheQueuedRequestID: the request id comes from the
// caller (the request that queued the event), not from ctx, and the body is
// signed and sent byte for byte.
func TestAttemptSignsWithTheQueuedRequestID(t *testing.T) {
	rc := newReceiver(t, statuses(200))
	f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL)})
	if err := f.Attempt(context.Background(), "evt_1", "req-queued", body); err != nil {
		t.Fatal(err)
	}
	if err := f.Attempt(context.Background(), "evt_2", "", body); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()
	if string(got[0].body) != string(body) {
		t.Errorf("body = %q, want %q", got[0].body, body)
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(got[0].body, got[0].header.Get("Stripe-Signature"), secret); err != nil {
		t.Errorf("signature: %v", err)
	}
	for k, want := range map[string]string{"Idempotency-Key": "evt_1", "X-Request-ID": "req-queued", "Content-Type": "application/json"} {
		if v := got[0].header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if v, ok := got[1].header["X-Request-Id"]; ok {
		t.Errorf("X-Request-ID without a request id = %q, want none", v)
	}
}

// TestAttemptFailures: no receiver, a receiver slower than the forward
// timeout, and a caller that gives up are errors with their own outcome.
func TestAttemptFailures(t *testing.T) {
	t.Run("network error", func(t *testing.T) {
		rc := newReceiver(t, statuses(200))
		url := rc.URL
		rc.Close()
		f, reg := newForwarder(t, forward.Options{URL: mustURL(t, url)})
		var fe *forward.Error
		if err := f.Attempt(context.Background(), "evt_1", "", body); !errors.As(err, &fe) || fe.Outcome != forward.OutcomeNetworkError {
			t.Fatalf("Attempt = %v, want a network error", err)
		}
		if got := counter(t, reg, forward.OutcomeNetworkError); got != 1 {
			t.Errorf("attempts{outcome=network_error} = %v, want 1", got)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		rc := newReceiver(t, func(w http.ResponseWriter, n int) { <-release })
		defer close(release)
		f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL), Timeout: 100 * time.Millisecond})
		var fe *forward.Error
		if err := f.Attempt(context.Background(), "evt_1", "", body); !errors.As(err, &fe) || fe.Outcome != forward.OutcomeTimeout {
			t.Fatalf("Attempt = %v, want a timeout", err)
		}
	})
	t.Run("caller cancelled", func(t *testing.T) {
		rc := newReceiver(t, statuses(200))
		f, _ := newForwarder(t, forward.Options{URL: mustURL(t, rc.URL)})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var fe *forward.Error
		if err := f.Attempt(ctx, "evt_1", "", body); !errors.As(err, &fe) || fe.Outcome != forward.OutcomeCanceled {
			t.Fatalf("Attempt = %v, want canceled", err)
		}
	})
}
