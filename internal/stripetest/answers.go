package stripetest

// The answers the Proxy gives from its state, one per kind of call.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

func (p *Proxy) price(w http.ResponseWriter, id string, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	pr, ok := p.prices[id]
	p.mu.Unlock()
	if !ok {
		return fixture, nil
	}
	if pr.Missing {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such price: '"+id+"'")
		return nil, nil
	}
	return rewrite(fixture, func(m map[string]any) {
		m["id"] = id
		if pr.OneTime {
			m["type"] = "one_time"
			m["recurring"] = nil
		}
		if pr.Inactive {
			m["active"] = false
		}
	})
}

func (p *Proxy) createCustomer(w http.ResponseWriter, key string, form url.Values, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var c Customer
	if prev, ok := p.keys[key]; ok && key != "" {
		if !sameForm(prev.form, form) {
			writeError(w, http.StatusBadRequest, "idempotency_error", "", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.")
			return nil, nil
		}
		c = p.customer(prev.customerID).Customer
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		c = p.newCustomer(form.Get("email"), metadataOf(form), !p.holdSearch).Customer
		if key != "" {
			p.keys[key] = keyedCreate{form: form, customerID: c.ID}
		}
	}
	return customerJSON(fixture, c)
}

func (p *Proxy) searchCustomers(w http.ResponseWriter, query string, fixture []byte) ([]byte, error) {
	key, value, ok := parseMetadataQuery(query)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "query",
			"stripetest understands only metadata['key']:'value' queries")
		return nil, nil
	}
	p.mu.Lock()
	var found []Customer
	for _, c := range p.customers {
		if c.searchable && c.Metadata[key] == value {
			found = append(found, c.Customer)
		}
	}
	p.mu.Unlock()
	template, err := firstOf(fixture)
	if err != nil {
		return nil, err
	}
	data := make([]json.RawMessage, 0, len(found))
	for _, c := range found {
		b, err := customerJSON(template, c)
		if err != nil {
			return nil, err
		}
		data = append(data, b)
	}
	return rewrite(fixture, func(m map[string]any) {
		m["data"] = data
		m["has_more"] = false
		m["next_page"] = nil
		m["total_count"] = nil
	})
}

func (p *Proxy) getCustomer(w http.ResponseWriter, id string, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	c := p.customer(id)
	p.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such customer: '"+id+"'")
		return nil, nil
	}
	return customerJSON(fixture, c.Customer)
}

func (p *Proxy) listSubscriptions(form url.Values, fixture []byte) ([]byte, error) {
	limit := 10
	if n, err := strconv.Atoi(form.Get("limit")); err == nil && n > 0 {
		limit = n
	}
	status := form.Get("status")
	p.mu.Lock()
	var subs []Subscription
	for _, s := range p.subs[form.Get("customer")] {
		switch {
		case status == "all",
			status == "" && s.Status != "canceled",
			status == "ended" && (s.Status == "canceled" || s.Status == "incomplete_expired"),
			status == s.Status:
			subs = append(subs, s)
		}
	}
	p.mu.Unlock()
	slices.SortStableFunc(subs, func(a, b Subscription) int { return cmp.Compare(b.Created, a.Created) })
	more := len(subs) > limit
	subs = subs[:min(len(subs), limit)]

	template, err := firstOf(fixture)
	if err != nil {
		return nil, err
	}
	data := make([]json.RawMessage, 0, len(subs))
	for _, s := range subs {
		b, err := subscriptionJSON(template, form.Get("customer"), s)
		if err != nil {
			return nil, err
		}
		data = append(data, b)
	}
	return rewrite(fixture, func(m map[string]any) {
		m["data"] = data
		m["has_more"] = more
	})
}

func (p *Proxy) getSubscription(w http.ResponseWriter, id string, fixture []byte) ([]byte, error) {
	p.mu.Lock()
	customerID, s, ok := p.subscription(id)
	p.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such subscription: '"+id+"'")
		return nil, nil
	}
	return subscriptionJSON(fixture, customerID, s)
}

// subscription returns the subscription id and its customer; p.mu must be held.
func (p *Proxy) subscription(id string) (customerID string, s Subscription, ok bool) {
	for c, subs := range p.subs {
		for _, s := range subs {
			if s.ID == id {
				return c, s, true
			}
		}
	}
	return "", Subscription{}, false
}

func (p *Proxy) portalSession(w http.ResponseWriter, form url.Values, fixture []byte) ([]byte, error) {
	if !p.knowsCustomer(w, form.Get("customer")) {
		return nil, nil
	}
	p.mu.Lock()
	p.seq++
	n := p.seq
	p.mu.Unlock()
	return rewrite(fixture, func(m map[string]any) {
		m["id"] = fmt.Sprintf("bps_test%06d", n)
		m["customer"] = form.Get("customer")
		m["return_url"] = form.Get("return_url")
		m["configuration"] = cmp.Or(form.Get("configuration"), "bpc_default")
		m["url"] = fmt.Sprintf("https://billing.stripe.com/p/session/test_%06d", n)
		m["flow"] = nil
	})
}

func (p *Proxy) checkoutSession(w http.ResponseWriter, form url.Values, fixture []byte) ([]byte, error) {
	if c := form.Get("customer"); c != "" && !p.knowsCustomer(w, c) {
		return nil, nil
	}
	return fixture, nil
}

// knowsCustomer reports whether id is a known customer, answering Stripe's 400
// when it is not.
func (p *Proxy) knowsCustomer(w http.ResponseWriter, id string) bool {
	p.mu.Lock()
	c := p.customer(id)
	p.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "customer", "No such customer: '"+id+"'")
		return false
	}
	return true
}

// newCustomer adds a customer; p.mu must be held.
func (p *Proxy) newCustomer(email string, metadata map[string]string, searchable bool) *customerState {
	p.seq++
	c := &customerState{
		Customer: Customer{
			ID:       fmt.Sprintf("cus_test%06d", p.seq),
			Email:    email,
			Metadata: metadata,
			Created:  firstCreated + p.seq,
		},
		searchable: searchable,
	}
	p.customers = append(p.customers, c)
	return c
}

// customer returns the customer id, or nil; p.mu must be held.
func (p *Proxy) customer(id string) *customerState {
	for _, c := range p.customers {
		if c.ID == id {
			return c
		}
	}
	return nil
}
