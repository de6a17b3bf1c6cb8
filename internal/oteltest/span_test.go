package oteltest

import (
	"strings"
	"testing"
)

// testForest is three traces: a checkout with two Stripe calls, a webhook that
// queues an event, and the delivery linked to it.
func testForest() []Span {
	return []Span{
		{TraceID: "t1", SpanID: "c1", ParentSpanID: "s1", Name: "POST /v1/customers/search", Kind: "client"},
		{TraceID: "t1", SpanID: "c2", ParentSpanID: "s1", Name: "POST /v1/checkout/sessions", Kind: "client",
			Attributes: map[string]any{"http.response.status_code": int64(200)}},
		{TraceID: "t1", SpanID: "v1", ParentSpanID: "s1", Name: "verify token", Kind: "internal"},
		{TraceID: "t1", SpanID: "s1", Name: "POST /stripe/checkout", Kind: "server"},
		{TraceID: "t2", SpanID: "w1", Name: "POST /stripe/webhook", Kind: "server"},
		{TraceID: "t2", SpanID: "q1", ParentSpanID: "w1", Name: "enqueue", Kind: "producer"},
		{TraceID: "t3", SpanID: "d1", Name: "deliver", Kind: "consumer", Links: []Link{{TraceID: "t2", SpanID: "q1"}}},
		{TraceID: "t3", SpanID: "n1", ParentSpanID: "d1", Name: "POST /api/payments/webhook", Kind: "client"},
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		want Tree
		ok   bool
	}{
		{"root with children, extra child allowed", Tree{Name: "POST /stripe/checkout", Kind: "server", Children: []Tree{
			{Name: "verify token"},
			{Name: "POST /v1/checkout/sessions", Attributes: map[string]any{"http.response.status_code": 200}},
		}}, true},
		{"a subtree that is not a root", Tree{Name: "enqueue", Kind: "producer"}, true},
		{"wrong kind", Tree{Name: "enqueue", Kind: "consumer"}, false},
		{"wrong attribute", Tree{Name: "POST /v1/checkout/sessions", Attributes: map[string]any{"http.response.status_code": 500}}, false},
		{"missing attribute", Tree{Name: "verify token", Attributes: map[string]any{"user": "u"}}, false},
		{"child under another parent", Tree{Name: "POST /stripe/webhook", Children: []Tree{{Name: "verify token"}}}, false},
		{"two wants cannot share one span", Tree{Name: "POST /stripe/checkout", Children: []Tree{
			{Name: "verify token"}, {Name: "verify token"},
		}}, false},
		{"grandchildren", Tree{Name: "deliver", Children: []Tree{{Name: "POST /api/payments/webhook", Kind: "client"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(testForest(), tt.want); got != tt.ok {
				t.Errorf("Match = %v, want %v", got, tt.ok)
			}
		})
	}
}

// An early want must not take the only span a later want can match.
func TestMatchBacktracks(t *testing.T) {
	spans := []Span{
		{TraceID: "t", SpanID: "r", Name: "root"},
		{TraceID: "t", SpanID: "a", ParentSpanID: "r", Name: "call", Attributes: map[string]any{"n": int64(1)}},
		{TraceID: "t", SpanID: "b", ParentSpanID: "r", Name: "call", Attributes: map[string]any{"n": int64(2)}},
	}
	var first, second Span
	ok := Match(spans, Tree{Name: "root", Children: []Tree{
		{Name: "call", Bind: &first},
		{Name: "call", Attributes: map[string]any{"n": 1}, Bind: &second},
	}})
	if !ok || first.SpanID != "b" || second.SpanID != "a" {
		t.Errorf("Match = %v, bound %q and %q; want true, b and a", ok, first.SpanID, second.SpanID)
	}
}

func TestMatchBinds(t *testing.T) {
	var queued, deliver, call Span
	if !Match(testForest(), Tree{Name: "POST /stripe/webhook", Children: []Tree{{Name: "enqueue", Bind: &queued}}}) ||
		!Match(testForest(), Tree{Name: "deliver", Bind: &deliver, Children: []Tree{{Name: "POST /api/payments/webhook", Bind: &call}}}) {
		t.Fatal("Match = false, want true")
	}
	if !deliver.LinksTo(queued) || queued.LinksTo(deliver) {
		t.Errorf("LinksTo: deliver→queued %v, queued→deliver %v; want true, false", deliver.LinksTo(queued), queued.LinksTo(deliver))
	}
	if got, want := call.Traceparent(), "00-t3-n1-01"; got != want {
		t.Errorf("Traceparent = %q, want %q", got, want)
	}
}

func TestFormat(t *testing.T) {
	got := Format(testForest())
	for _, want := range []string{
		"POST /stripe/checkout [server",
		"\n  verify token [internal",
		"\n  POST /v1/checkout/sessions [client, 0s] http.response.status_code=200",
		"\ndeliver [consumer, 0s] link=t2/q1",
		"\n  POST /api/payments/webhook [client",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Format lacks %q:\n%s", want, got)
		}
	}
}

func TestOutline(t *testing.T) {
	got := Outline(testForest(), "http.response.status_code")
	want := `POST /stripe/checkout [server, 0s] (trace t1)
  POST /v1/customers/search [client, 0s]
  POST /v1/checkout/sessions [client, 0s] http.response.status_code=200
  verify token [internal, 0s]
POST /stripe/webhook [server, 0s] (trace t2)
  enqueue [producer, 0s]
deliver [consumer, 0s] linked to trace t2 (trace t3)
  POST /api/payments/webhook [client, 0s]
`
	if got != want {
		t.Errorf("Outline =\n%s\nwant\n%s", got, want)
	}
}
