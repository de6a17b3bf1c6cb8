package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/requestlog"
)

func TestWrite(t *testing.T) {
	cause := errors.New("stripe: invalid api key sk_test_leak")
	tests := []struct {
		name       string
		err        error
		status     int
		detail     string
		header     string // Retry-After
		typ        string
		loggedCase error
	}{
		{"client error", New(http.StatusBadRequest, "price_id is required"), 400, "price_id is required", "", "about:blank", nil},
		{"wrapped cause stays in the log", Wrap(http.StatusBadGateway, "Stripe is unavailable.", cause), 502, "Stripe is unavailable.", "", "about:blank", cause},
		{"problem wrapped further", fmt.Errorf("checkout: %w", New(http.StatusTooManyRequests, "slow down").WithHeader("Retry-After", "7")), 429, "slow down", "7", "about:blank", nil},
		{"unknown error is a generic 500", cause, 500, "The server could not complete the request.", "", "about:blank", cause},
		{"empty detail gets the title", &Error{Status: http.StatusNotFound, Type: "https://example.com/probs/missing"}, 404, "Not Found", "", "https://example.com/probs/missing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, rec := requestlog.New(t.Context(), "req-1")
			w := httptest.NewRecorder()
			Write(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx), tt.err)

			if w.Code != tt.status {
				t.Errorf("status = %d, want %d", w.Code, tt.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != ContentType {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := w.Header().Get("Retry-After"); got != tt.header {
				t.Errorf("Retry-After = %q, want %q", got, tt.header)
			}
			if strings.Contains(w.Body.String(), "sk_test_leak") {
				t.Errorf("the cause leaked: %s", w.Body)
			}
			var got Body
			dec := json.NewDecoder(w.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			want := Body{Type: tt.typ, Title: http.StatusText(tt.status), Status: tt.status, Detail: tt.detail, RequestID: "req-1"}
			if got != want {
				t.Errorf("body = %+v, want %+v", got, want)
			}
			if !errors.Is(rec.Err(), tt.err) {
				t.Errorf("logged error = %v, want %v", rec.Err(), tt.err)
			}
			if tt.loggedCase != nil && !strings.Contains(rec.Err().Error(), tt.loggedCase.Error()) {
				t.Errorf("logged error %q lacks the cause", rec.Err())
			}
		})
	}
}

// TestWireNames pins the JSON member names clients read (RFC 9457 plus
// request_id); the other tests decode into Body, whose tags define them.
func TestWireNames(t *testing.T) {
	ctx, _ := requestlog.New(t.Context(), "req-7")
	w := httptest.NewRecorder()
	Write(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx), New(http.StatusBadRequest, "price_id is required"))
	want := `{"type":"about:blank","title":"Bad Request","status":400,"detail":"price_id is required","request_id":"req-7"}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
}
