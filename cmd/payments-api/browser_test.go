package main

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/fakeclerk"
)

// browserPriceID is the price stripe-mock knows, as configured by startStack.
const browserPriceID = "price_1MoBy5LkdIwHu7ixZhnattbh"

// checkoutPage calls the checkout endpoint the way the Next.js frontend does:
// fetch with a Bearer token, a JSON body and an Idempotency-Key, which makes the
// browser send a CORS preflight first. It writes what the page could see of the
// outcome into #result, which the test reads from Chromium's DOM dump.
// html/template escapes the injected values for the script context.
var checkoutPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>checkout</title></head>
<body><pre id="result">pending</pre>
<script>
const show = (v) => { document.getElementById("result").textContent = JSON.stringify(v); };
fetch({{.API}} + "/stripe/checkout", {
  method: "POST",
  headers: {
    "Authorization": "Bearer " + {{.Token}},
    "Content-Type": "application/json",
    "Idempotency-Key": {{.Key}},
  },
  body: JSON.stringify({price_id: {{.PriceID}}}),
})
  .then((r) => r.json().then((body) => show({
    status: r.status,
    session_id: body.session_id || "",
    request_id: r.headers.get("X-Request-ID") || "",
  })))
  .catch((e) => show({error: e.name, message: e.message}));
</script>
</body></html>
`))

// pageData is what the test injects into checkoutPage.
type pageData struct {
	API, Token, Key, PriceID string
}

// browserResult is what checkoutPage wrote into #result.
type browserResult struct {
	Status    int    `json:"status"`
	SessionID string `json:"session_id"`
	RequestID string `json:"request_id"`
	Error     string `json:"error"`
	Message   string `json:"message"`
}

// pageServer is an unstarted loopback server for checkoutPage: its origin is
// known at once, so that the service can be configured with it before the
// page, which needs the service's URL, is served.
func pageServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return srv, "http://" + srv.Listener.Addr().String()
}

// startPage serves checkoutPage with data at / on srv.
func startPage(t *testing.T, srv *httptest.Server, data pageData) {
	t.Helper()
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := checkoutPage.Execute(w, data); err != nil {
			t.Errorf("render page: %v", err)
		}
	})
	srv.Start()
}

// chromiumPath finds the browser. A missing browser fails the test: CI installs
// it, and a skipped browser test would pass without proving anything.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("this test drives a real headless Chromium and cannot run without it: %v "+
			"(install it with `apt-get install -y chromium`, as CI does)", err)
	}
	return path
}

var resultRE = regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`)

// loadInChromium opens pageURL in a fresh headless Chromium, lets its script
// run, and returns what the script wrote into #result. --virtual-time-budget
// makes Chromium dump the DOM only once the page is idle and its fetches have
// settled. The browser runs in its own process group, killed afterwards, so no
// renderer or helper process outlives the test.
func loadInChromium(t *testing.T, chromium, pageURL string) browserResult {
	t.Helper()
	dir := t.TempDir()
	dom, err := os.Create(filepath.Join(dir, "dom.html"))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Close()
	var stderr syncBuffer

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
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
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--virtual-time-budget=1000",
		"--dump-dom",
		pageURL,
	)
	cmd.Stdout = dom // a file, not a pipe: Wait returns when the browser exits
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	killGroup := func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	cmd.Cancel = killGroup
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	if err := killGroup(); err != nil {
		t.Errorf("kill Chromium's process group: %v", err)
	}
	if runErr != nil {
		t.Fatalf("chromium %s after %s: %v\nstderr:\n%s", pageURL, time.Since(start).Round(time.Millisecond), runErr, stderr.String())
	}
	t.Logf("chromium loaded %s in %s", pageURL, time.Since(start).Round(time.Millisecond))

	out, err := os.ReadFile(dom.Name())
	if err != nil {
		t.Fatal(err)
	}
	m := resultRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("the DOM dump of %s has no #result:\n%s\nstderr:\n%s", pageURL, out, stderr.String())
	}
	text := html.UnescapeString(string(m[1]))
	var res browserResult
	if err := json.Unmarshal([]byte(text), &res); err != nil {
		t.Fatalf("the page at %s did not finish its fetch: #result = %q\nstderr:\n%s", pageURL, text, stderr.String())
	}
	return res
}

// sum adds up the samples of a counter in a Prometheus text exposition whose
// labels include want; no such sample counts as 0.
func sum(t *testing.T, exposition, name string, want map[string]string) float64 {
	t.Helper()
	var total float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labelText, value, ok := strings.Cut(rest, "} ")
		if !ok {
			t.Fatalf("unparsable sample %q", line)
		}
		labels := map[string]string{}
		for _, pair := range strings.Split(labelText, ",") {
			k, v, _ := strings.Cut(pair, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("unparsable sample %q: %v", line, err)
		}
		total += f
	}
	return total
}

// checkoutCounts are the service's own counts of what reached it on
// /stripe/checkout.
type checkoutCounts struct {
	preflights, preflightsRefused, posts, created float64
}

func readCheckoutCounts(t *testing.T, st *stack) checkoutCounts {
	t.Helper()
	code, m := get(t, st.svc.metricsURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	const requests = "payments_api_http_requests_total"
	route := "/stripe/checkout"
	return checkoutCounts{
		preflights:        sum(t, m, requests, map[string]string{"route": route, "method": http.MethodOptions}),
		preflightsRefused: sum(t, m, requests, map[string]string{"route": route, "method": http.MethodOptions, "code": "403"}),
		posts:             sum(t, m, requests, map[string]string{"route": route, "method": http.MethodPost}),
		created:           sum(t, m, "payments_api_checkout_sessions_total", map[string]string{"outcome": "created"}),
	}
}

// TestBrowserCheckoutCORS proves CORS in a real browser: headless Chromium
// loads the same checkout page from the allowed origin and from foreign ones,
// and each page calls POST /stripe/checkout with fetch and a valid Bearer
// token. The allowed page gets a Checkout Session; a foreign page's preflight
// is refused by the service (counted as a 403 OPTIONS), its fetch throws, and
// no POST arrives and no session is created, although its token is as valid as
// the allowed page's (a leaked token is useless to another site).
func TestBrowserCheckoutCORS(t *testing.T) {
	chromium := chromiumPath(t)

	allowed, allowedOrigin := pageServer(t) // http://127.0.0.1:<port>
	foreignPort, foreignPortOrigin := pageServer(t)
	foreignHost, foreignHostOrigin := pageServer(t)
	// The same kind of loopback server under another host name: only the host
	// differs from an allowed origin here, only the port on foreignPort.
	foreignHostOrigin = strings.Replace(foreignHostOrigin, "127.0.0.1", "localhost", 1)

	st := startStack(t, map[string]string{
		"FRONTEND_URL":             allowedOrigin,
		"CORS_ALLOWED_ORIGINS":     allowedOrigin,
		"CLERK_AUTHORIZED_PARTIES": allowedOrigin,
	})
	waitReady(t, st.svc.url)
	// Every page holds a token the service accepts: only CORS stands between
	// a foreign page and a Checkout Session.
	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_browser", AuthorizedParty: allowedOrigin})
	if err != nil {
		t.Fatal(err)
	}
	page := func(key string) pageData {
		return pageData{API: st.svc.url, Token: token, Key: key, PriceID: browserPriceID}
	}
	startPage(t, allowed, page("browser-allowed"))
	startPage(t, foreignPort, page("browser-foreign-port"))
	startPage(t, foreignHost, page("browser-foreign-host"))

	before := readCheckoutCounts(t, st)
	res := loadInChromium(t, chromium, allowedOrigin+"/")
	if res.Status != http.StatusOK || !strings.HasPrefix(res.SessionID, "cs_") || res.Error != "" {
		t.Fatalf("allowed origin %s: the page saw %+v, want status 200 and a cs_ session id", allowedOrigin, res)
	}
	if res.RequestID == "" {
		t.Errorf("allowed origin: the page cannot read X-Request-ID, want it exposed to the browser")
	}
	if got, want := readCheckoutCounts(t, st), (checkoutCounts{
		preflights:        before.preflights + 1,
		preflightsRefused: before.preflightsRefused,
		posts:             before.posts + 1,
		created:           before.created + 1,
	}); got != want {
		t.Fatalf("allowed origin: the service counted %+v, want %+v (one preflight allowed, one POST, one session)", got, want)
	}

	for _, tc := range []struct{ name, origin string }{
		{"foreign port", foreignPortOrigin},
		{"foreign host", foreignHostOrigin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := readCheckoutCounts(t, st)
			res := loadInChromium(t, chromium, tc.origin+"/")
			if got, want := res, (browserResult{Error: "TypeError", Message: "Failed to fetch"}); got != want {
				t.Errorf("foreign origin %s: the page saw %+v, want fetch to throw %+v", tc.origin, got, want)
			}
			// The browser did reach the service, which refused the preflight,
			// and the POST never left the browser.
			if got, want := readCheckoutCounts(t, st), (checkoutCounts{
				preflights:        before.preflights + 1,
				preflightsRefused: before.preflightsRefused + 1,
				posts:             before.posts,
				created:           before.created,
			}); got != want {
				t.Errorf("foreign origin %s: the service counted %+v, want %+v (one preflight refused with 403, no POST, no session)", tc.origin, got, want)
			}
		})
	}
}
