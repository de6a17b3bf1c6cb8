package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/pgtest"
)

// TestSandboxDurableTour walks the durable tour the banner prints: Next.js
// refuses, an event is acknowledged at once, retried, discarded; the printed
// `events list` shows it; Next.js accepts again; the printed `events retry`
// replays it and Next.js takes it. River UI answers with the printed password.
func TestSandboxDurableTour(t *testing.T) {
	p := freePorts(t)
	sb := startSandbox(t, p.args("-database-url", pgtest.Database(t)), testEnv(nil))
	sb.waitOutput(t, "sandbox: ready.")
	banner := sb.stdout.String()
	for _, want := range []string{"payments-api migrate: applied payments-api 1 customers", "durable: queued in PostgreSQL", "River UI", "9. Next.js refuses"} {
		if !strings.Contains(banner, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	post := func(url string) string {
		t.Helper()
		res, err := http.Post(url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	shell := func(cmd string) string {
		t.Helper()
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	command := func(what string) string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^  (DATABASE_URL=\S+ \S+ events ` + what + `)$`).FindStringSubmatch(sb.stdout.String())
		if m == nil {
			t.Fatalf("the banner prints no `events %s` command:\n%s", what, sb.stdout)
		}
		return m[1]
	}

	post("http://" + p.next + "/_sandbox/refuse")
	var trig struct {
		EventID       string          `json:"event_id"`
		ServiceAnswer json.RawMessage `json:"service_answer"`
	}
	postJSON(t, newRequest(t, http.MethodPost, "http://"+p.clerk+"/trigger?type=checkout.session.async_payment_succeeded&session=cs_test_tour&user=user_sandbox", nil), http.StatusOK, &trig)
	if got := compact(t, trig.ServiceAnswer); got != `{"received":true,"queued":true}` {
		t.Fatalf("the service answered the trigger %s, want it queued", got)
	}
	id := trig.EventID
	sb.waitOutput(t, "event discarded")
	// River records the outcome a moment after the worker's log line.
	list := command("list --state discarded")
	for deadline := time.Now().Add(time.Minute); !strings.Contains(shell(list), id); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not list %s within a minute", list, id)
		}
	}

	post("http://" + p.next + "/_sandbox/accept")
	if out := shell(command("retry --discarded")); out != id+" queued (was discarded)\n" {
		t.Errorf("events retry --discarded = %q", out)
	}
	sb.waitOutput(t, "next.js received "+id+" checkout.session.async_payment_succeeded -> 200")

	pass := regexp.MustCompile(`River UI +http://\S+ \(user sandbox, password (\S+)\)`).FindStringSubmatch(banner)
	if pass == nil {
		t.Fatalf("no River UI credentials in the banner")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.admin+"/", nil)
	req.SetBasicAuth("sandbox", pass[1])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("River UI = %d, want 200", res.StatusCode)
	}
	if err := sb.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
