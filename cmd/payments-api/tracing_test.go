package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/oteltest"
	"github.com/acme/payments-api/internal/stripetest"
)

// Tracing problems are reported with the rest of the configuration's: one
// line each, exit 2, nothing logged, no header value echoed.
func TestRunTracingConfigErrors(t *testing.T) {
	env := map[string]string{
		"LISTEN_ADDR":                 "127.0.0.1:0",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift",
		"OTEL_EXPORTER_OTLP_HEADERS":  "x-api-key=Sekr1t,Sekr1t-without-a-key",
	}
	named, stderr := runRefused(t, env)
	// One line each, the configuration's own problems among them.
	for _, name := range []string{"CLERK_ISSUER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS"} {
		if n := linesNaming(named, name); n != 1 {
			t.Errorf("%d lines name %s, want 1:\n%s", n, name, stderr)
		}
	}
}

// The start-up line says where spans go, naming the export headers but never
// their values.
func TestRunTracingStartupLine(t *testing.T) {
	receiver := oteltest.Start(t)
	st := startStack(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.GRPCEndpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_EXPORTER_OTLP_HEADERS":  "x-api-key=Sekr1t-vendor-key",
		"OTEL_SERVICE_NAME":           "payments-eu",
	})
	tracing, _ := st.svc.stdout.First(t, "msg", "starting")["tracing"].(map[string]any)
	want := map[string]any{
		"enabled":      true,
		"endpoint":     receiver.GRPCEndpoint(),
		"protocol":     "grpc",
		"service_name": "payments-eu",
	}
	for k, v := range want {
		if tracing[k] != v {
			t.Errorf("starting line: tracing.%s = %v, want %v (%v)", k, tracing[k], v, tracing)
		}
	}
	if names, _ := tracing["header_names"].([]any); len(names) != 1 || names[0] != "x-api-key" {
		t.Errorf("tracing.header_names = %v, want [x-api-key]", tracing["header_names"])
	}
	if strings.Contains(st.svc.stdout.String(), "Sekr1t") {
		t.Errorf("the log holds a header value:\n%s", st.svc.stdout)
	}
}

// tracedStack is the real service with tracing on, exporting over protocol to
// an in-process OTLP receiver at once (a 50 ms batch delay).
func tracedStack(t *testing.T, protocol string, extraEnv map[string]string) (*stack, *oteltest.Receiver) {
	t.Helper()
	receiver := oteltest.Start(t)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.Endpoint(protocol),
		"OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
		"OTEL_BSP_SCHEDULE_DELAY":     "50",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	st := startStack(t, env)
	waitReady(t, st.svc.url)
	return st, receiver
}

// assertLogged fails unless line names span: its trace_id and span_id.
func assertLogged(t *testing.T, what string, line map[string]any, span oteltest.Span) {
	t.Helper()
	if line == nil || line["trace_id"] != span.TraceID || line["span_id"] != span.SpanID {
		t.Errorf("%s log line = %v, want trace_id %s span_id %s", what, line, span.TraceID, span.SpanID)
	}
}

// A checkout is one trace: the request named by its route, the token's
// verification, and every call to Stripe (which gets no traceparent of ours);
// its access-log line names the request's span. A refused token ends its
// verification span failed, with the reason only.
func TestRunTracingCheckout(t *testing.T) {
	t.Parallel()
	st, receiver := tracedStack(t, "http/protobuf", nil)
	var stripeTraceparents []string
	var mu sync.Mutex
	st.stripe.Intercept(func(r *http.Request) *stripetest.Answer {
		mu.Lock()
		defer mu.Unlock()
		stripeTraceparents = append(stripeTraceparents, r.Header.Get("traceparent"))
		return nil
	})

	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_traced", Email: "traced@example.com", AuthorizedParty: testOrigin})
	if err != nil {
		t.Fatal(err)
	}
	resp := postCheckout(t, st.svc.url, token, "application/json", `{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("checkout = %d", resp.StatusCode)
	}
	var server, verify, session oteltest.Span
	receiver.WaitTree(t, oteltest.Tree{
		Name: "POST /stripe/checkout", Kind: "server", Bind: &server,
		Attributes: map[string]any{"http.route": "/stripe/checkout", "http.response.status_code": 200},
		Children: []oteltest.Tree{
			{Name: "auth.verify_token", Kind: "internal", Bind: &verify},
			{Name: "POST /v1/checkout/sessions", Kind: "client", Bind: &session, Attributes: map[string]any{
				"peer.service": "stripe", "http.response.status_code": 200, "url.template": "/v1/checkout/sessions",
			}},
			{Name: "GET /v1/customers/search", Kind: "client"},
		},
	})
	if server.Resource["service.name"] != "payments-api" || server.Resource["service.version"] != version {
		t.Errorf("resource = %v, want service payments-api at version %s", server.Resource, version)
	}
	if verify.Status == "error" {
		t.Errorf("a good token's verification failed: %q", verify.StatusMessage)
	}
	for _, s := range receiver.Spans() {
		if s.TraceID == server.TraceID && s.Kind == "client" && s.Attr("peer.service") != "stripe" {
			t.Errorf("client span %q of the checkout is not to Stripe: %v", s.Name, s.Attributes)
		}
	}
	mu.Lock()
	for _, tp := range stripeTraceparents {
		if tp != "" {
			t.Errorf("Stripe received traceparent %q", tp)
		}
	}
	if len(stripeTraceparents) == 0 {
		t.Error("no call reached Stripe")
	}
	mu.Unlock()
	assertLogged(t, "checkout access", st.svc.stdout.First(t, "msg", "request", "route", "/stripe/checkout"), server)

	// A refused token.
	resp = postCheckout(t, st.svc.url, token+"x", "application/json", `{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("checkout with a bad token = %d, want 401", resp.StatusCode)
	}
	var refused oteltest.Span
	receiver.WaitTree(t, oteltest.Tree{
		Name: "POST /stripe/checkout", Attributes: map[string]any{"http.response.status_code": 401},
		Children: []oteltest.Tree{{Name: "auth.verify_token", Bind: &refused}},
	})
	if refused.Status != "error" || !strings.HasPrefix(refused.StatusMessage, "auth: token refused: ") {
		t.Errorf("refused verification: status %s %q, want error with the reason", refused.Status, refused.StatusMessage)
	}
	for _, s := range receiver.Spans() {
		if strings.Contains(oteltest.Format([]oteltest.Span{s}), token[:40]) {
			t.Errorf("span %q carries the token", s.Name)
		}
	}
}

// Synchronous mode: the webhook's request holds the signature check and the
// call to Next.js, which receives a traceparent naming that call.
func TestRunTracingWebhookSynchronous(t *testing.T) {
	t.Parallel()
	st, receiver := tracedStack(t, "http/json", nil)
	body, sig := signedEvent(t, "evt_traced_sync", "checkout.session.completed")
	resp, err := postWebhook(context.Background(), st.svc.url, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook = %d", resp.StatusCode)
	}
	var server, call oteltest.Span
	receiver.WaitTree(t, oteltest.Tree{
		Name: "POST /stripe/webhook", Kind: "server", Bind: &server,
		Children: []oteltest.Tree{
			{Name: "webhook.verify_signature", Kind: "internal"},
			{Name: "POST /api/payments/webhook", Kind: "client", Bind: &call, Attributes: map[string]any{"peer.service": "nextjs"}},
		},
	})
	got := st.next.Processed()
	if len(got) != 1 || got[0].Header.Get("traceparent") != call.Traceparent() {
		t.Errorf("Next.js received traceparent %q, want %q", got[0].Header.Get("traceparent"), call.Traceparent())
	}
	assertLogged(t, "webhook access", st.svc.stdout.First(t, "msg", "request", "route", "/stripe/webhook"), server)

	// A bad signature fails its span, and no call follows.
	resp, err = postWebhook(context.Background(), st.svc.url, body, "t=1,v1=00")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var bad oteltest.Span
	receiver.WaitTree(t, oteltest.Tree{
		Name: "POST /stripe/webhook", Attributes: map[string]any{"http.response.status_code": 400},
		Children: []oteltest.Tree{{Name: "webhook.verify_signature", Bind: &bad}},
	})
	if bad.Status != "error" {
		t.Errorf("a refused signature's span: status %s, want error", bad.Status)
	}
}

// Durable mode, on a real PostgreSQL: the webhook's trace holds the signature
// check and the queueing; the delivery attempt is a trace of its own, linked
// to the queueing, holding the call to Next.js, whose traceparent names that
// call. Log lines of both carry their trace.
func TestRunTracingWebhookDurable(t *testing.T) {
	t.Parallel()
	st, receiver := tracedStack(t, "grpc", map[string]string{"DATABASE_URL": migratedDSN(t)})
	body, sig := signedEvent(t, "evt_traced_durable", "checkout.session.completed")
	resp, err := postWebhook(context.Background(), st.svc.url, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"queued":true`) {
		t.Fatalf("webhook = %d %s, want 200 queued", resp.StatusCode, answer)
	}

	var server, enqueue, attempt, call oteltest.Span
	receiver.WaitTree(t, oteltest.Tree{
		Name: "POST /stripe/webhook", Kind: "server", Bind: &server,
		Children: []oteltest.Tree{
			{Name: "webhook.verify_signature"},
			{Name: "webhook.enqueue", Kind: "producer", Bind: &enqueue,
				Attributes: map[string]any{"stripe.event_id": "evt_traced_durable", "stripe.event_type": "checkout.session.completed", "duplicate": false}},
		},
	})
	receiver.WaitTree(t, oteltest.Tree{
		Name: "delivery.attempt", Kind: "consumer", Bind: &attempt,
		Attributes: map[string]any{"delivery.attempt": 1, "stripe.event_id": "evt_traced_durable", "stripe.event_type": "checkout.session.completed"},
		Children: []oteltest.Tree{
			{Name: "POST /api/payments/webhook", Kind: "client", Bind: &call,
				Attributes: map[string]any{"peer.service": "nextjs", "http.response.status_code": 200}},
		},
	})
	if !attempt.LinksTo(enqueue) {
		t.Errorf("the delivery attempt links to %v, want the queueing span %s/%s", attempt.Links, enqueue.TraceID, enqueue.SpanID)
	}
	if attempt.ParentSpanID != "" || attempt.TraceID == server.TraceID {
		t.Errorf("the delivery attempt is in the webhook's trace (parent %q): want a trace of its own", attempt.ParentSpanID)
	}
	got := st.next.Processed()
	if len(got) != 1 || got[0].Header.Get("traceparent") != call.Traceparent() {
		t.Fatalf("Next.js received %d deliveries, traceparent %q; want one, %q", len(got), got[0].Header.Get("traceparent"), call.Traceparent())
	}
	assertLogged(t, "webhook access", st.svc.stdout.First(t, "msg", "request", "route", "/stripe/webhook"), server)
	assertLogged(t, "delivery", st.svc.stdout.First(t, "msg", "event delivered"), attempt)

	// Stripe's redelivery is a duplicate: queued once, delivered once.
	resp, err = postWebhook(context.Background(), st.svc.url, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	receiver.WaitTree(t, oteltest.Tree{Name: "webhook.enqueue", Attributes: map[string]any{"duplicate": true}})
}
