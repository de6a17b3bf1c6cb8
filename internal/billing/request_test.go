package billing

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/origin"
)

// TestBadRequests sends every kind of bad input through the handler. Its Stripe
// port points at a closed port: a request that wrongly passed validation would
// come back 502, not the status wanted.
func TestBadRequests(t *testing.T) {
	s := newStack(t, testOptions(newStripeClient(t, closedPort(t), time.Second, -1)))
	const json = "application/json"
	price := `"price_id":"` + priceSub + `"`
	withURL := func(field, u string) string { return fmt.Sprintf(`{%s,%q:%q}`, price, field, u) }
	tooLarge := `{` + price + `,"success_url":"` + strings.Repeat("a", MaxBodyBytes) + `"}`

	tests := []struct {
		name        string
		contentType string
		body        string
		header      http.Header
		status      int
		detail      string
	}{
		{"no content type", "", `{` + price + `}`, nil, 415, "application/json"},
		{"text/plain", "text/plain", `{` + price + `}`, nil, 415, "application/json"},
		{"form", "application/x-www-form-urlencoded", "price_id=" + priceSub, nil, 415, "application/json"},
		{"json lookalike", "application/jsonx", `{` + price + `}`, nil, 415, "application/json"},
		{"latin-1 charset", "application/json; charset=latin1", `{` + price + `}`, nil, 415, "charset=utf-8"},
		{"other parameter", "application/json; boundary=x", `{` + price + `}`, nil, 415, "charset=utf-8"},
		{"malformed content type", "application/json; charset", `{` + price + `}`, nil, 415, "application/json"},
		{"too large", json, tooLarge, nil, 413, "at most 16384 bytes"},
		{"too large after an object", json, `{` + price + `}` + strings.Repeat(" ", MaxBodyBytes), nil, 413, "at most"},
		{"empty", json, "", nil, 400, "empty"},
		{"not JSON", json, "price_id=x", nil, 400, "not valid JSON"},
		{"truncated", json, `{"price_id":`, nil, 400, "not valid JSON"},
		{"array", json, `[{` + price + `}]`, nil, 400, "must be a JSON object"},
		{"string", json, `"` + priceSub + `"`, nil, 400, "must be a JSON object"},
		{"null", json, `null`, nil, 400, "price_id is required"},
		{"two objects", json, `{` + price + `}{` + price + `}`, nil, 400, "single JSON object"},
		{"trailing garbage", json, `{` + price + `}x`, nil, 400, "single JSON object"},
		{"user_id", json, `{` + price + `,"user_id":"user_2evil"}`, nil, 400, `Unknown field "user_id"`},
		{"email", json, `{` + price + `,"email":"eve@example.com"}`, nil, 400, `Unknown field "email"`},
		{"customer", json, `{` + price + `,"customer":"cus_123"}`, nil, 400, `Unknown field "customer"`},
		{"mode", json, `{` + price + `,"mode":"payment"}`, nil, 400, `Unknown field "mode"`},
		{"long unknown field", json, `{` + price + `,"` + strings.Repeat("x", 500) + `":1}`, nil, 400, `Unknown field "` + strings.Repeat("x", maxEchoedFieldNameLen) + `…"`},
		{"no price", json, `{"quantity":1}`, nil, 400, "price_id is required"},
		{"empty price", json, `{"price_id":""}`, nil, 400, "price_id is required"},
		{"price not offered", json, `{"price_id":"price_other"}`, nil, 400, "not one of the prices on offer"},
		{"price not a string", json, `{"price_id":42}`, nil, 400, "price_id must be a string"},
		{"quantity 0", json, `{` + price + `,"quantity":0}`, nil, 400, "quantity must be an integer from 1 to 100"},
		{"quantity 101", json, `{` + price + `,"quantity":101}`, nil, 400, "quantity must be an integer from 1 to 100"},
		{"quantity negative", json, `{` + price + `,"quantity":-1}`, nil, 400, "quantity must be"},
		{"quantity fraction", json, `{` + price + `,"quantity":1.5}`, nil, 400, "quantity must be"},
		{"quantity exponent", json, `{` + price + `,"quantity":1e2}`, nil, 400, "quantity must be"},
		{"quantity string", json, `{` + price + `,"quantity":"2"}`, nil, 400, "quantity must be"},
		{"quantity overflow", json, `{` + price + `,"quantity":99999999999999999999}`, nil, 400, "quantity must be"},
		{"success_url not a string", json, `{` + price + `,"success_url":1}`, nil, 400, "success_url must be a string"},
		{"success_url empty", json, withURL("success_url", ""), nil, 400, "success_url must be an absolute http(s) URL on an allowed origin"},
		{"success_url relative", json, withURL("success_url", "/checkout/success"), nil, 400, "success_url"},
		{"success_url protocol-relative", json, withURL("success_url", "//evil.example/x"), nil, 400, "success_url"},
		{"success_url other host", json, withURL("success_url", "https://evil.example/x"), nil, 400, "success_url"},
		{"success_url suffix host", json, withURL("success_url", "https://app.example.com.evil.example/x"), nil, 400, "success_url"},
		{"success_url trailing dot", json, withURL("success_url", "https://app.example.com./x"), nil, 400, "success_url"},
		{"success_url userinfo", json, withURL("success_url", "https://app.example.com@evil.example/x"), nil, 400, "success_url"},
		{"success_url userinfo on good host", json, withURL("success_url", "https://evil@app.example.com/x"), nil, 400, "success_url"},
		{"success_url backslash", json, withURL("success_url", `https://app.example.com\@evil.example/x`), nil, 400, "success_url"},
		{"success_url backslash host", json, withURL("success_url", `https://evil.example\.app.example.com/`), nil, 400, "success_url"},
		{"success_url javascript", json, withURL("success_url", "javascript:alert(1)"), nil, 400, "success_url"},
		{"success_url javascript mixed case", json, withURL("success_url", "JaVaScRiPt://app.example.com/%0aalert(1)"), nil, 400, "success_url"},
		{"success_url data", json, withURL("success_url", "data:text/html,<script>alert(1)</script>"), nil, 400, "success_url"},
		{"success_url opaque", json, withURL("success_url", "https:app.example.com/x"), nil, 400, "success_url"},
		{"success_url no host", json, withURL("success_url", "https:///app.example.com/x"), nil, 400, "success_url"},
		{"success_url wrong scheme", json, withURL("success_url", "http://app.example.com/x"), nil, 400, "success_url"},
		{"success_url wrong port", json, withURL("success_url", "https://app.example.com:8443/x"), nil, 400, "success_url"},
		{"success_url ftp", json, withURL("success_url", "ftp://app.example.com/x"), nil, 400, "success_url"},
		{"success_url space", json, withURL("success_url", "https://app.example.com/a b"), nil, 400, "success_url"},
		{"success_url newline", json, withURL("success_url", "https://app.example.com/a\nb"), nil, 400, "success_url"},
		{"success_url tab in host", json, withURL("success_url", "https://app.example\t.com/"), nil, 400, "success_url"},
		{"success_url non-ASCII host", json, withURL("success_url", "https://аpp.example.com/"), nil, 400, "success_url"},
		{"success_url too long", json, withURL("success_url", "https://app.example.com/"+strings.Repeat("a", origin.MaxURLLength)), nil, 400, "success_url"},
		{"cancel_url other host", json, withURL("cancel_url", "https://evil.example/"), nil, 400, "cancel_url must be an absolute http(s) URL on an allowed origin"},
		{"cancel_url javascript", json, withURL("cancel_url", "javascript:alert(1)"), nil, 400, "cancel_url"},
		{"idempotency key empty", json, `{` + price + `}`, http.Header{"Idempotency-Key": {""}}, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters"},
		{"idempotency key too long", json, `{` + price + `}`, http.Header{"Idempotency-Key": {strings.Repeat("k", 256)}}, 400, "Idempotency-Key must be"},
		{"idempotency key control", json, `{` + price + `}`, http.Header{"Idempotency-Key": {"a\x01b"}}, 400, "Idempotency-Key must be"},
		{"idempotency key tab", json, `{` + price + `}`, http.Header{"Idempotency-Key": {"a\tb"}}, 400, "Idempotency-Key must be"},
		{"idempotency key non-ASCII", json, `{` + price + `}`, http.Header{"Idempotency-Key": {"clé"}}, 400, "Idempotency-Key must be"},
		{"idempotency key twice", json, `{` + price + `}`, http.Header{"Idempotency-Key": {"a", "b"}}, 400, "at most one Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, s.call(&ada, tt.contentType, tt.body, tt.header), tt.status, tt.detail)
		})
	}
	if got, want := s.count(t, OutcomeInvalidRequest), float64(len(tests)); got != want {
		t.Errorf("invalid_request = %v, want %v", got, want)
	}
	if got := s.count(t, OutcomeStripeError); got != 0 {
		t.Errorf("stripe_error = %v, want 0: a bad request reached Stripe", got)
	}
}

func TestNoIdentity(t *testing.T) {
	s := newStack(t, testOptions(newStripeClient(t, closedPort(t), time.Second, -1)))
	wantProblem(t, s.call(nil, "application/json", `{"price_id":"`+priceSub+`"}`, nil), http.StatusInternalServerError, "could not complete")
	if got := s.count(t, OutcomeUnauthenticated); got != 1 {
		t.Errorf("unauthenticated = %v, want 1", got)
	}
	// An identity without a user is no better.
	wantProblem(t, s.call(&auth.Identity{SessionID: "sess_1"}, "application/json", `{"price_id":"`+priceSub+`"}`, nil), http.StatusInternalServerError, "could not complete")
}

func TestMethodNotAllowed(t *testing.T) {
	s := newStack(t, testOptions(newStripeClient(t, closedPort(t), time.Second, -1)))
	r := newRequest(&ada, "application/json", "", nil)
	r.Method = http.MethodGet
	w := s.serve(r)
	wantProblem(t, w, http.StatusMethodNotAllowed, "POST")
	if got := w.Header().Get("Allow"); got != http.MethodPost {
		t.Errorf("Allow = %q, want POST", got)
	}
}

func TestOptionsRefused(t *testing.T) {
	port := newStripeClient(t, closedPort(t), time.Second, -1)
	tests := []struct {
		name   string
		modify func(*Options)
	}{
		{"no Stripe", func(o *Options) { o.Stripe = nil }},
		{"no prices", func(o *Options) { o.PriceIDs = nil }},
		{"empty price", func(o *Options) { o.PriceIDs = []string{""} }},
		{"no origins", func(o *Options) { o.AllowedOrigins = nil }},
		{"origin with path", func(o *Options) { o.AllowedOrigins = []string{"https://app.example.com/app"} }},
		{"origin wildcard", func(o *Options) { o.AllowedOrigins = []string{"*"} }},
		{"success URL off origin", func(o *Options) { o.SuccessURL = "https://evil.example/s" }},
		{"cancel URL empty", func(o *Options) { o.CancelURL = "" }},
		{"zero rate", func(o *Options) { o.RateLimit = 0; o.RateBurst = 10 }},
		{"zero burst", func(o *Options) { o.RateLimit = 1; o.RateBurst = 0 }},
		{"negative cap", func(o *Options) { o.RateLimit = 1; o.RateBurst = 1; o.MaxTrackedUsers = -1 }},
		{"negative TTL", func(o *Options) { o.PriceTTL = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(port)
			tt.modify(&o)
			if h, err := Handler(o); err == nil {
				t.Fatalf("Handler accepted the options: %v", h)
			}
		})
	}
	t.Run("metric registered twice", func(t *testing.T) {
		s := newStack(t, testOptions(port))
		o := testOptions(port)
		o.Registerer = s.reg
		if _, err := Handler(o); err == nil {
			t.Fatal("Handler registered the counter twice")
		}
	})
}

func TestNewStripeClientRefused(t *testing.T) {
	tests := []StripeOptions{
		{SecretKey: ""},
		{SecretKey: "sk_test_abc", APIURL: "localhost:12111"},
		{SecretKey: "sk_test_abc", APIURL: "ftp://localhost:12111"},
		{SecretKey: "sk_test_abc", Timeout: -time.Second},
		{SecretKey: "sk_test_abc", MaxRetries: 3},
	}
	for _, o := range tests {
		if _, err := NewStripeClient(o); err == nil {
			t.Errorf("NewStripeClient(%+v) accepted", o)
		} else if strings.Contains(err.Error(), "sk_test_abc") {
			t.Errorf("NewStripeClient error echoes the key: %v", err)
		}
	}
}
