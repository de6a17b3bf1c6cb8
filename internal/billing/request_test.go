package billing

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/origin"
)

// TestBadRequests sends every kind of bad input through the handler. Its Stripe
// port points at a closed port: a request that wrongly passed validation would
// come back 502, not the status wanted.
func TestBadRequests(t *testing.T) {
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), time.Second, -1)})
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
	if got, want := s.sessions(t, OutcomeInvalidRequest), float64(len(tests)); got != want {
		t.Errorf("invalid_request = %v, want %v", got, want)
	}
	if got := s.sessions(t, OutcomeStripeError); got != 0 {
		t.Errorf("stripe_error = %v, want 0: a bad request reached Stripe", got)
	}
}

func TestNoIdentity(t *testing.T) {
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), time.Second, -1)})
	for name, h := range map[string]http.Handler{"checkout": s.checkout, "portal": s.portal, "subscription": s.subscription} {
		method := http.MethodPost
		if name == "subscription" {
			method = http.MethodGet
		}
		for _, who := range []*auth.Identity{nil, {SessionID: "sess_1"}} { // an identity without a user is no better
			w := serve(h, newRequest(method, "/", who, "application/json", `{"price_id":"`+priceSub+`"}`, nil))
			wantProblem(t, w, http.StatusInternalServerError, "could not complete")
		}
	}
	if got := s.sessions(t, OutcomeUnauthenticated); got != 2 {
		t.Errorf("checkout unauthenticated = %v, want 2", got)
	}
	if got := s.count(t, "payments_api_portal_sessions_total", OutcomeUnauthenticated); got != 2 {
		t.Errorf("portal unauthenticated = %v, want 2", got)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), time.Second, -1)})
	for _, tt := range []struct {
		h      http.Handler
		method string
		allow  string
	}{
		{s.checkout, http.MethodGet, http.MethodPost},
		{s.portal, http.MethodGet, http.MethodPost},
		{s.subscription, http.MethodPost, http.MethodGet},
	} {
		w := serve(tt.h, newRequest(tt.method, "/", &ada, "application/json", "", nil))
		wantProblem(t, w, http.StatusMethodNotAllowed, tt.allow)
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("Allow = %q, want %q", got, tt.allow)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	port := newStripeClient(t, closedPort(t), time.Second, -1)
	customers, err := NewCustomers(CustomerOptions{Stripe: port})
	if err != nil {
		t.Fatal(err)
	}
	checkout := func() CheckoutOptions {
		return CheckoutOptions{
			Stripe: port, Customers: customers, PriceIDs: []string{priceSub}, Origins: testOrigins,
			SuccessURL: testSuccessURL, CancelURL: testCancelURL,
		}
	}
	for name, modify := range map[string]func(*CheckoutOptions){
		"no Stripe":          func(o *CheckoutOptions) { o.Stripe = nil },
		"no customers":       func(o *CheckoutOptions) { o.Customers = nil },
		"no prices":          func(o *CheckoutOptions) { o.PriceIDs = nil },
		"empty price":        func(o *CheckoutOptions) { o.PriceIDs = []string{""} },
		"no origins":         func(o *CheckoutOptions) { o.Origins = origin.Set{} },
		"no cancel URL":      func(o *CheckoutOptions) { o.CancelURL = "" },
		"negative trial":     func(o *CheckoutOptions) { o.TrialDays = -1 },
		"trial beyond 730":   func(o *CheckoutOptions) { o.TrialDays = MaxTrialDays + 1 },
		"negative price TTL": func(o *CheckoutOptions) { o.PriceTTL = -time.Second },
	} {
		o := checkout()
		modify(&o)
		if h, err := CheckoutHandler(o); err == nil {
			t.Errorf("checkout %s: accepted: %v", name, h)
		}
	}
	portal := func() PortalOptions {
		return PortalOptions{Stripe: port, Customers: customers, Origins: testOrigins, ReturnURL: testReturnURL}
	}
	for name, modify := range map[string]func(*PortalOptions){
		"no Stripe":     func(o *PortalOptions) { o.Stripe = nil },
		"no customers":  func(o *PortalOptions) { o.Customers = nil },
		"no origins":    func(o *PortalOptions) { o.Origins = origin.Set{} },
		"no return URL": func(o *PortalOptions) { o.ReturnURL = "" },
	} {
		o := portal()
		modify(&o)
		if h, err := PortalHandler(o); err == nil {
			t.Errorf("portal %s: accepted: %v", name, h)
		}
	}
	for name, o := range map[string]SubscriptionOptions{
		"no Stripe":       {Customers: customers},
		"no customers":    {Stripe: port},
		"TTL beyond 10 s": {Stripe: port, Customers: customers, CacheTTL: 11 * time.Second},
		"negative TTL":    {Stripe: port, Customers: customers, CacheTTL: -time.Second},
		"negative cap":    {Stripe: port, Customers: customers, MaxCachedUsers: -1},
	} {
		if h, err := SubscriptionHandler(o); err == nil {
			t.Errorf("subscription %s: accepted: %v", name, h)
		}
	}
	if _, err := NewCustomers(CustomerOptions{}); err == nil {
		t.Error("NewCustomers accepted no Stripe port")
	}

	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := NewCustomers(CustomerOptions{Stripe: port, Registerer: reg}); err != nil {
			t.Fatal(err)
		}
		if _, err := NewCustomers(CustomerOptions{Stripe: port, Registerer: reg}); err == nil {
			t.Error("NewCustomers registered its counter twice")
		}
		o := checkout()
		o.Registerer = reg
		if _, err := CheckoutHandler(o); err != nil {
			t.Fatal(err)
		}
		if _, err := CheckoutHandler(o); err == nil {
			t.Error("CheckoutHandler registered its counter twice")
		}
		p := portal()
		p.Registerer = reg
		if _, err := PortalHandler(p); err != nil {
			t.Fatal(err)
		}
		if _, err := PortalHandler(p); err == nil {
			t.Error("PortalHandler registered its counter twice")
		}
	})
}

func TestNewStripeClientRefused(t *testing.T) {
	tests := []StripeOptions{
		{SecretKey: ""},
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
