package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/acme/payments-api/internal/stripetest"
	"github.com/acme/payments-api/internal/webhooktest"
)

// eventKind says how to build the object of one event type.
type eventKind struct {
	resource string // API path the object is fetched from, followed by its id
	object   string // its "object" value, when it has to be made up
	param    string // query parameter naming its id
	prefix   string // id prefix, when the caller names none
	// status and paymentStatus are set on checkout sessions: what Stripe's
	// session looks like when it sends this event.
	status, paymentStatus string
	// lifecycle marks the subscription life-cycle events: with the sandbox's
	// own Stripe stand-in they act on the user's subscription first, giving
	// it subStatus ("" leaves it as it is; "new" makes one).
	lifecycle bool
	subStatus string
	// invoiceStatus is set on invoices.
	invoiceStatus string
}

// eventKinds lists the event types the trigger sends.
func eventKinds() map[string]eventKind {
	session := eventKind{resource: "/v1/checkout/sessions/", object: "checkout.session", param: "session", prefix: "cs_test_"}
	paid, unpaid := session, session
	paid.status, paid.paymentStatus = "complete", "paid"
	unpaid.status, unpaid.paymentStatus = "complete", "unpaid"
	sub := func(status string) eventKind {
		return eventKind{resource: "/v1/subscriptions/", object: "subscription", param: "subscription", prefix: "sub_", lifecycle: true, subStatus: status}
	}
	invoice := func(status, subStatus string) eventKind {
		return eventKind{resource: "/v1/invoices/", object: "invoice", param: "invoice", prefix: "in_", lifecycle: true, subStatus: subStatus, invoiceStatus: status}
	}
	return map[string]eventKind{
		"checkout.session.completed":               paid,
		"checkout.session.async_payment_succeeded": paid,
		"checkout.session.async_payment_failed":    unpaid,
		"customer.created":                         {resource: "/v1/customers/", object: "customer", param: "customer", prefix: "cus_"},
		"customer.subscription.created":            sub("new"),
		"customer.subscription.updated":            sub(""), // or ?status=…
		"customer.subscription.deleted":            sub("canceled"),
		"customer.subscription.paused":             sub("paused"),
		"customer.subscription.resumed":            sub("active"),
		"customer.subscription.trial_will_end":     sub("trialing"),
		"invoice.paid":                             invoice("paid", "active"),
		"invoice.payment_failed":                   invoice("open", "past_due"),
		"invoice.payment_action_required":          invoice("open", ""),
	}
}

// subscriptionStatuses are the statuses ?status= may give a subscription.
var subscriptionStatuses = []string{"active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "paused"}

// trigger answers POST /trigger?type=…&session=…&user=…: it builds an event as
// Stripe would send it, signs it with the service's STRIPE_WEBHOOK_SECRET,
// posts it to the service's webhook and answers with what the service said.
type trigger struct {
	stripeURL, stripeKey string // where the event's object is fetched from
	webhookURL           string // the service's POST /stripe/webhook
	secret               string // STRIPE_WEBHOOK_SECRET
	client               *http.Client
	out                  *console
	// stand is the sandbox's Stripe stand-in (nil with a Stripe of the
	// user's): life-cycle events change the user's subscription in it, so
	// that payments-api's answers follow. price is what a new subscription
	// is for.
	stand *stripetest.Proxy
	price string
}

// triggerResult is the answer of POST /trigger.
type triggerResult struct {
	EventID       string          `json:"event_id"`
	Type          string          `json:"type"`
	ObjectID      string          `json:"object_id"`
	ObjectSource  string          `json:"object_source"` // "stripe" or "made up: <why>"
	Subscription  string          `json:"subscription,omitempty"`
	SubStatus     string          `json:"subscription_status,omitempty"`
	ServiceStatus int             `json:"service_status"`
	ServiceAnswer json.RawMessage `json:"service_answer"`
}

func (t *trigger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST /trigger?type=<event type>&session=<cs_…>&user=<user id>", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	typ := cmp.Or(q.Get("type"), "checkout.session.completed")
	kinds := eventKinds()
	kind, ok := kinds[typ]
	if !ok {
		names := slices.Sorted(maps.Keys(kinds))
		http.Error(w, fmt.Sprintf("unknown type %q; the sandbox sends %s", typ, strings.Join(names, ", ")), http.StatusBadRequest)
		return
	}
	id := cmp.Or(q.Get(kind.param), kind.prefix+"sandbox"+rand.Text()[:10])
	user := cmp.Or(q.Get("user"), defaultUser)
	if !plainID(id) || !plainID(user) {
		http.Error(w, fmt.Sprintf("%s and user must be ids like %sabc123 and user_123: letters, digits and _ only", kind.param, kind.prefix), http.StatusBadRequest)
		return
	}

	if st := q.Get("status"); st != "" && (!kind.lifecycle || !slices.Contains(subscriptionStatuses, st)) {
		http.Error(w, fmt.Sprintf("status %q: only subscription and invoice events take one, of %s", st, strings.Join(subscriptionStatuses, ", ")), http.StatusBadRequest)
		return
	}
	var life lifeChange
	if kind.lifecycle && t.stand != nil {
		var err error
		if life, err = t.live(kind, q, user); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if kind.object == "subscription" {
			id = life.subscription
		}
	}

	obj, source := t.fetch(r.Context(), kind, id)
	if life.subscription != "" && kind.object == "invoice" {
		// What Stripe's invoice of that subscription holds.
		obj["customer"], obj["subscription"], obj["status"] = life.customer, life.subscription, kind.invoiceStatus
		obj["paid"] = kind.invoiceStatus == "paid"
	}
	if kind.status != "" {
		// What payments-api put on the session at checkout (stripe-mock does
		// not remember it), and the state Stripe sends this event in.
		obj["client_reference_id"] = user
		md, _ := obj["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
		}
		md["user_id"] = user
		obj["metadata"] = md
		obj["status"], obj["payment_status"] = kind.status, kind.paymentStatus
	}

	ev := event{
		ID:              "evt_" + rand.Text(),
		Object:          "event",
		APIVersion:      stripe.APIVersion,
		Created:         time.Now().Unix(),
		Data:            eventData{Object: obj},
		PendingWebhooks: 1,
		Request:         eventRequest{ID: "req_" + rand.Text(), IdempotencyKey: rand.Text()},
		Type:            typ,
	}
	res, err := t.send(r.Context(), ev)
	if err != nil {
		t.out.printf("sandbox: trigger %s %s: %v", ev.ID, typ, err)
		http.Error(w, "could not reach payments-api: "+err.Error(), http.StatusBadGateway)
		return
	}
	res.ObjectID, res.ObjectSource = id, source
	res.Subscription, res.SubStatus = life.subscription, life.status
	t.out.printf("sandbox: sent %s %s (%s) -> %d %s", ev.ID, typ, id, res.ServiceStatus, res.ServiceAnswer)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}

// lifeChange is what a life-cycle event did to the stand-in's state.
type lifeChange struct {
	customer, subscription, status string
}

// live applies a life-cycle event to the user's subscription in the stand-in:
// a new one for customer.subscription.created, else the one named by
// ?subscription= or the user's newest, given the event's status (or, for
// updated, ?status=).
func (t *trigger) live(kind eventKind, q url.Values, user string) (lifeChange, error) {
	var c lifeChange
	for _, cu := range t.stand.Customers() {
		if cu.Metadata["clerk_user_id"] == user {
			c.customer = cu.ID
			break // the oldest, as payments-api picks
		}
	}
	if c.customer == "" {
		return c, fmt.Errorf("%s has no Stripe customer yet: run a checkout as that user first", user)
	}
	status := cmp.Or(q.Get("status"), kind.subStatus)
	if kind.subStatus == "new" {
		c.status = cmp.Or(q.Get("status"), "active")
		c.subscription = t.stand.AddSubscription(c.customer, stripetest.Subscription{
			Status: c.status, PriceID: cmp.Or(q.Get("price"), t.price), Quantity: 1,
			Created: time.Now().Unix(), CurrentPeriodEnd: time.Now().AddDate(0, 1, 0).Unix(),
			Metadata: map[string]string{"user_id": user},
		})
		return c, nil
	}
	subs := t.stand.Subscriptions(c.customer)
	named, newest := q.Get("subscription"), lastCreated(subs)
	for _, s := range subs {
		if s.ID == named || (named == "" && s.Created >= newest) {
			c.subscription, c.status = s.ID, s.Status
		}
	}
	if c.subscription == "" {
		return c, fmt.Errorf("%s has no such subscription: send customer.subscription.created first", user)
	}
	if status != "" {
		t.stand.SetSubscriptionStatus(c.subscription, status)
		c.status = status
	}
	return c, nil
}

func lastCreated(subs []stripetest.Subscription) int64 {
	var last int64
	for _, s := range subs {
		last = max(last, s.Created)
	}
	return last
}

// plainID reports whether s looks like a Stripe or Clerk id, so that it can
// go into a URL path as it is.
func plainID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// event is a Stripe event, its fields in Stripe's order.
type event struct {
	ID              string       `json:"id"`
	Object          string       `json:"object"`
	APIVersion      string       `json:"api_version"`
	Created         int64        `json:"created"`
	Data            eventData    `json:"data"`
	Livemode        bool         `json:"livemode"`
	PendingWebhooks int          `json:"pending_webhooks"`
	Request         eventRequest `json:"request"`
	Type            string       `json:"type"`
}

type eventData struct {
	Object map[string]any `json:"object"`
}

type eventRequest struct {
	ID             string `json:"id"`
	IdempotencyKey string `json:"idempotency_key"`
}

// fetch gets the event's object from Stripe (or stripe-mock), as Stripe puts
// the current object into an event. When that fails (an id real Stripe does
// not know), it makes up a minimal object and says why.
func (t *trigger) fetch(ctx context.Context, kind eventKind, id string) (map[string]any, string) {
	obj, err := t.get(ctx, t.stripeURL+kind.resource+id)
	if err == nil {
		obj["id"] = id
		return obj, "stripe"
	}
	return map[string]any{
		"id":       id,
		"object":   kind.object,
		"created":  time.Now().Unix(),
		"livemode": false,
		"metadata": map[string]any{},
	}, "made up: " + err.Error()
}

func (t *trigger) get(ctx context.Context, u string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.stripeKey)
	res, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s failed", req.URL.Path)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %d", req.URL.Path, res.StatusCode)
	}
	var obj map[string]any
	dec := json.NewDecoder(io.LimitReader(res.Body, 1<<20))
	dec.UseNumber() // amounts and timestamps stay exactly as Stripe sent them
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("GET %s: unreadable object", req.URL.Path)
	}
	return obj, nil
}

// send signs ev as Stripe does and posts it to the service.
func (t *trigger) send(ctx context.Context, ev event) (triggerResult, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return triggerResult{}, err
	}
	signature := webhooktest.Sign(body, t.secret, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.webhookURL, bytes.NewReader(body))
	if err != nil {
		return triggerResult{}, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", signature)
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	res, err := t.client.Do(req)
	if err != nil {
		return triggerResult{}, err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return triggerResult{}, err
	}
	answer = bytes.TrimSpace(answer)
	if !json.Valid(answer) {
		answer, _ = json.Marshal(string(answer))
	}
	return triggerResult{EventID: ev.ID, Type: ev.Type, ServiceStatus: res.StatusCode, ServiceAnswer: answer}, nil
}
