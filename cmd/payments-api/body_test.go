package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/problemtest"
)

// TestRefusedBodyIsReadable sends bodies beyond a route's limit, each over
// about a second, from clients that read only once they have sent everything
// (as most do): each must read its answer, never a reset. On its own net/http
// closes such a connection half a second after answering, and a client still
// sending then gets a reset.
func TestRefusedBodyIsReadable(t *testing.T) {
	st := startStack(t, map[string]string{"CHECKOUT_RATE_LIMIT": "off"})
	waitReady(t, st.svc.url)
	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_big", AuthorizedParty: testOrigin, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(st.svc.url)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, header string
		body               []byte
		want               int
		detail             string
	}{
		{"webhook, 600 KiB", "/stripe/webhook", "Stripe-Signature: t=1,v1=00\r\n",
			jsonOfSize(600 << 10), http.StatusRequestEntityTooLarge, "The event body is larger than 512 KiB."},
		{"checkout, 100 KiB", "/stripe/checkout", "Authorization: Bearer " + token + "\r\n",
			jsonOfSize(100 << 10), http.StatusRequestEntityTooLarge, "The body must be at most 16384 bytes."},
		{"checkout, 100 KiB without a token", "/stripe/checkout", "",
			jsonOfSize(100 << 10), http.StatusUnauthorized, "A bearer token is required."},
	}
	const attempts = 24 // at once: each takes about a second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers := make([]problemtest.Response, attempts)
			var wg sync.WaitGroup
			for i := range attempts {
				wg.Go(func() { answers[i] = sendSlowly(t, u.Host, tt.path, tt.header, tt.body) })
			}
			wg.Wait()
			for _, a := range answers {
				if a.Status != 0 {
					problemtest.Check(t, a, tt.want, tt.detail)
				}
			}
		})
	}
}

// jsonOfSize is a JSON object of exactly n bytes.
func jsonOfSize(n int) []byte {
	return []byte(`{"pad":"` + strings.Repeat("x", n-len(`{"pad":""}`)) + `"}`)
}

// sendSlowly writes a POST with body in 20 pieces 50 ms apart, then reads the
// answer. A network error fails the test and gives a zero Response.
func sendSlowly(t *testing.T, addr, path, header string, body []byte) problemtest.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return problemtest.Response{}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nOrigin: %s\r\n%sContent-Length: %d\r\n\r\n",
		path, testOrigin, header, len(body)); err != nil {
		t.Error(err)
		return problemtest.Response{}
	}
	for piece := range slices.Chunk(body, len(body)/20+1) {
		time.Sleep(50 * time.Millisecond) // a client on a slow link, not synchronisation
		if _, err := conn.Write(piece); err != nil {
			t.Errorf("writing the body: %v", err)
			return problemtest.Response{}
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Errorf("reading the answer: %v", err)
		return problemtest.Response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading the answer's body: %v", err)
	}
	return problemtest.Response{Status: resp.StatusCode, Header: resp.Header, Body: bytes.Clone(b)}
}
