package main

import (
	"bufio"
	"cmp"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/redistest"
)

// ruleMetricsFile lists every metric the chart's alert rules and Grafana
// dashboard name; the chart's tests keep it equal to what the rules and panels
// name.
var ruleMetricsFile = filepath.Join("..", "..", "charts", "test", "testdata", "rule-metrics.yaml")

// TestRuleAndPanelMetricsAreExported scrapes a service with every engine on
// (PostgreSQL and Redis) and fails for each metric an alert rule or dashboard
// panel names that the service does not export: an alert on a metric nobody
// exports never fires.
func TestRuleAndPanelMetricsAreExported(t *testing.T) {
	want := exportedRuleMetrics(t)
	redis := redistest.Start(t, redistest.Options{})
	st := startStack(t, map[string]string{
		"DATABASE_URL": migratedDSN(t),
		"REDIS_URL":    redis.URL(),
	})
	waitReady(t, st.svc.url)

	code, body := get(t, st.svc.metricsURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	exported := map[string]bool{}
	for line := range strings.Lines(body) {
		if name, _, ok := strings.Cut(line, "{"); ok && !strings.HasPrefix(line, "#") {
			exported[name] = true
		} else if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			exported[f[0]] = true
		}
	}
	for name, needs := range want {
		if !exported[name] {
			t.Errorf("%s is named by a chart rule or panel but not exported (with %s set)", name, cmp.Or(needs, "the defaults"))
		}
	}
}

// exportedRuleMetrics reads the "exported:" block of rule-metrics.yaml: one
// "  name: variable" line per metric, the variable being what must be set for
// the service to export it ("" for always).
func exportedRuleMetrics(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(ruleMetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entry := regexp.MustCompile(`^  ([a-z_:][a-z0-9_:]*): *"?([A-Z_]*)"?$`)
	metrics := map[string]string{}
	in := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case line == "exported:":
			in = true
		case in && strings.HasPrefix(line, "  "):
			m := entry.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("%s: unexpected line in exported: %q", ruleMetricsFile, line)
			}
			metrics[m[1]] = m[2]
		case in && line != "" && !strings.HasPrefix(line, "#"):
			in = false
		}
	}
	if len(metrics) < 10 {
		t.Fatalf("%s: read %d metrics from exported:, want the whole list", ruleMetricsFile, len(metrics))
	}
	return metrics
}
