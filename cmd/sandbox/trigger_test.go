package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/acme/payments-api/internal/stripemock"
	"github.com/acme/payments-api/internal/stripetest"
)

const triggerSecret = "whsec_triggerTestSecret"

// receiver stands in for payments-api's webhook: it verifies each event with
// stripe-go's strict ConstructEvent, as a stock Stripe integration does, and
// keeps the raw events.
type receiver struct {
	mu     sync.Mutex
	events []map[string]any
	header http.Header
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), triggerSecret); err != nil {
		http.Error(w, `{"error":"bad signature"}`, http.StatusBadRequest)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.events = append(rc.events, ev)
	rc.header = r.Header.Clone()
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"received":true,"forwarded":true}`)
}

func (rc *receiver) last(t *testing.T) (map[string]any, http.Header) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.events) == 0 {
		t.Fatal("the service received no verified event")
	}
	return rc.events[len(rc.events)-1], rc.header
}

func newTrigger(stripeURL, webhookURL string) *trigger {
	return &trigger{
		stripeURL: stripeURL, stripeKey: stripemock.Key, webhookURL: webhookURL, secret: triggerSecret,
		client: &http.Client{Timeout: 10 * time.Second}, out: &console{w: io.Discard},
	}
}

func doTrigger(t *testing.T, h http.Handler, method, query string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, "/trigger?"+query, nil))
	return w
}

func TestTriggerSendsStripeEvents(t *testing.T) {
	mock := stripemock.Start(t)
	rc := &receiver{}
	svc := httptest.NewServer(rc)
	defer svc.Close()
	down := httptest.NewServer(http.NotFoundHandler()) // a Stripe that knows no object
	defer down.Close()

	tests := []struct {
		name, stripeURL, query                  string
		wantType, wantObject, wantID, wantUser  string
		wantStatus, wantPaymentStatus, wantFrom string
	}{
		{"completed", mock.URL, "type=checkout.session.completed&session=cs_test_a1&user=user_1",
			"checkout.session.completed", "checkout.session", "cs_test_a1", "user_1", "complete", "paid", "stripe"},
		{"type and user default", mock.URL, "session=cs_test_a2",
			"checkout.session.completed", "checkout.session", "cs_test_a2", defaultUser, "complete", "paid", "stripe"},
		{"async succeeded", mock.URL, "type=checkout.session.async_payment_succeeded&session=cs_test_b&user=user_2",
			"checkout.session.async_payment_succeeded", "checkout.session", "cs_test_b", "user_2", "complete", "paid", "stripe"},
		{"async failed", mock.URL, "type=checkout.session.async_payment_failed&session=cs_test_c&user=user_3",
			"checkout.session.async_payment_failed", "checkout.session", "cs_test_c", "user_3", "complete", "unpaid", "stripe"},
		{"customer", mock.URL, "type=customer.created&customer=cus_d",
			"customer.created", "customer", "cus_d", "", "", "", "stripe"},
		{"unknown to Stripe: made up", down.URL, "type=checkout.session.completed&session=cs_test_gone&user=user_4",
			"checkout.session.completed", "checkout.session", "cs_test_gone", "user_4", "complete", "paid", "made up: GET /v1/checkout/sessions/cs_test_gone answered 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Unix()
			w := doTrigger(t, newTrigger(tt.stripeURL, svc.URL), http.MethodPost, tt.query)
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d; body %s", got, want, w.Body)
			}
			var res triggerResult
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.ServiceStatus != http.StatusOK || compact(t, res.ServiceAnswer) != `{"received":true,"forwarded":true}` {
				t.Errorf("service answer = %d %s, want 200 and its body", res.ServiceStatus, res.ServiceAnswer)
			}
			if res.ObjectSource != tt.wantFrom || res.ObjectID != tt.wantID || res.Type != tt.wantType {
				t.Errorf("result = %+v, want object %s from %q, type %s", res, tt.wantID, tt.wantFrom, tt.wantType)
			}

			ev, hdr := rc.last(t)
			if got, want := ev["id"], res.EventID; got != want || !strings.HasPrefix(res.EventID, "evt_") {
				t.Errorf("event id = %v, result says %q, want the same evt_…", got, want)
			}
			envelope := map[string]any{
				"object": "event", "api_version": stripe.APIVersion, "livemode": false,
				"pending_webhooks": float64(1), "type": tt.wantType,
			}
			for k, want := range envelope {
				if got := ev[k]; got != want {
					t.Errorf("event %s = %v, want %v", k, got, want)
				}
			}
			if c, _ := ev["created"].(float64); int64(c) < before || int64(c) > time.Now().Unix() {
				t.Errorf("created = %v, want now", ev["created"])
			}
			if req, _ := ev["request"].(map[string]any); !strings.HasPrefix(req["id"].(string), "req_") || req["idempotency_key"] == "" {
				t.Errorf("request = %v, want a req_ id and an idempotency key", ev["request"])
			}
			if got := hdr.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
				t.Errorf("Content-Type = %q", got)
			}

			obj := ev["data"].(map[string]any)["object"].(map[string]any)
			if obj["id"] != tt.wantID || obj["object"] != tt.wantObject {
				t.Errorf("object = %v %v, want %s %s", obj["object"], obj["id"], tt.wantObject, tt.wantID)
			}
			if tt.wantUser == "" {
				if _, ok := obj["client_reference_id"]; ok && obj["client_reference_id"] != nil {
					t.Errorf("a %s got client_reference_id %v", tt.wantObject, obj["client_reference_id"])
				}
				return
			}
			md, _ := obj["metadata"].(map[string]any)
			if obj["client_reference_id"] != tt.wantUser || md["user_id"] != tt.wantUser {
				t.Errorf("client_reference_id %v, metadata %v, want user %s in both", obj["client_reference_id"], md, tt.wantUser)
			}
			if obj["status"] != tt.wantStatus || obj["payment_status"] != tt.wantPaymentStatus {
				t.Errorf("status %v payment_status %v, want %s %s", obj["status"], obj["payment_status"], tt.wantStatus, tt.wantPaymentStatus)
			}
		})
	}
}

func TestTriggerInputs(t *testing.T) {
	svc := httptest.NewServer(&receiver{})
	defer svc.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name, method, query, webhookURL string
		wantStatus                      int
		wantBody                        string
	}{
		{"GET", http.MethodGet, "type=checkout.session.completed", svc.URL, http.StatusMethodNotAllowed, "use POST"},
		{"unknown type", http.MethodPost, "type=charge.refunded", svc.URL, http.StatusBadRequest, "checkout.session.completed, customer.created, customer.subscription.created"},
		{"unknown status", http.MethodPost, "type=customer.subscription.updated&status=frozen", svc.URL, http.StatusBadRequest, `status "frozen"`},
		{"status on a session", http.MethodPost, "type=checkout.session.completed&status=active", svc.URL, http.StatusBadRequest, "only subscription and invoice events"},
		{"session with a path", http.MethodPost, "session=" + url.QueryEscape("cs_test_x/../../v1/customers"), svc.URL, http.StatusBadRequest, "letters, digits and _ only"},
		{"user with a space", http.MethodPost, "session=cs_test_a&user=" + url.QueryEscape("user 1"), svc.URL, http.StatusBadRequest, "letters, digits and _ only"},
		{"empty customer", http.MethodPost, "type=customer.created&customer=", svc.URL, http.StatusOK, `"object_id": "cus_sandbox`},
		{"service down", http.MethodPost, "type=checkout.session.completed", closedURL, http.StatusBadGateway, "could not reach payments-api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := doTrigger(t, newTrigger(closedURL, tt.webhookURL), tt.method, tt.query)
			if got, want := w.Code, tt.wantStatus; got != want {
				t.Errorf("status = %d, want %d", got, want)
			}
			if !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("body %q lacks %q", w.Body, tt.wantBody)
			}
			for _, secret := range []string{triggerSecret, stripemock.Key} {
				if strings.Contains(w.Body.String(), secret) {
					t.Errorf("body leaks %q", secret)
				}
			}
		})
	}
}

// TestTriggerLifecycle sends the subscription life cycle through the
// sandbox's Stripe stand-in: each event changes the user's subscription
// there first, as Stripe's own would have changed, and carries it.
func TestTriggerLifecycle(t *testing.T) {
	mock := stripemock.Start(t)
	stand := stripetest.Start(t, mock.URL)
	rc := &receiver{}
	svc := httptest.NewServer(rc)
	defer svc.Close()
	tr := newTrigger(stand.URL, svc.URL)
	tr.stand, tr.price = stand, "price_basic"

	send := func(query string, wantStatus int) (triggerResult, map[string]any) {
		t.Helper()
		w := doTrigger(t, tr, http.MethodPost, query)
		if w.Code != wantStatus {
			t.Fatalf("%s: status %d, want %d; body %s", query, w.Code, wantStatus, w.Body)
		}
		if wantStatus != http.StatusOK {
			return triggerResult{}, nil
		}
		var res triggerResult
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		ev, _ := rc.last(t)
		return res, ev["data"].(map[string]any)["object"].(map[string]any)
	}

	// No checkout yet: no customer to subscribe.
	send("type=customer.subscription.created&user=user_1", http.StatusConflict)
	cus := stand.AddCustomer("", map[string]string{"clerk_user_id": "user_1"})
	send("type=customer.subscription.deleted&user=user_1", http.StatusConflict) // nothing to delete

	res, obj := send("type=customer.subscription.created&user=user_1", http.StatusOK)
	sub := res.Subscription
	if !strings.HasPrefix(sub, "sub_") || res.ObjectID != sub || res.SubStatus != "active" {
		t.Fatalf("created: %+v", res)
	}
	md, _ := obj["metadata"].(map[string]any)
	if obj["id"] != sub || obj["object"] != "subscription" || obj["status"] != "active" || obj["customer"] != cus || md["user_id"] != "user_1" {
		t.Errorf("created object: %v", obj)
	}
	item := obj["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	if item["price"].(map[string]any)["id"] != "price_basic" {
		t.Errorf("item %v, want price_basic", item)
	}

	for _, step := range []struct {
		query, status, object string
	}{
		{"type=invoice.payment_failed&user=user_1", "past_due", "invoice"},
		{"type=invoice.paid&user=user_1", "active", "invoice"},
		{"type=customer.subscription.updated&user=user_1&status=unpaid", "unpaid", "subscription"},
		{"type=customer.subscription.paused&user=user_1", "paused", "subscription"},
		{"type=customer.subscription.resumed&user=user_1&subscription=" + sub, "active", "subscription"},
		{"type=customer.subscription.deleted&user=user_1", "canceled", "subscription"},
	} {
		res, obj := send(step.query, http.StatusOK)
		if got := stand.Subscriptions(cus)[0].Status; got != step.status || res.SubStatus != step.status {
			t.Errorf("%s: subscription %s (result %s), want %s", step.query, got, res.SubStatus, step.status)
		}
		if obj["object"] != step.object {
			t.Errorf("%s: object %v, want %s", step.query, obj["object"], step.object)
		}
		switch step.object {
		case "subscription":
			if obj["id"] != sub || obj["status"] != step.status {
				t.Errorf("%s: object %v %v, want %s %s", step.query, obj["id"], obj["status"], sub, step.status)
			}
		case "invoice":
			if obj["subscription"] != sub || obj["customer"] != cus || !strings.HasPrefix(obj["id"].(string), "in_") {
				t.Errorf("%s: invoice %v of %v for %v", step.query, obj["id"], obj["subscription"], obj["customer"])
			}
		}
	}
}
