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
	"github.com/acme/payments-api/internal/polltest"
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
	got := rc.Deliveries()
	if len(got) != 1 || got[0].ID != "evt_1" {
		t.Fatalf("recorded %d deliveries, want the stalled one", len(got))
	}
	if got[0].Status != fakenext.StatusClientClosed || got[0].Accepted() || len(rc.Processed()) != 0 {
		t.Errorf("stalled delivery = status %d, processed %d; want %d and not processed: the sender never got an answer",
			got[0].Status, len(rc.Processed()), fakenext.StatusClientClosed)
	}
}

// TestRefuse: while refusing, every verified request gets the refusal status
// and nothing is processed; after Accept (or the span) events are taken again.
func TestRefuse(t *testing.T) {
	var out bytes.Buffer
	rc := fakenext.New(secret, fakenext.WithOutput(&out))
	srv := httptest.NewServer(rc)
	defer srv.Close()
	deliver := func() int {
		status, _ := send(t, srv.URL, body, webhooktest.Sign(body, secret, time.Now()))
		return status
	}

	rc.Refuse(http.StatusServiceUnavailable, 0)
	for range 3 {
		if got, want := deliver(), http.StatusServiceUnavailable; got != want {
			t.Fatalf("status while refusing = %d, want %d", got, want)
		}
	}
	if got := len(rc.Processed()); got != 0 {
		t.Errorf("processed %d while refusing, want 0", got)
	}
	rc.Accept()
	if got, want := deliver(), http.StatusOK; got != want {
		t.Errorf("status after Accept = %d, want %d", got, want)
	}

	rc.Refuse(http.StatusNotFound, 50*time.Millisecond)
	if got, want := deliver(), http.StatusNotFound; got != want {
		t.Errorf("status during a timed refusal = %d, want %d", got, want)
	}
	polltest.Eventually(t, "the end of a 50 ms refusal", func() bool { return deliver() == http.StatusOK })
	if got := len(rc.Processed()); got != 1 {
		t.Errorf("processed %d, want 1", got)
	}
	if got := len(rc.Deliveries()); got < 6 {
		t.Errorf("recorded %d deliveries, want every refused one too", got)
	}
	for _, want := range []string{"refuses events with 503 until told to accept", "accepts events again", "refuses events with 404 for 50ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestControlHandler(t *testing.T) {
	rc := fakenext.New(secret)
	hook := httptest.NewServer(rc)
	defer hook.Close()
	ctl := httptest.NewServer(rc.ControlHandler())
	defer ctl.Close()
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Post(ctl.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deliver := func() int {
		status, _ := send(t, hook.URL, body, webhooktest.Sign(body, secret, time.Now()))
		return status
	}

	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
		wantHook   int // what a delivery gets afterwards
	}{
		{"/refuse", 200, `"status":503,"for":"until told to accept"`, 503},
		{"/accept", 200, `{"refusing":false}`, 200},
		{"/refuse?for=1h&status=500", 200, `"status":500,"for":"for 1h0m0s"`, 500},
		{"/refuse?for=soon", 400, "for:", 500},
		{"/refuse?status=200", 400, "status:", 500},
		{"/refuse?for=-1s", 400, "for:", 500},
		{"/accept", 200, `{"refusing":false}`, 200},
	}
	for _, tt := range tests {
		status, b := post(tt.path)
		if status != tt.wantStatus || !strings.Contains(b, tt.wantBody) {
			t.Errorf("POST %s = %d %q, want %d containing %q", tt.path, status, b, tt.wantStatus, tt.wantBody)
		}
		if got := deliver(); got != tt.wantHook {
			t.Errorf("after POST %s: delivery status = %d, want %d", tt.path, got, tt.wantHook)
		}
	}
	resp, err := http.Get(ctl.URL + "/refuse")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /refuse = %d, want 405", resp.StatusCode)
	}
}
