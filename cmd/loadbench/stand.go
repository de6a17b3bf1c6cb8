package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/webhooktest"
)

// The secrets and names the stand and the service share.
const (
	stripeWebhookSecret = "whsec_loadbench_0123456789abcdef"
	nextWebhookSecret   = "whsec_loadbench_nextjs_0123456789abcdef"
	stripeKey           = "sk_test_loadbench123"
	priceID             = "price_loadbench"
	frontend            = "http://localhost:3000"
	// tokenTTL keeps every pre-minted token valid for the whole run.
	tokenTTL = 15 * time.Minute
)

// Stand is everything around the service: the stand-ins it calls, the bare
// server, and the event body the webhook requests are made of.
type Stand struct {
	opts    options
	clerk   *fakeclerk.Clerk
	servers []*http.Server
	urls    struct{ clerk, stripe, next string }
	bare    *Service
	cpus    *cpuSplit // nil: the service and the load share every CPU

	// The event body around its id: prefix + id + suffix, with the type slot
	// marked so that each scenario can put its own.
	eventPrefix, eventSuffix []byte
	forwarded                atomic.Int64 // events the Next.js stand-in received
}

func newStand(ctx context.Context, o options) (*Stand, error) {
	st := &Stand{opts: o}
	if err := st.loadEvent(o.event); err != nil {
		return nil, err
	}
	ln, err := listen()
	if err != nil {
		return nil, err
	}
	issuer := "http://" + ln.Addr().String()
	st.clerk, err = fakeclerk.New(issuer)
	if err != nil {
		ln.Close()
		return nil, err
	}
	st.urls.clerk = issuer
	st.serve(ln, st.clerk)

	for _, s := range []struct {
		url *string
		h   http.Handler
	}{{&st.urls.stripe, fakeStripe()}, {&st.urls.next, http.HandlerFunc(st.receive)}} {
		ln, err := listen()
		if err != nil {
			st.close()
			return nil, err
		}
		*s.url = "http://" + ln.Addr().String()
		st.serve(ln, s.h)
	}
	return st, nil
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func (st *Stand) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	st.servers = append(st.servers, srv)
	go func() { _ = srv.Serve(ln) }()
}

// launch runs start, which starts the service, on the service's CPUs.
func (st *Stand) launch(start func() error) error {
	if st.cpus == nil {
		return start()
	}
	return st.cpus.startOnServiceCPUs(start)
}

func (st *Stand) close() {
	for _, srv := range st.servers {
		_ = srv.Close()
	}
	if st.bare != nil {
		st.bare.stop()
	}
}

// serviceEnv is the service's whole environment: nothing is inherited from the
// shell that runs the benchmark.
func (st *Stand) serviceEnv(addr string) map[string]string {
	return map[string]string{
		"LISTEN_ADDR":           addr,
		"METRICS_ADDR":          "off",
		"LOG_LEVEL":             st.opts.logLevel,
		"FRONTEND_URL":          frontend,
		"CLERK_ISSUER":          st.urls.clerk,
		"STRIPE_SECRET_KEY":     stripeKey,
		"STRIPE_WEBHOOK_SECRET": stripeWebhookSecret,
		"STRIPE_API_URL":        st.urls.stripe,
		"STRIPE_PRICE_IDS":      priceID,
		"NEXTJS_WEBHOOK_URL":    st.urls.next + "/api/payments/webhook",
		"NEXTJS_WEBHOOK_SECRET": nextWebhookSecret,
	}
}

// receive is the Next.js stand-in: it takes every event at once.
func (st *Stand) receive(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	st.forwarded.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"received":true}`)
}

// fakeStripe answers the Stripe API calls the service makes, at once, with the
// smallest objects stripe-go decodes: prices, Checkout Sessions, and (for the
// billing rooms) customers, subscriptions and portal sessions.
func fakeStripe() http.Handler {
	var n atomic.Int64
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_loadbench")
		_, _ = io.WriteString(w, body)
	}
	mux.HandleFunc("GET /v1/prices/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, fmt.Sprintf(`{"id":%q,"object":"price","active":true,"type":"one_time","currency":"usd","unit_amount":2900}`, r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/checkout/sessions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := "cs_test_loadbench" + strconv.FormatInt(n.Add(1), 10)
		reply(w, fmt.Sprintf(`{"id":%q,"object":"checkout.session","url":"https://checkout.stripe.com/c/pay/%s"}`, id, id))
	})
	mux.HandleFunc("GET /v1/customers/search", func(w http.ResponseWriter, r *http.Request) {
		reply(w, `{"object":"search_result","data":[],"has_more":false,"url":"/v1/customers/search"}`)
	})
	mux.HandleFunc("POST /v1/customers", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		reply(w, fmt.Sprintf(`{"id":"cus_loadbench%d","object":"customer"}`, n.Add(1)))
	})
	mux.HandleFunc("GET /v1/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		reply(w, `{"object":"list","data":[],"has_more":false,"url":"/v1/subscriptions"}`)
	})
	mux.HandleFunc("POST /v1/billing_portal/sessions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		reply(w, `{"id":"bps_loadbench","object":"billing_portal.session","url":"https://billing.stripe.com/p/session/loadbench"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"loadbench: not faked"}}`)
	})
	return mux
}

// typeSlot stands for the event type inside the stored event body.
const typeSlot = "\x00type\x00"

// loadEvent reads the event body the webhook scenarios send and splits it
// around its top-level id; its type becomes a slot each scenario fills.
func (st *Stand) loadEvent(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the event body (-event): %w", err)
	}
	var ev struct{ ID, Type string }
	if err := json.Unmarshal(raw, &ev); err != nil || ev.ID == "" || ev.Type == "" {
		return fmt.Errorf("%s is not a Stripe event with an id and a type", path)
	}
	idField, _ := json.Marshal(ev.ID)
	typeField, _ := json.Marshal(ev.Type)
	before, after, ok := bytes.Cut(raw, idField)
	if !ok || !bytes.Contains(after, typeField) {
		return fmt.Errorf("%s: cannot find its id and type", path)
	}
	after = bytes.Replace(after, typeField, []byte(`"`+typeSlot+`"`), 1)
	st.eventPrefix = append(before, '"')
	st.eventSuffix = append([]byte(`"`), after...)
	return nil
}

// webhookRequests signs n events of type typ, each with its own id, as Stripe
// would send them. Only the signatures are kept; the bodies are put together
// again when sent.
func (st *Stand) webhookRequests(typ string, n int) (Requests, error) {
	prefix := st.eventPrefix
	suffix := bytes.Replace(st.eventSuffix, []byte(typeSlot), []byte(typ), 1)
	id := func(dst []byte, i int) []byte { return fmt.Appendf(dst, "evt_loadbench%014d", i) }
	sigs := make([]string, n)
	now := time.Now()
	parallel(n, func(i int) {
		body := append(id(append([]byte(nil), prefix...), i), suffix...)
		sigs[i] = webhooktest.Sign(body, stripeWebhookSecret, now)
	})
	bodyLen := len(prefix) + len(id(nil, 0)) + len(suffix)
	return func(dst []byte, i int) []byte {
		dst = append(dst, "POST /stripe/webhook HTTP/1.1\r\nHost: payments-api\r\n"+
			"User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"+
			"Content-Type: application/json; charset=utf-8\r\nStripe-Signature: "...)
		dst = append(dst, sigs[i]...)
		dst = append(dst, "\r\nContent-Length: "...)
		dst = strconv.AppendInt(dst, int64(bodyLen), 10)
		dst = append(dst, "\r\n\r\n"...)
		dst = append(dst, prefix...)
		dst = id(dst, i)
		return append(dst, suffix...)
	}, nil
}

// checkoutRequests builds n checkout requests, each with its own user's token:
// signed by Clerk's key when valid, else carrying a signature that is random
// bytes of the right length (the service must check it to refuse it).
func (st *Stand) checkoutRequests(n int, valid bool) (Requests, error) {
	tokens := make([]string, n)
	var (
		mu       sync.Mutex
		firstErr error
	)
	mint := st.mintValid
	if !valid {
		header, err := st.tokenHeader()
		if err != nil {
			return nil, err
		}
		mint = func(i int) (string, error) { return forgedToken(header, st.urls.clerk, i) }
	}
	parallel(n, func(i int) {
		tok, err := mint(i)
		if err != nil {
			mu.Lock()
			firstErr = cmp.Or(firstErr, err)
			mu.Unlock()
			return
		}
		tokens[i] = tok
	})
	if firstErr != nil {
		return nil, fmt.Errorf("minting tokens: %w", firstErr)
	}
	body := `{"price_id":"` + priceID + `"}`
	return func(dst []byte, i int) []byte {
		dst = append(dst, "POST /stripe/checkout HTTP/1.1\r\nHost: payments-api\r\nOrigin: "+frontend+
			"\r\nContent-Type: application/json\r\nAuthorization: Bearer "...)
		dst = append(dst, tokens[i]...)
		dst = append(dst, "\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body...)
		return dst
	}, nil
}

func (st *Stand) mintValid(i int) (string, error) {
	return st.clerk.Mint(fakeclerk.Token{
		Subject:         "user_loadbench_" + strconv.Itoa(i),
		SessionID:       "sess_loadbench_" + strconv.Itoa(i),
		AuthorizedParty: frontend,
		Email:           "user" + strconv.Itoa(i) + "@example.com",
		TTL:             tokenTTL,
	})
}

// tokenHeader is the protected header of a genuine token: the right alg and kid.
func (st *Stand) tokenHeader() (string, error) {
	tok, err := st.mintValid(0)
	if err != nil {
		return "", err
	}
	header, _, _ := strings.Cut(tok, ".")
	return header, nil
}

// forgedToken is a well-formed token for user i with Clerk's header and claims
// but a random signature.
func forgedToken(header, issuer string, i int) (string, error) {
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": issuer, "sub": "user_forged_" + strconv.Itoa(i), "sid": "sess_forged",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(tokenTTL).Unix(), "azp": frontend, "v": 2,
	})
	if err != nil {
		return "", err
	}
	sig := make([]byte, fakeclerk.KeyBits/8)
	_, _ = rand.Read(sig)
	return header + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// parallel runs f(0) … f(n-1) on every core.
func parallel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
