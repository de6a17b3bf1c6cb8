package fakenext_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/webhooktest"
)

const secret = "whsec_test_nextjs_fedcba9876543210"

var body = []byte(`{"id":"evt_1","object":"event","api_version":"2025-09-30.clover","type":"checkout.session.completed","data":{"object":{"object":"checkout.session","customer_email":"jane@example.com"}}}`)

func send(t *testing.T, url string, b []byte, sig string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	req.Header.Set("Idempotency-Key", "evt_1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestRejectsUnverifiedRequests(t *testing.T) {
	var out bytes.Buffer
	rc := fakenext.New(secret, fakenext.WithOutput(&out))
	srv := httptest.NewServer(rc)
	defer srv.Close()
	tests := []struct{ name, sig string }{
		{"no signature", ""},
		{"wrong secret", webhooktest.Sign(body, "whsec_other", time.Now())},
		{"stale", webhooktest.Sign(body, secret, time.Now().Add(-time.Hour))},
		{"garbage", "t=1,v1=zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _ := send(t, srv.URL, body, tt.sig)
			if got, want := status, http.StatusBadRequest; got != want {
				t.Errorf("status = %d, want %d", got, want)
			}
		})
	}
	if got := len(rc.Deliveries()); got != 0 {
		t.Errorf("recorded %d deliveries, want 0", got)
	}
	if got, want := rc.Requests(), len(tests); got != want {
		t.Errorf("Requests() = %d, want %d", got, want)
	}
	if strings.Contains(out.String(), "jane@") {
		t.Errorf("output leaks the payload: %s", out.String())
	}
}

func TestRecordsScriptedDeliveriesAndDuplicates(t *testing.T) {
	var out bytes.Buffer
	codes := []int{500, 200, 200, 204}
	rc := fakenext.New(secret,
		fakenext.WithOutput(&out),
		fakenext.WithRespond(func(n int) int { return codes[n-1] }))
	srv := httptest.NewServer(rc)
	defer srv.Close()

	for i, want := range codes {
		status, _ := send(t, srv.URL, body, webhooktest.Sign(body, secret, time.Now()))
		if status != want {
			t.Errorf("request %d: status = %d, want %d", i+1, status, want)
		}
	}
	got := rc.Deliveries()
	if len(got) != len(codes) {
		t.Fatalf("recorded %d deliveries, want %d", len(got), len(codes))
	}
	wantDup := []bool{false, false, true, true}
	for i, d := range got {
		if d.N != i+1 || d.ID != "evt_1" || d.Type != "checkout.session.completed" || d.Status != codes[i] || d.Duplicate != wantDup[i] {
			t.Errorf("delivery %d = {N:%d ID:%s Type:%s Status:%d Duplicate:%t}, want status %d duplicate %t",
				i+1, d.N, d.ID, d.Type, d.Status, d.Duplicate, codes[i], wantDup[i])
		}
		if !bytes.Equal(d.Body, body) || d.Header.Get("Idempotency-Key") != "evt_1" {
			t.Errorf("delivery %d lost its body or headers", i+1)
		}
	}
	if got, want := len(rc.Processed()), 1; got != want {
		t.Errorf("Processed() has %d, want %d", got, want)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(codes) {
		t.Fatalf("output has %d lines, want %d:\n%s", len(lines), len(codes), out.String())
	}
	if want := "next.js received evt_1 checkout.session.completed -> 200 (duplicate, already processed)"; lines[2] != want {
		t.Errorf("output line 3 = %q, want %q", lines[2], want)
	}
	if strings.Contains(out.String(), "jane@") {
		t.Errorf("output leaks the payload: %s", out.String())
	}
}

func TestDelayEndsWithTheRequest(t *testing.T) {
	rc := fakenext.New(secret, fakenext.WithDelay(func(int) time.Duration { return time.Hour }))
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", webhooktest.Sign(body, secret, time.Now()))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a delayed request was answered")
	}
	// The receiver notices the hang-up and records the delivery it stalled; Close
	// returns once the handler has.
	srv.Close()
	if got := rc.Deliveries(); len(got) != 1 || got[0].ID != "evt_1" {
		t.Fatalf("recorded %d deliveries, want the stalled one", len(got))
	}
}
