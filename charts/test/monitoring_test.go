package chartstest

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The alerts of the PrometheusRule: those of every release, and those that
// read the delivery queue's metrics, rendered only with a database.
var (
	alwaysAlerts   = []string{"PaymentsApiCheckoutErrors", "PaymentsApiJwksStale", "PaymentsApiReplicaNotReady", "PaymentsApiWebhookEventsFailing"}
	durableAlerts  = []string{"PaymentsApiDeliveryBacklogStale", "PaymentsApiWebhookEventsDiscarded"}
	ruleSelector   = `namespace="payments",job="pay-payments-api"`
	runbookBaseURL = "https://github.com/acme/payments-api/blob/main/README.md"
)

// ruleMetricsFile is the one list of every metric the rules and the dashboard
// name (testdata/rule-metrics.yaml).
type ruleMetricsFile struct {
	Exported   map[string]string `json:"exported"`
	Prometheus []string          `json:"prometheus"`
}

func loadRuleMetrics(t *testing.T) ruleMetricsFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "rule-metrics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f ruleMetricsFile
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		t.Fatalf("rule-metrics.yaml: %v", err)
	}
	return f
}

// PromQL pieces that name no metric: strings, label matchers, ranges,
// numbers and durations, and the label lists of grouping and matching clauses.
var (
	promqlString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlNumber   = regexp.MustCompile(`\b[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?(?:ms|[smhdwy])*\b`)
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promqlRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// promqlMetrics returns the metric names an expression reads: identifiers
// that are neither functions, keywords nor label names.
func promqlMetrics(expr string) []string {
	s := promqlString.ReplaceAllString(expr, `""`)
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlRange.ReplaceAllString(s, " ")
	s = promqlNumber.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, m := range promqlIdent.FindAllStringSubmatch(s, -1) {
		name := strings.TrimRight(m[0], " (\t\n")
		if m[1] != "" || slices.Contains(promqlKeywords, strings.ToLower(name)) {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestPromqlMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (route, le) (rate(a_bucket{job="x",le=~"1|2"}[5m]))`, []string{"a_bucket"}},
		{`time() - b{x="y"} > 3600 unless sum without (outcome) (c) == 0`, []string{"b", "c"}},
		{`histogram_quantile(0.95, sum by (le) (rate(d[$__rate_interval]))) or on(pod) e offset 5m`, []string{"d", "e"}},
		{`max(f{a="by (x)"} > 0) / ignoring(code) group_left g`, []string{"f", "g"}},
	}
	for _, tt := range tests {
		if got := promqlMetrics(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("promqlMetrics(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// alertRules renders the chart with args and returns its PrometheusRule.
func alertRules(t *testing.T, args ...string) *prometheusRule {
	t.Helper()
	return only[*prometheusRule](t, decodeAll(t, render(t, args...)))
}

// githubAnchors returns the anchors GitHub gives the README's headings.
func githubAnchors(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	var anchors []string
	for _, line := range strings.Split(string(readme), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			anchors = append(anchors, strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-"))
		}
	}
	return anchors
}

func TestPrometheusRule(t *testing.T) {
	anchors := githubAnchors(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"durable delivery", valuesArgs("required.yaml", "all-features.yaml"), slices.Concat(alwaysAlerts, durableAlerts)},
		{"synchronous delivery", append(valuesArgs("required.yaml"), "--set", "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true"), alwaysAlerts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pr := alertRules(t, tt.args...)
			if len(pr.Spec.Groups) != 1 {
				t.Fatalf("got %d rule groups, want 1", len(pr.Spec.Groups))
			}
			var got []string
			for _, r := range pr.Spec.Groups[0].Rules {
				got = append(got, r.Alert)
				if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
					t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s has no %s", r.Alert, a)
					}
				}
				if want := runbookBaseURL + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
					t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
				}
				if !slices.Contains(anchors, strings.ToLower(r.Alert)) {
					t.Errorf("%s: the README has no heading %q for its runbook", r.Alert, r.Alert)
				}
				// Every series the rule reads is this release's.
				for _, m := range promqlMatchers.FindAllString(r.Expr, -1) {
					if !strings.HasPrefix(m, "{"+ruleSelector) {
						t.Errorf("%s: matcher %s does not start with the release's selector %s", r.Alert, m, ruleSelector)
					}
				}
				if n := len(promqlMatchers.FindAllString(r.Expr, -1)); n != len(promqlMetrics(r.Expr)) {
					t.Errorf("%s: %d metrics but %d selectors in %s", r.Alert, len(promqlMetrics(r.Expr)), n, r.Expr)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("alerts = %v, want %v", got, want)
			}
		})
	}
	t.Run("values reach the rules", func(t *testing.T) {
		pr := alertRules(t, valuesArgs("required.yaml", "all-features.yaml")...)
		if pr.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("labels %v lack metrics.prometheusRule.labels", pr.Labels)
		}
		exprs := map[string]string{}
		for _, r := range pr.Spec.Groups[0].Rules {
			exprs[r.Alert] = r.Expr
		}
		if !strings.Contains(exprs["PaymentsApiCheckoutErrors"], "> 0.1\n") {
			t.Errorf("checkout threshold is not checkoutErrorRatio 0.1:\n%s", exprs["PaymentsApiCheckoutErrors"])
		}
		if !strings.Contains(exprs["PaymentsApiDeliveryBacklogStale"], "> 1200\n") {
			t.Errorf("backlog threshold is not oldestPendingAge 20m:\n%s", exprs["PaymentsApiDeliveryBacklogStale"])
		}
	})
	t.Run("own selector and runbook", func(t *testing.T) {
		pr := alertRules(t, append(valuesArgs("required.yaml"), "--set", `metrics.prometheusRule.enabled=true,metrics.prometheusRule.runbookBaseUrl=https://wiki.example.com/payments`,
			"--set-string", `metrics.prometheusRule.selector=app="payments"`)...)
		for _, r := range pr.Spec.Groups[0].Rules {
			for _, m := range promqlMatchers.FindAllString(r.Expr, -1) {
				if !strings.HasPrefix(m, `{app="payments"`) {
					t.Errorf("%s: matcher %s ignores metrics.prometheusRule.selector", r.Alert, m)
				}
			}
			if !strings.HasPrefix(r.Annotations["runbook_url"], "https://wiki.example.com/payments#") {
				t.Errorf("%s: runbook_url %s ignores metrics.prometheusRule.runbookBaseUrl", r.Alert, r.Annotations["runbook_url"])
			}
		}
	})
}

// promtoolBin finds promtool.
func promtoolBin(t *testing.T) string {
	t.Helper()
	return toolBin(t, "PROMTOOL_BIN", "promtool", "go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0")
}

// TestPromtool checks the rendered rules with promtool and runs the unit tests
// of testdata/rules-test.yaml against them: each alert fires from synthetic
// series, and stays silent when the service is healthy.
func TestPromtool(t *testing.T) {
	promtool := promtoolBin(t)
	tests := []struct {
		name     string
		args     []string
		unitTest string // a promtool test file for these rules, or ""
	}{
		{"durable delivery", valuesArgs("required.yaml", "all-features.yaml"), "rules-test.yaml"},
		{"synchronous delivery", append(valuesArgs("required.yaml"), "--set", "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pr := alertRules(t, tt.args...)
			rules, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
				t.Fatal(err)
			}
			runPromtool(t, promtool, dir, "check", "rules", "--lint-fatal", "rules.yaml")
			if tt.unitTest == "" {
				return
			}
			unit, err := os.ReadFile(filepath.Join("testdata", tt.unitTest))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tt.unitTest), unit, 0o644); err != nil {
				t.Fatal(err)
			}
			runPromtool(t, promtool, dir, "test", "rules", tt.unitTest)
			// Every alert of the rules has a unit test.
			tested := map[string]bool{}
			for _, m := range regexp.MustCompile(`(?m)^\s*alertname: (\S+)$`).FindAllStringSubmatch(string(unit), -1) {
				tested[m[1]] = true
			}
			for _, r := range pr.Spec.Groups[0].Rules {
				if !tested[r.Alert] {
					t.Errorf("%s has no unit test in %s", r.Alert, tt.unitTest)
				}
			}
		})
	}
}

func runPromtool(t *testing.T, promtool, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// grafanaDashboard is the part of a Grafana dashboard the tests read.
type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	ms := decodeAll(t, render(t, valuesArgs("required.yaml", "all-features.yaml")...))
	cm := named[*corev1.ConfigMap](t, ms, "pay-payments-api-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "monitoring" || cm.Annotations["grafana_folder"] != "Payments" {
		t.Errorf("dashboard ConfigMap in %q, labels %v, annotations %v; want the sidecar's label in namespace monitoring with the folder annotation",
			cm.Namespace, cm.Labels, cm.Annotations)
	}
	if len(cm.Data) != 1 || cm.Data["payments-api.json"] == "" {
		t.Fatalf("dashboard ConfigMap keys %v, want payments-api.json", slices.Collect(maps.Keys(cm.Data)))
	}
	var d grafanaDashboard
	if err := json.Unmarshal([]byte(cm.Data["payments-api.json"]), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q", d.UID, d.Title)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Equal(vars, []string{"datasource", "namespace", "job"}) {
		t.Errorf("variables %v, want datasource, namespace, job", vars)
	}
	var titles []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v, %d queries; want the datasource variable and a query", p.Title, p.Datasource, len(p.Targets))
		}
		for _, q := range p.Targets {
			for _, m := range promqlMatchers.FindAllString(q.Expr, -1) {
				if !strings.HasPrefix(m, `{namespace="$namespace",job="$job"`) {
					t.Errorf("panel %q: %s is not limited to the chosen namespace and job", p.Title, m)
				}
			}
		}
	}
	// What an operator looks for, each in a panel of its own.
	for _, want := range []string{"Requests by route and status", "Latency by route", "Checkout outcomes", "Customers",
		"Billing portal sessions", "Rate-limit errors (Redis)", "Webhook outcomes", "Attempts to reach Next.js",
		"Delivery attempts", "Delivery queue by state", "Oldest pending delivery", "Auth failures by reason",
		"JWKS age by pod", "JWKS refreshes"} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q (have %q)", want, titles)
		}
	}
	t.Run("off by default", func(t *testing.T) {
		for _, cm := range all[*corev1.ConfigMap](renderScenario(t, scenarios[0])) {
			if cm.Labels["grafana_dashboard"] != "" {
				t.Errorf("ConfigMap %s is a dashboard", cm.Name)
			}
		}
	})
}

// TestRuleMetricsListed checks that testdata/rule-metrics.yaml lists exactly
// the metrics that the rules and the dashboard name, so that a scrape of the
// running service can prove each one exported.
func TestRuleMetricsListed(t *testing.T) {
	list := loadRuleMetrics(t)
	ms := decodeAll(t, render(t, valuesArgs("required.yaml", "all-features.yaml")...))
	where := map[string][]string{} // metric → the rules and panels that name it
	for _, r := range only[*prometheusRule](t, ms).Spec.Groups[0].Rules {
		for _, m := range promqlMetrics(r.Expr) {
			where[m] = append(where[m], "alert "+r.Alert)
		}
	}
	var d grafanaDashboard
	if err := json.Unmarshal([]byte(named[*corev1.ConfigMap](t, ms, "pay-payments-api-dashboard").Data["payments-api.json"]), &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			for _, m := range promqlMetrics(q.Expr) {
				where[m] = append(where[m], "panel "+p.Title)
			}
		}
	}
	for m, names := range where {
		_, exported := list.Exported[m]
		if !exported && !slices.Contains(list.Prometheus, m) {
			t.Errorf("%s (%s) is not in testdata/rule-metrics.yaml", m, strings.Join(slices.Compact(names), ", "))
		}
	}
	for _, m := range slices.Concat(slices.Collect(maps.Keys(list.Exported)), list.Prometheus) {
		if _, ok := where[m]; !ok {
			t.Errorf("testdata/rule-metrics.yaml lists %s, which no rule or panel names", m)
		}
	}
	for m, cond := range list.Exported {
		if !strings.HasPrefix(m, "payments_api_") || !slices.Contains([]string{"", "DATABASE_URL", "REDIS_URL"}, cond) {
			t.Errorf("rule-metrics.yaml: %s: %q; want a payments_api_ metric and \"\", DATABASE_URL or REDIS_URL", m, cond)
		}
	}
}
