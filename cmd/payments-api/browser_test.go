package main

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/metricstest"
)

// browserPriceID is the price stripe-mock knows, as configured by startStack.
const browserPriceID = "price_1MoBy5LkdIwHu7ixZhnattbh"

// apiPage calls one of the browser-facing routes the way the Next.js frontend
// does: fetch with a Bearer token (and, for checkout, a JSON body and an
// Idempotency-Key), which makes the browser send a CORS preflight first. It
// shows what the page could see of the outcome and reports it to its own
// server (same origin, so CORS plays no part in the report). html/template
// escapes the injected values for the script.
var apiPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>payments</title></head>
<body><pre id="result">pending</pre>
<script>
const report = (v) => {
  document.getElementById("result").textContent = JSON.stringify(v);
  fetch("/result", {method: "POST", body: JSON.stringify(v)});
};
fetch({{.API}} + {{.Route}}, {
  method: {{.Method}},
  headers: {{.Headers}},
  body: {{.Body}} || undefined,
})
  .then((r) => r.json().then((body) => report({
    status: r.status,
    session_id: body.session_id || "",
    url: body.url || "",
    customer_id: body.customer_id || "",
    request_id: r.headers.get("X-Request-ID") || "",
  })))
  .catch((e) => report({error: e.name, message: e.message}));
</script>
</body></html>
`))

// pageData is what the test injects into apiPage.
type pageData struct {
	API, Route, Method, Body string
	Headers                  map[string]string
}

// call is one of the browser-facing routes as the frontend calls it.
type call struct {
	route, method, body string
	headers             map[string]string
}

func checkoutCall(token, key string) call {
	return call{"/stripe/checkout", http.MethodPost, `{"price_id":"` + browserPriceID + `"}`, map[string]string{
		"Authorization": "Bearer " + token, "Content-Type": "application/json", "Idempotency-Key": key,
	}}
}

func portalCall(token string) call {
	return call{"/stripe/portal", http.MethodPost, "", map[string]string{"Authorization": "Bearer " + token}}
}

func subscriptionCall(token string) call {
	return call{"/stripe/subscription", http.MethodGet, "", map[string]string{"Authorization": "Bearer " + token}}
}

// browserResult is what apiPage saw of its fetch.
type browserResult struct {
	Status     int    `json:"status"`
	SessionID  string `json:"session_id"`
	URL        string `json:"url"`
	CustomerID string `json:"customer_id"`
	RequestID  string `json:"request_id"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

// page is a loopback web server for apiPage, with what its page reported.
type page struct {
	srv     *httptest.Server
	origin  string
	results chan browserResult

	mu   sync.Mutex
	data pageData // what the next load calls
}

// newPage makes an unstarted page server: its origin is known at once, so that
// the service can be configured with it before the page, which needs the
// service's URL, is served by start.
func newPage(t *testing.T) *page {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return &page{srv: srv, origin: "http://" + srv.Listener.Addr().String(), results: make(chan browserResult, 1)}
}

// start serves apiPage at / and takes its report at /result.
func (p *page) start(t *testing.T) {
	t.Helper()
	p.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/":
			p.mu.Lock()
			data := p.data
			p.mu.Unlock()
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := apiPage.Execute(w, data); err != nil {
				t.Errorf("render page: %v", err)
			}
		case r.Method == http.MethodPost && r.URL.Path == "/result":
			var res browserResult
			if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
				t.Errorf("page report: %v", err)
				http.Error(w, "bad report", http.StatusBadRequest)
				return
			}
			select {
			case p.results <- res:
			default:
				t.Errorf("%s reported twice: %+v", p.origin, res)
			}
		default:
			http.NotFound(w, r)
		}
	})
	p.srv.Start()
}

// will makes the page's next load make c to the API at api.
func (p *page) will(api string, c call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.data = pageData{API: api, Route: c.route, Method: c.method, Body: c.body, Headers: c.headers}
}

// browser is a headless Chromium driven through the DevTools protocol on a
// pipe (file descriptors 3 and 4), which needs no websocket library.
type browser struct {
	cmd    *exec.Cmd
	in     *os.File // Chromium reads commands from it
	out    *logtest.Buffer
	stderr *logtest.Buffer
	nextID int
}

// startChromium launches one headless Chromium for the whole test: a launch
// costs seconds, opening a tab in it a few milliseconds. A missing browser
// fails the test: CI installs it, and a skipped browser test proves nothing.
// The browser runs in its own process group, killed at cleanup, so that no
// renderer or helper process outlives the test.
func startChromium(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("this test drives a real headless Chromium and cannot run without it: %v "+
			"(`make test` installs it, or says how: see scripts/setup)", err)
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{in: cmdW, out: &logtest.Buffer{}, stderr: &logtest.Buffer{}}
	b.cmd = exec.Command(path,
		"--headless",
		"--no-sandbox", // the tests run as root
		"--disable-gpu",
		// Without these Chromium reaches for the network at start-up and stalls
		// behind a closed firewall.
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--no-first-run",
		"--disable-quic",
		"--user-data-dir="+filepath.Join(t.TempDir(), "profile"),
		"--remote-debugging-pipe",
		"about:blank",
	)
	b.cmd.ExtraFiles = []*os.File{cmdR, evW} // fd 3: commands in, fd 4: answers out
	b.cmd.Stderr = b.stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.WaitDelay = 2 * time.Second
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	cmdR.Close()
	evW.Close()
	drained := make(chan struct{})
	go func() {
		// Chromium must never block writing its answers.
		io.Copy(b.out, evR)
		evR.Close()
		close(drained)
	}()
	t.Cleanup(func() {
		b.in.Close()
		if err := syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kill Chromium's process group: %v", err)
		}
		b.cmd.Wait()
		<-drained
	})
	return b
}

// open opens url in a new tab.
func (b *browser) open(t *testing.T, url string) {
	t.Helper()
	b.nextID++
	msg, err := json.Marshal(map[string]any{
		"id":     b.nextID,
		"method": "Target.createTarget",
		"params": map[string]string{"url": url},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.in.Write(append(msg, 0)); err != nil {
		t.Fatalf("send to chromium: %v\nstderr:\n%s", err, b.stderr)
	}
}

// load opens p's page in a new tab and returns what the page reported.
func (b *browser) load(t *testing.T, p *page) browserResult {
	t.Helper()
	start := time.Now()
	b.open(t, p.origin+"/")
	select {
	case res := <-p.results:
		t.Logf("%s reported after %s", p.origin, time.Since(start).Round(time.Millisecond))
		return res
	case <-time.After(20 * time.Second):
		t.Fatalf("the page at %s reported nothing within 20s\nDevTools answers:\n%s\nstderr:\n%s", p.origin, b.out, b.stderr)
		return browserResult{}
	}
}

// scrape reads a service's /metrics once and returns it as a Gatherer for
// metricstest.
func scrape(t *testing.T, svc *service) prometheus.Gatherer {
	t.Helper()
	code, m := get(t, svc.metricsURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(m))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return slices.Collect(maps.Values(families)), nil
	})
}

// routeCounts are the service's own counts of what reached it on one route,
// and the stand-in's count of what reached Stripe for it.
type routeCounts struct {
	preflights, preflightsRefused, calls float64
	stripeCalls                          int
}

// stripeEffect is the Stripe call each route makes once it serves a user.
var stripeEffect = map[string][2]string{
	"/stripe/checkout":     {http.MethodPost, "/v1/checkout/sessions"},
	"/stripe/portal":       {http.MethodPost, "/v1/billing_portal/sessions"},
	"/stripe/subscription": {http.MethodGet, "/v1/customers/search"},
}

func readCounts(t *testing.T, st *stack, c call) routeCounts {
	t.Helper()
	g := scrape(t, st.svc)
	const requests = "payments_api_http_requests_total"
	effect := stripeEffect[c.route]
	return routeCounts{
		preflights:        metricstest.Sum(t, g, requests, map[string]string{"route": c.route, "method": http.MethodOptions}),
		preflightsRefused: metricstest.Sum(t, g, requests, map[string]string{"route": c.route, "method": http.MethodOptions, "code": "403"}),
		calls:             metricstest.Sum(t, g, requests, map[string]string{"route": c.route, "method": c.method}),
		stripeCalls:       len(st.stripe.CallsTo(effect[0], effect[1])),
	}
}

// TestBrowserCORS proves CORS in a real browser: headless Chromium loads the
// same pages from the allowed origin and from foreign ones, and each page
// calls POST /stripe/checkout, POST /stripe/portal and GET
// /stripe/subscription with fetch and a valid Bearer token. The allowed pages
// get a Checkout Session, a billing portal URL and the user's state; a
// foreign page's preflight is refused by the service (counted as a 403
// OPTIONS), its fetch throws, and no request arrives and nothing reaches
// Stripe, although its token is as valid as the allowed page's (a leaked
// token is useless to another site).
func TestBrowserCORS(t *testing.T) {
	chrome := startChromium(t) // starts while the stack does

	allowed := newPage(t) // http://127.0.0.1:<port>
	foreignPort := newPage(t)
	foreignHost := newPage(t)
	// The same kind of loopback server under another host name: only the host
	// differs from an allowed origin here, only the port on foreignPort.
	foreignHost.origin = strings.Replace(foreignHost.origin, "127.0.0.1", "localhost", 1)

	st := startStack(t, map[string]string{
		"FRONTEND_URL":             allowed.origin,
		"CORS_ALLOWED_ORIGINS":     allowed.origin,
		"CLERK_AUTHORIZED_PARTIES": allowed.origin,
	})
	waitReady(t, st.svc.url)
	// Every page holds a token the service accepts: only CORS stands between
	// a foreign page and the user's billing.
	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_browser", AuthorizedParty: allowed.origin})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*page{allowed, foreignPort, foreignHost} {
		p.start(t)
	}

	// The allowed origin, in the order a user goes: checkout makes the
	// customer that the portal and the state then find.
	for _, tc := range []struct {
		call  call
		check func(browserResult) bool
		want  string
	}{
		{checkoutCall(token, "browser-allowed"), func(r browserResult) bool { return strings.HasPrefix(r.SessionID, "cs_") }, "a cs_ session id"},
		{portalCall(token), func(r browserResult) bool { return strings.HasPrefix(r.URL, "https://billing.stripe.com/") }, "a billing portal URL"},
		{subscriptionCall(token), func(r browserResult) bool { return strings.HasPrefix(r.CustomerID, "cus_") }, "the user's customer"},
	} {
		before := readCounts(t, st, tc.call)
		allowed.will(st.svc.url, tc.call)
		res := chrome.load(t, allowed)
		if res.Status != http.StatusOK || !tc.check(res) || res.Error != "" {
			t.Fatalf("allowed origin %s, %s %s: the page saw %+v, want status 200 and %s", allowed.origin, tc.call.method, tc.call.route, res, tc.want)
		}
		if res.RequestID == "" {
			t.Errorf("allowed origin, %s: the page cannot read X-Request-ID, want it exposed to the browser", tc.call.route)
		}
		if got, want := readCounts(t, st, tc.call), (routeCounts{
			preflights:        before.preflights + 1,
			preflightsRefused: before.preflightsRefused,
			calls:             before.calls + 1,
			stripeCalls:       before.stripeCalls + 1,
		}); got != want {
			t.Fatalf("allowed origin, %s: the service counted %+v, want %+v (one preflight allowed, one call, one Stripe call)", tc.call.route, got, want)
		}
	}

	for _, tc := range []struct {
		name string
		page *page
	}{
		{"foreign port", foreignPort},
		{"foreign host", foreignHost},
	} {
		for _, c := range []call{checkoutCall(token, "browser-"+tc.name), portalCall(token), subscriptionCall(token)} {
			t.Run(tc.name+" "+c.route, func(t *testing.T) {
				before := readCounts(t, st, c)
				tc.page.will(st.svc.url, c)
				res := chrome.load(t, tc.page)
				if got, want := res, (browserResult{Error: "TypeError", Message: "Failed to fetch"}); got != want {
					t.Errorf("foreign origin %s: the page saw %+v, want fetch to throw %+v", tc.page.origin, got, want)
				}
				// The browser did reach the service, which refused the
				// preflight, and the call never left the browser.
				if got, want := readCounts(t, st, c), (routeCounts{
					preflights:        before.preflights + 1,
					preflightsRefused: before.preflightsRefused + 1,
					calls:             before.calls,
					stripeCalls:       before.stripeCalls,
				}); got != want {
					t.Errorf("foreign origin %s: the service counted %+v, want %+v (one preflight refused with 403, no call, nothing to Stripe)", tc.page.origin, got, want)
				}
			})
		}
	}
}
