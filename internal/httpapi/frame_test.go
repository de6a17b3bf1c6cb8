package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/metricstest"
	"github.com/acme/payments-api/internal/polltest"
)

// liveServer serves the test server over real HTTP, with checkout (also the
// portal and the subscription state) and webhook as its handlers: net/http
// itself must see what the frame does with a response cut short.
func liveServer(t *testing.T, checkout, webhook http.Handler) (*httptest.Server, *prometheus.Registry, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	ts := newTestServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		o.Checkout, o.Portal, o.Subscription, o.Webhook = checkout, checkout, checkout, webhook
	})
	srv := httptest.NewServer(ts.handler)
	t.Cleanup(srv.Close)
	return srv, ts.reg, logs
}

func TestPanicAfterResponseStartedIsCutCountedAndLogged(t *testing.T) {
	srv, reg, logs := liveServer(t,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"session_id":`)
			http.NewResponseController(w).Flush()
			panic("boom after writing: secret internals")
		}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }),
	)

	resp, err := http.Post(srv.URL+"/stripe/checkout", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the client read a whole body from a response cut by a panic")
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want the 200 that was already sent", resp.StatusCode)
	}

	// A handler's own abort (a proxy whose upstream broke) is counted as well.
	if resp, err := http.Post(srv.URL+"/stripe/webhook", "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		t.Error("an aborted response reached the client")
	}

	polltest.Eventually(t, "both access-log lines", func() bool { return len(logs.Records(t, "msg", "request")) == 2 })
	for _, line := range logs.Records(t, "msg", "request") {
		if line["level"] != "ERROR" || line["aborted"] != true || line["status"] != 200.0 {
			t.Errorf("access log %v: want level ERROR, aborted, status 200", line)
		}
	}
	checkoutLine := logs.Records(t, "msg", "request")[0]
	if line := logs.Records(t, "msg", "request")[1]; line["route"] == "/stripe/checkout" {
		checkoutLine = line
	}
	if e, _ := checkoutLine["error"].(string); !strings.Contains(e, "boom after writing") || !strings.Contains(e, "after the response started") {
		t.Errorf("access log error = %q, want the panic, after the response started", e)
	}
	panics := logs.Records(t, "msg", "panic")
	if len(panics) != 1 || !strings.Contains(fmt.Sprint(panics[0]["stack"]), "goroutine") {
		t.Errorf("panic lines = %v, want one, with its stack (none for the deliberate abort)", panics)
	}
	for route, want := range map[string]float64{"/stripe/checkout": 1, "/stripe/webhook": 1} {
		if got := metricstest.Value(t, reg, "payments_api_http_requests_total", map[string]string{"route": route, "method": "POST", "code": "200"}); got != want {
			t.Errorf("requests_total{%s,POST,200} = %v, want %v", route, got, want)
		}
		if got := metricstest.Value(t, reg, "payments_api_http_request_duration_seconds", map[string]string{"route": route, "method": "POST"}); got != want {
			t.Errorf("duration{%s,POST} observations = %v, want %v", route, got, want)
		}
	}
}

func TestLimitBodyRefusesBeyondItsLimit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		size    int
		wantErr bool
	}{{"at the limit", 1000, false}, {"one byte beyond", 1001, true}} {
		t.Run(tt.name, func(t *testing.T) {
			var got error
			var n int
			h := limitBody(1000, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var b []byte
				b, got = io.ReadAll(r.Body)
				n = len(b)
			}))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(make([]byte, tt.size))))
			var tooLarge *http.MaxBytesError
			if (got != nil) != tt.wantErr || (tt.wantErr && !errors.As(got, &tooLarge)) || n > 1000 {
				t.Errorf("read %d bytes, err %v; want at most 1000 and a *http.MaxBytesError: %t", n, got, tt.wantErr)
			}
		})
	}
}

// countingBody is a request body that counts the bytes read from it.
type countingBody struct {
	r    io.Reader
	read int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { return nil }

// TestLimitBodyDrainsPastItsLimit: once the handler has answered, what the
// client still sends is read and discarded up to 1 MiB past the limit, so that
// the client, still sending, can read the answer; beyond that it is cut off.
func TestLimitBodyDrainsPastItsLimit(t *testing.T) {
	const limit = 1000
	for _, tt := range []struct {
		name     string
		size     int
		expect   string // the request's Expect header
		readAll  bool   // the handler reads the body (to its limit)
		wantRead int
	}{
		{"unread, well past the limit", limit + 3<<20, "", false, limit + 1<<20},
		{"read to the limit, well past it", limit + 3<<20, "", true, limit + 1<<20},
		{"unread, within the drain", limit + 1<<19, "", false, limit + 1<<19},
		{"unread, 100-continue not answered", limit + 3<<20, "100-continue", false, 0},
		{"read, 100-continue answered", limit + 3<<20, "100-continue", true, limit + 1<<20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingBody{r: bytes.NewReader(make([]byte, tt.size))}
			h := limitBody(limit, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.readAll {
					_, _ = io.ReadAll(r.Body)
				}
				w.WriteHeader(http.StatusRequestEntityTooLarge)
			}))
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body = body
			if tt.expect != "" {
				req.Header.Set("Expect", tt.expect)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if body.read != tt.wantRead {
				t.Errorf("%d bytes of %d read from the client, want %d", body.read, tt.size, tt.wantRead)
			}
		})
	}
}
