package webhook_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/webhooktest"
)

// TestBodyCutShort: a client that declares a Content-Length and hangs up
// before sending it all gets a 400 problem, and nothing is forwarded.
func TestBodyCutShort(t *testing.T) {
	s := newStack(t, stackConfig{})
	body := event("evt_cut", "checkout.session.completed", "2025-09-30.clover")
	conn, err := net.Dial("tcp", s.api.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails, it doesn't block
	fmt.Fprintf(conn, "POST /stripe/webhook HTTP/1.1\r\nHost: payments\r\nContent-Type: application/json\r\n"+
		"Stripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s", webhooktest.Sign(body, stripeSecret, time.Now()), len(body)+10, body)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: raw, rec: s.record(t)}
	checkProblem(t, r, http.StatusBadRequest, "The event body could not be read.")
	if got := s.next.Requests(); got != 0 {
		t.Errorf("receiver got %d requests, want 0", got)
	}
	if got, want := events(t, s, "other", "invalid_payload"), 1.0; got != want {
		t.Errorf("events{other,invalid_payload} = %v, want %v", got, want)
	}
	checkNoLeak(t, r)
}
