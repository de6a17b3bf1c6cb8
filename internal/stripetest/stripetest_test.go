package stripetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/stripemock"
)

// client calls a Proxy as stripe-go would, with stripe-mock's key.
type client struct {
	t    *testing.T
	base string
}

// do sends the form (as the body of a POST, else as the query) and returns
// the status, the decoded answer and the response headers.
func (c client) do(method, path string, form url.Values, key string) (int, map[string]any, http.Header) {
	c.t.Helper()
	var body io.Reader
	u := c.base + path
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if len(form) > 0 {
		u += "?" + form.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+stripemock.Key)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		c.t.Fatalf("%s %s: decode: %v", method, path, err)
	}
	return res.StatusCode, doc, res.Header
}

func errorCode(doc map[string]any) string {
	e, _ := doc["error"].(map[string]any)
	code, _ := e["code"].(string)
	typ, _ := e["type"].(string)
	return typ + "/" + code
}

func ids(doc map[string]any) []string {
	var out []string
	data, _ := doc["data"].([]any)
	for _, o := range data {
		m, _ := o.(map[string]any)
		id, _ := m["id"].(string)
		status, _ := m["status"].(string)
		out = append(out, strings.TrimSpace(id+" "+status))
	}
	return out
}

func TestProxy(t *testing.T) {
	mock := stripemock.Start(t)

	t.Run("customers: create, replay, conflict, search, retrieve", func(t *testing.T) {
		p := Start(t, mock.URL)
		c := client{t, p.URL}
		form := url.Values{"email": {"ada@example.com"}, "metadata[clerk_user_id]": {"user_1"}}

		status, first, _ := c.do("POST", "/v1/customers", form, "key-1")
		if status != 200 || first["email"] != "ada@example.com" || !strings.HasPrefix(first["id"].(string), "cus_") {
			t.Fatalf("create: %d %v", status, first)
		}
		status, again, h := c.do("POST", "/v1/customers", form, "key-1")
		if status != 200 || again["id"] != first["id"] || h.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay: %d %v (replayed %q), want the same customer", status, again["id"], h.Get("Idempotent-Replayed"))
		}
		status, conflict, _ := c.do("POST", "/v1/customers", url.Values{"email": {"new@example.com"}, "metadata[clerk_user_id]": {"user_1"}}, "key-1")
		if status != 400 || errorCode(conflict) != "idempotency_error/" {
			t.Errorf("same key, other parameters: %d %v, want 400 idempotency_error", status, conflict)
		}
		if got := len(p.Customers()); got != 1 {
			t.Errorf("%d customers, want 1", got)
		}

		status, found, _ := c.do("GET", "/v1/customers/search", url.Values{"query": {`metadata['clerk_user_id']:'user_1'`}}, "")
		if got := ids(found); status != 200 || !slices.Equal(got, []string{first["id"].(string)}) {
			t.Errorf("search: %d %v, want the created customer", status, got)
		}
		status, none, _ := c.do("GET", "/v1/customers/search", url.Values{"query": {`metadata['clerk_user_id']:'user_2'`}}, "")
		if got := ids(none); status != 200 || len(got) != 0 {
			t.Errorf("search for another user: %d %v, want nothing (stripe-mock's fixture is not a customer)", status, got)
		}
		status, bad, _ := c.do("GET", "/v1/customers/search", url.Values{"query": {`email:'ada@example.com'`}}, "")
		if status != 400 {
			t.Errorf("unsupported query: %d %v, want 400", status, bad)
		}

		if status, got, _ := c.do("GET", "/v1/customers/"+first["id"].(string), nil, ""); status != 200 || got["id"] != first["id"] {
			t.Errorf("retrieve: %d %v", status, got["id"])
		}
		if status, got, _ := c.do("GET", "/v1/customers/cus_unknown", nil, ""); status != 404 || errorCode(got) != "invalid_request_error/resource_missing" {
			t.Errorf("retrieve unknown: %d %v, want 404 resource_missing", status, got)
		}
	})

	t.Run("stripe-mock still validates request shapes", func(t *testing.T) {
		p := Start(t, mock.URL)
		c := client{t, p.URL}
		status, doc, _ := c.do("POST", "/v1/customers", url.Values{"no_such_param": {"x"}}, "")
		if status != 400 || len(p.Customers()) != 0 {
			t.Errorf("unknown parameter: %d %v with %d customers, want stripe-mock's 400 and none", status, doc, len(p.Customers()))
		}
		calls := p.Calls()
		if len(calls) != 1 || calls[0].Form.Get("no_such_param") != "x" {
			t.Errorf("calls = %+v, want the refused one recorded", calls)
		}
	})

	t.Run("search index lag", func(t *testing.T) {
		p := Start(t, mock.URL)
		c := client{t, p.URL}
		seeded := p.AddCustomer("", map[string]string{"clerk_user_id": "user_1"})
		p.HoldSearchIndex()
		_, created, _ := c.do("POST", "/v1/customers", url.Values{"metadata[clerk_user_id]": {"user_1"}}, "")
		search := func() []string {
			_, doc, _ := c.do("GET", "/v1/customers/search", url.Values{"query": {`metadata['clerk_user_id']:'user_1'`}}, "")
			return ids(doc)
		}
		if got := search(); !slices.Equal(got, []string{seeded}) {
			t.Errorf("before indexing: %v, want only %s", got, seeded)
		}
		p.IndexSearch()
		if got := search(); !slices.Equal(got, []string{seeded, created["id"].(string)}) {
			t.Errorf("after indexing: %v, want both", got)
		}
	})

	t.Run("query escapes", func(t *testing.T) {
		for _, tt := range []struct{ q, key, value string }{
			{`metadata['k']:'v'`, "k", "v"},
			{`metadata['k']:'it\'s'`, "k", "it's"},
			{`metadata['k']:'back\\slash'`, "k", `back\slash`},
		} {
			k, v, ok := parseMetadataQuery(tt.q)
			if !ok || k != tt.key || v != tt.value {
				t.Errorf("parseMetadataQuery(%q) = %q, %q, %v", tt.q, k, v, ok)
			}
		}
		if _, _, ok := parseMetadataQuery(`metadata['k']:'v' OR email:'x'`); ok {
			t.Error("a compound query parsed")
		}
	})

	t.Run("subscriptions", func(t *testing.T) {
		p := Start(t, mock.URL)
		c := client{t, p.URL}
		cus := p.AddCustomer("", nil)
		a := p.AddSubscription(cus, Subscription{Status: "active", PriceID: "price_a", Quantity: 2, Created: 300, Metadata: map[string]string{"user_id": "user_1"}})
		x := p.AddSubscription(cus, Subscription{Status: "canceled", Created: 400})
		e := p.AddSubscription(cus, Subscription{Status: "incomplete_expired", Created: 100})
		p.AddSubscription("cus_other", Subscription{Status: "active"})

		list := func(q url.Values) ([]string, map[string]any) {
			t.Helper()
			status, doc, _ := c.do("GET", "/v1/subscriptions", q, "")
			if status != 200 {
				t.Fatalf("list %v: %d %v", q, status, doc)
			}
			return ids(doc), doc
		}
		if got, _ := list(url.Values{"customer": {cus}}); !slices.Equal(got, []string{a + " active", e + " incomplete_expired"}) {
			t.Errorf("default: %v, want all but canceled, newest first", got)
		}
		if got, _ := list(url.Values{"customer": {cus}, "status": {"all"}}); !slices.Equal(got, []string{x + " canceled", a + " active", e + " incomplete_expired"}) {
			t.Errorf("status=all: %v", got)
		}
		got, doc := list(url.Values{"customer": {cus}, "status": {"all"}, "limit": {"1"}})
		if !slices.Equal(got, []string{x + " canceled"}) || doc["has_more"] != true {
			t.Errorf("limit 1: %v, has_more %v", got, doc["has_more"])
		}
		_, doc = list(url.Values{"customer": {cus}, "status": {"active"}})
		sub := doc["data"].([]any)[0].(map[string]any)
		item := sub["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
		if item["quantity"] != 2.0 || item["price"].(map[string]any)["id"] != "price_a" || sub["customer"] != cus || sub["trial_end"] != nil {
			t.Errorf("subscription %v, item %v", sub, item)
		}
		if !p.SetSubscriptionStatus(a, "past_due") || p.SetSubscriptionStatus("sub_unknown", "active") {
			t.Error("SetSubscriptionStatus reports wrongly")
		}
		if status, doc, _ := c.do("GET", "/v1/subscriptions/"+a, nil, ""); status != 200 || doc["id"] != a || doc["status"] != "past_due" || doc["customer"] != cus || doc["metadata"].(map[string]any)["user_id"] != "user_1" {
			t.Errorf("retrieve: %d %v", status, doc)
		}
		if status, doc, _ := c.do("GET", "/v1/subscriptions/sub_unknown", nil, ""); status != 404 || errorCode(doc) != "invalid_request_error/resource_missing" {
			t.Errorf("retrieve unknown: %d %v, want 404 resource_missing", status, doc)
		}
		if got := p.Subscriptions(cus); len(got) != 3 || got[0].ID != a || got[0].Status != "past_due" {
			t.Errorf("Subscriptions = %+v", got)
		}
	})

	t.Run("portal and checkout know customers", func(t *testing.T) {
		p := Start(t, mock.URL)
		c := client{t, p.URL}
		cus := p.AddCustomer("", nil)
		status, doc, _ := c.do("POST", "/v1/billing_portal/sessions", url.Values{"customer": {cus}, "return_url": {"https://app.example.com/account"}}, "")
		if status != 200 || !strings.HasPrefix(doc["url"].(string), "https://billing.stripe.com/") || doc["return_url"] != "https://app.example.com/account" || doc["customer"] != cus {
			t.Errorf("portal: %d %v", status, doc)
		}
		status, doc, _ = c.do("POST", "/v1/billing_portal/sessions", url.Values{"customer": {"cus_unknown"}, "return_url": {"https://app.example.com/"}}, "")
		if status != 400 || errorCode(doc) != "invalid_request_error/resource_missing" {
			t.Errorf("portal for an unknown customer: %d %v, want 400 resource_missing", status, doc)
		}
		session := url.Values{
			"mode": {"payment"}, "line_items[0][price]": {"price_a"}, "line_items[0][quantity]": {"1"},
			"success_url": {"https://app.example.com/ok"}, "cancel_url": {"https://app.example.com/no"},
		}
		session.Set("customer", "cus_unknown")
		if status, doc, _ := c.do("POST", "/v1/checkout/sessions", session, ""); status != 400 || errorCode(doc) != "invalid_request_error/resource_missing" {
			t.Errorf("checkout for an unknown customer: %d %v", status, doc)
		}
		session.Set("customer", cus)
		if status, doc, _ := c.do("POST", "/v1/checkout/sessions", session, ""); status != 200 || !strings.HasPrefix(doc["id"].(string), "cs_") {
			t.Errorf("checkout: %d %v", status, doc)
		}
	})

	t.Run("prices and intercepts", func(t *testing.T) {
		p := Start(t, mock.URL)
		c := client{t, p.URL}
		p.SetPrice("price_once", Price{OneTime: true})
		p.SetPrice("price_off", Price{Inactive: true})
		p.SetPrice("price_gone", Price{Missing: true})
		if _, doc, _ := c.do("GET", "/v1/prices/price_once", nil, ""); doc["type"] != "one_time" || doc["recurring"] != nil || doc["id"] != "price_once" {
			t.Errorf("one-time price: %v", doc)
		}
		if _, doc, _ := c.do("GET", "/v1/prices/price_off", nil, ""); doc["active"] != false {
			t.Errorf("inactive price: %v", doc["active"])
		}
		if status, doc, _ := c.do("GET", "/v1/prices/price_gone", nil, ""); status != 404 || errorCode(doc) != "invalid_request_error/resource_missing" {
			t.Errorf("missing price: %d %v", status, doc)
		}
		if _, doc, _ := c.do("GET", "/v1/prices/price_any", nil, ""); doc["type"] != "recurring" {
			t.Errorf("other prices are stripe-mock's: %v", doc["type"])
		}
		p.Intercept(func(r *http.Request) *Answer { return &Answer{Status: 503, Body: `{"error":{"type":"api_error"}}`} })
		if status, doc, _ := c.do("GET", "/v1/prices/price_any", nil, ""); status != 503 || errorCode(doc) != "api_error/" {
			t.Errorf("intercepted: %d %v", status, doc)
		}
		if got := len(p.CallsTo("GET", "/v1/prices/")); got != 5 {
			t.Errorf("%d price calls recorded, want 5", got)
		}
	})
}

func TestNewRefusesBadUpstream(t *testing.T) {
	for _, u := range []string{"", "localhost:12111", "ftp://x"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
