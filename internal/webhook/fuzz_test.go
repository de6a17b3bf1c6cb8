package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/requestlog"
	"github.com/acme/payments-api/internal/webhook"
	"github.com/acme/payments-api/internal/webhooktest"
)

// recordingForwarder keeps what it was asked to deliver, in memory: the fuzz
// target exercises verification and routing, not the network.
type recordingForwarder struct {
	mu    sync.Mutex
	calls []forwardCall
}

type forwardCall struct {
	id   string
	body []byte
}

func (f *recordingForwarder) Forward(_ context.Context, id string, body []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, forwardCall{id, bytes.Clone(body)})
	return 1, nil
}

var knownDetails = map[string]bool{
	"The event body is larger than 512 KiB.":                           true,
	"The event body could not be read.":                                true,
	"The Stripe-Signature header is missing.":                          true,
	"The Stripe-Signature header is malformed.":                        true,
	"The Stripe-Signature header has no v1 signature.":                 true,
	"No v1 signature in the Stripe-Signature header matches the body.": true,
	"The Stripe-Signature timestamp is too old.":                       true,
	"The Stripe-Signature timestamp is in the future.":                 true,
	"The event body is not a valid Stripe event.":                      true,
	"The event has no id or type.":                                     true,
}

// FuzzWebhook feeds arbitrary bodies and Stripe-Signature headers to the handler.
// When sign is set the body is signed with the real secret (and header appended),
// so the fuzzer also reaches event decoding and routing.
func FuzzWebhook(f *testing.F) {
	completed := event("evt_fuzz", "checkout.session.completed", "2025-09-30.clover")
	f.Add(completed, "", true)
	f.Add(event("evt_fuzz2", "customer.created", "2023-10-16"), "", true)
	f.Add(completed, ",v1=00", true)
	f.Add(completed, ",v0=abcd", true)
	f.Add([]byte(`{"id":"evt_1","type":"checkout.session.completed","data":{"object":"x"}}`), "", true)
	f.Add([]byte(`not json`), "", true)
	f.Add([]byte(`null`), "", true)
	f.Add(completed, "garbage", false)
	f.Add(completed, "t=1,v1=abc", false)
	f.Add(completed, "t=99999999999,v1=abc", false)
	f.Add(completed, "t=,v1=", false)
	f.Add([]byte{}, "", false)

	fwd := &recordingForwarder{}
	h := webhook.Handler(webhook.Options{
		Secret:       stripeSecret,
		ForwardTypes: forwardTypes,
		Forwarder:    fwd,
		Registerer:   prometheus.NewRegistry(),
	})
	f.Fuzz(func(t *testing.T, body []byte, header string, sign bool) {
		if sign {
			header = webhooktest.Sign(body, stripeSecret, time.Now()) + header
		}
		fwd.mu.Lock()
		fwd.calls = nil
		fwd.mu.Unlock()

		req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(body))
		if header != "" {
			req.Header["Stripe-Signature"] = []string{header}
		}
		ctx, _ := requestlog.New(req.Context(), "req-fuzz")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req.WithContext(ctx))

		fwd.mu.Lock()
		calls := fwd.calls
		fwd.mu.Unlock()
		switch w.Code {
		case http.StatusOK:
			// Only a genuine signature gets through.
			if err := stripewebhook.ValidatePayload(body, header, stripeSecret); err != nil {
				t.Fatalf("200 for a body the library refuses: %v", err)
			}
			var ev struct{ ID, Type string }
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatalf("200 for a body that is not JSON: %v", err)
			}
			switch got := w.Body.String(); got {
			case `{"received":true,"forwarded":true}` + "\n":
				if len(calls) != 1 || calls[0].id != ev.ID || !bytes.Equal(calls[0].body, body) {
					t.Fatalf("forwarded %d calls, want exactly the received event", len(calls))
				}
			case `{"received":true,"forwarded":false}` + "\n":
				if len(calls) != 0 {
					t.Fatal("an ignored event was forwarded")
				}
			default:
				t.Fatalf("unexpected 200 body %q", got)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if len(calls) != 0 {
				t.Fatal("a refused event was forwarded")
			}
			if got, want := w.Header().Get("Content-Type"), problem.ContentType; got != want {
				t.Fatalf("Content-Type = %q, want %q", got, want)
			}
			var p problem.Body
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body %q: %v", w.Body.String(), err)
			}
			if !knownDetails[p.Detail] || p.Status != w.Code {
				t.Fatalf("problem %+v: unknown detail or status", p)
			}
			if len(header) >= 12 && strings.Contains(w.Body.String(), header) {
				t.Fatal("the response echoes the header")
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}
