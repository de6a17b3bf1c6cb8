package stripetest

// Reading Stripe's requests (forms, search queries) and writing its objects
// and errors as JSON, built on stripe-mock's fixtures.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

func metadataOf(form url.Values) map[string]string {
	md := make(map[string]string)
	for k, vs := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(vs) > 0 {
			md[strings.TrimSuffix(name, "]")] = vs[0]
		}
	}
	return md
}

// sameForm compares two forms as Stripe compares the parameters of requests
// with one idempotency key.
func sameForm(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if !slices.Equal(va, b[k]) {
			return false
		}
	}
	return true
}

var metadataQueryRe = regexp.MustCompile(`^metadata\['([^'\\]+)'\]:'((?:[^'\\]|\\.)*)'$`)

// parseMetadataQuery reads metadata['key']:'value', where the value may
// escape a quote or a backslash with a backslash.
func parseMetadataQuery(q string) (key, value string, ok bool) {
	m := metadataQueryRe.FindStringSubmatch(q)
	if m == nil {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(m[2]); i++ {
		if m[2][i] == '\\' {
			i++
		}
		b.WriteByte(m[2][i])
	}
	return m[1], b.String(), true
}

func customerJSON(template []byte, c Customer) ([]byte, error) {
	return rewrite(template, func(m map[string]any) {
		m["id"] = c.ID
		m["email"] = nilIfEmpty(c.Email)
		m["metadata"] = c.Metadata
		m["created"] = c.Created
		m["deleted"] = nil
	})
}

func subscriptionJSON(template []byte, customerID string, s Subscription) ([]byte, error) {
	return rewrite(template, func(m map[string]any) {
		m["id"] = s.ID
		m["status"] = s.Status
		m["customer"] = customerID
		m["created"] = s.Created
		m["current_period_end"] = nilIfZero(s.CurrentPeriodEnd)
		m["cancel_at_period_end"] = s.CancelAtPeriodEnd
		m["trial_end"] = nilIfZero(s.TrialEnd)
		m["metadata"] = map[string]string{}
		if s.Metadata != nil {
			m["metadata"] = s.Metadata
		}
		items, _ := m["items"].(map[string]any)
		if items == nil {
			return
		}
		list, _ := items["data"].([]any)
		if s.NoItems || len(list) == 0 {
			items["data"] = []any{}
			return
		}
		item, _ := list[0].(map[string]any)
		if item == nil {
			return
		}
		item["quantity"] = s.Quantity
		item["subscription"] = s.ID
		if price, ok := item["price"].(map[string]any); ok {
			price["id"] = s.PriceID
		}
		items["data"] = []any{item}
	})
}

// firstOf returns the first object of a list or search answer, to serve as
// the template of the objects the Proxy lists.
func firstOf(list []byte) ([]byte, error) {
	var l struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(list, &l); err != nil {
		return nil, fmt.Errorf("stripe-mock list: %w", err)
	}
	if len(l.Data) == 0 {
		return nil, fmt.Errorf("stripe-mock list has no fixture object")
	}
	return l.Data[0], nil
}

// rewrite decodes a JSON object, lets edit change it, and encodes it again.
func rewrite(object []byte, edit func(map[string]any)) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(object, &m); err != nil {
		return nil, fmt.Errorf("stripe-mock answer: %w", err)
	}
	edit(m)
	return json.Marshal(m)
}

func writeJSON(w http.ResponseWriter, status int, requestID string, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", cmp.Or(requestID, "req_stripetest"))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError answers a Stripe error object.
func writeError(w http.ResponseWriter, status int, typ, code, param, message string) {
	e := map[string]string{"type": typ, "message": message}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	writeJSON(w, status, "req_stripetest", b)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfZero(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
