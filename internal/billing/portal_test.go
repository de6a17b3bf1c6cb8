package billing

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/origin"
	"github.com/acme/payments-api/internal/stripemock"
)

func TestPortal(t *testing.T) {
	mock := stripemock.Start(t)
	const portalPrefix = "https://billing.stripe.com/p/session/"

	t.Run("opens the portal for the user's customer", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := addCustomer(proxy, ada)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), portalConfig: "bpc_test123"})
		other := "http://localhost:3000/settings?tab=billing"
		tests := []struct {
			name, contentType, body, returnURL string
		}{
			{"no body", "", "", testReturnURL},
			{"JSON content type, no body", "application/json", "", testReturnURL},
			{"empty object", "application/json", "{}", testReturnURL},
			{"null return_url", "application/json", `{"return_url":null}`, testReturnURL},
			{"return_url", "application/json; charset=utf-8", `{"return_url":"` + other + `"}`, other},
		}
		for i, tt := range tests {
			var got portalResponse
			decodeOK(t, s.openPortal(ada, tt.contentType, tt.body), &got)
			if !strings.HasPrefix(got.URL, portalPrefix) {
				t.Errorf("%s: url = %q, want a billing portal URL", tt.name, got.URL)
			}
			calls := proxy.CallsTo(http.MethodPost, "/v1/billing_portal/sessions")
			if len(calls) != i+1 {
				t.Fatalf("%s: %d portal sessions, want %d", tt.name, len(calls), i+1)
			}
			want := url.Values{"customer": {cus}, "return_url": {tt.returnURL}, "configuration": {"bpc_test123"}}
			if got := calls[i].Form; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: form reaching Stripe:\n got %v\nwant %v", tt.name, got, want)
			}
		}
		if got := s.count(t, "payments_api_portal_sessions_total", OutcomePortalCreated); got != float64(len(tests)) {
			t.Errorf("portal created = %v, want %d", got, len(tests))
		}
		// Opening the portal is no checkout: it neither creates nor counts customers.
		if n := len(proxy.CallsTo(http.MethodPost, "/v1/customers")); n != 0 {
			t.Errorf("%d customers created, want 0", n)
		}
		if got := s.customers(t, CustomerFound); got != 0 {
			t.Errorf("customers found = %v, want 0", got)
		}
	})

	t.Run("account default configuration", func(t *testing.T) {
		proxy := newProxy(t, mock)
		addCustomer(proxy, bob)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
		decodeOK(t, s.openPortal(bob, "", ""), &portalResponse{})
		calls := proxy.CallsTo(http.MethodPost, "/v1/billing_portal/sessions")
		if len(calls) != 1 || calls[0].Form.Has("configuration") {
			t.Errorf("portal calls = %+v, want one without configuration", calls)
		}
	})

	t.Run("a user without customer: 404", func(t *testing.T) {
		proxy := newProxy(t, mock)
		store := newMemStore(nil)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), store: store})
		wantProblem(t, s.openPortal(ada, "", ""), http.StatusNotFound, "no billing account yet")
		if n := len(proxy.CallsTo(http.MethodPost, "/v1/billing_portal/sessions")) + len(proxy.CallsTo(http.MethodPost, "/v1/customers")); n != 0 {
			t.Errorf("%d portal sessions or customers created, want 0", n)
		}
		if got := s.count(t, "payments_api_portal_sessions_total", OutcomeNoCustomer); got != 1 {
			t.Errorf("no_customer = %v, want 1", got)
		}
		if got := store.get(ada.UserID); got != "" {
			t.Errorf("store holds %q, want nothing", got)
		}
	})

	t.Run("found through the store", func(t *testing.T) {
		proxy := newProxy(t, mock)
		cus := proxy.AddCustomer(ada.Email, nil)
		s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1), store: newMemStore(map[string]string{ada.UserID: cus})})
		decodeOK(t, s.openPortal(ada, "", ""), &portalResponse{})
		if n := len(proxy.CallsTo(http.MethodGet, "/v1/customers/search")); n != 0 {
			t.Errorf("%d searches, want 0", n)
		}
	})

	t.Run("Stripe failures", func(t *testing.T) {
		for _, tt := range []struct {
			name, method, path string
			status             int
		}{
			{"search", "GET", "/v1/customers/search", 500},
			{"portal", "POST", "/v1/billing_portal/sessions", 500},
			{"portal not configured", "POST", "/v1/billing_portal/sessions", 400},
		} {
			proxy := newProxy(t, mock)
			addCustomer(proxy, ada)
			proxy.Intercept(stripeError(tt.method, tt.path, tt.status, "invalid_request_error", ""))
			s := newStack(t, config{stripe: newStripeClient(t, proxy.URL, 5*time.Second, -1)})
			wantProblem(t, s.openPortal(ada, "", ""), http.StatusBadGateway, "could not open the billing portal")
		}
	})
}

// TestPortalBadRequests sends every kind of bad body. Its Stripe port points
// at a closed port: a request that wrongly passed validation would come back
// 502, not the status wanted.
func TestPortalBadRequests(t *testing.T) {
	s := newStack(t, config{stripe: newStripeClient(t, closedPort(t), time.Second, -1)})
	const json = "application/json"
	withURL := func(u string) string { return fmt.Sprintf(`{"return_url":%q}`, u) }
	tests := []struct {
		name, contentType, body string
		status                  int
		detail                  string
	}{
		{"body without content type", "", `{}`, 415, "application/json"},
		{"text/plain", "text/plain", `{}`, 415, "application/json"},
		{"form", "application/x-www-form-urlencoded", "return_url=x", 415, "application/json"},
		{"latin-1 charset", "application/json; charset=latin1", `{}`, 415, "charset=utf-8"},
		{"too large", json, withURL("https://app.example.com/" + strings.Repeat("a", MaxBodyBytes)), 413, "at most 16384 bytes"},
		{"not JSON", json, "return_url=x", 400, "not valid JSON"},
		{"whitespace only", json, " ", 400, "empty"},
		{"array", json, `[]`, 400, "must be a JSON object"},
		{"two objects", json, `{}{}`, 400, "single JSON object"},
		{"customer", json, `{"customer":"cus_123"}`, 400, `Unknown field "customer": the body takes only return_url`},
		{"user_id", json, `{"user_id":"user_2evil"}`, 400, `Unknown field "user_id"`},
		{"RETURN_URL", json, `{"RETURN_URL":"https://app.example.com/account"}`, 400, `Unknown field "RETURN_URL": the body takes only return_url`},
		{"Return_Url", json, `{"Return_Url":"https://app.example.com/account"}`, 400, `Unknown field "Return_Url"`},
		{"return_url twice", json, `{"return_url":"https://app.example.com/account","return_url":"https://app.example.com/x"}`, 400, `Field "return_url" appears twice`},
		{"unclosed object", json, `{"return_url":"https://app.example.com/account"`, 400, "not valid JSON"},
		{"return_url not a string", json, `{"return_url":1}`, 400, "return_url must be a string"},
		{"return_url empty", json, withURL(""), 400, "return_url must be an absolute http(s) URL on an allowed origin"},
		{"return_url other host", json, withURL("https://evil.example/account"), 400, "return_url must be"},
		{"return_url suffix host", json, withURL("https://app.example.com.evil.example/"), 400, "return_url must be"},
		{"return_url userinfo", json, withURL("https://app.example.com@evil.example/"), 400, "return_url must be"},
		{"return_url backslash", json, withURL(`https://app.example.com\@evil.example/`), 400, "return_url must be"},
		{"return_url javascript", json, withURL("javascript:alert(1)"), 400, "return_url must be"},
		{"return_url relative", json, withURL("/account"), 400, "return_url must be"},
		{"return_url protocol-relative", json, withURL("//evil.example/"), 400, "return_url must be"},
		{"return_url wrong scheme", json, withURL("http://app.example.com/account"), 400, "return_url must be"},
		{"return_url wrong port", json, withURL("https://app.example.com:8443/account"), 400, "return_url must be"},
		{"return_url too long", json, withURL("https://app.example.com/" + strings.Repeat("a", origin.MaxURLLength)), 400, "return_url must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, s.openPortal(ada, tt.contentType, tt.body), tt.status, tt.detail)
		})
	}
	if got, want := s.count(t, "payments_api_portal_sessions_total", OutcomeInvalidRequest), float64(len(tests)); got != want {
		t.Errorf("invalid_request = %v, want %v", got, want)
	}
	if got := s.count(t, "payments_api_portal_sessions_total", OutcomeStripeError); got != 0 {
		t.Errorf("stripe_error = %v, want 0: a bad request reached Stripe", got)
	}
}
