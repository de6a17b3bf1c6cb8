// Package chartstest proves the Kubernetes packaging of payments-api without a
// cluster or a Docker engine: the Helm chart is linted and rendered with the
// real helm binary, every document is decoded strictly into the Kubernetes API
// types, pods are evaluated against the restricted Pod Security Standard, and
// the Dockerfile and skaffold.yaml are checked against the chart and the binary.
package chartstest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	// repoRoot is the root of the payments-api repository, seen from this module.
	repoRoot = "../.."
	// chartDir is the chart under test.
	chartDir = "../payments-api"
	// kubeVersion is the cluster version the chart is rendered for; helm built
	// with `go install` would otherwise assume v1.20, below the chart's kubeVersion.
	kubeVersion = "1.34.0"
	// release and namespace name the rendered release.
	release   = "pay"
	namespace = "payments"
)

// The sentinel secrets in testdata/required.yaml and testdata/all-features.yaml.
var sentinels = map[string]string{
	"STRIPE_SECRET_KEY":     "sk_test_SENTINELstripeKey42",
	"STRIPE_WEBHOOK_SECRET": "whsec_SENTINELwebhookSecret42",
	"NEXTJS_WEBHOOK_SECRET": "SENTINEL-nextjs-signing-secret-42",
	"CLERK_JWT_KEY":         "-----BEGIN PUBLIC KEY-----\nSENTINELclerkPemKey42\n-----END PUBLIC KEY-----\n",
	"DATABASE_URL":          "postgres://payments:SENTINEL-database-password-42@postgres.db.svc.cluster.local:5432/payments?sslmode=require",
	"REDIS_URL":             "rediss://:SENTINEL-redis-password-42@redis.cache.svc.cluster.local:6380/0",
	"ADMIN_USERNAME":        "SENTINEL-admin-user",
	"ADMIN_PASSWORD":        "SENTINEL-admin-password-42",
}

// toolBin finds a test tool through its environment variable or PATH. A
// missing tool fails the test, naming the command that installs it: skipping
// would let CI pass without checking the chart at all.
func toolBin(t *testing.T, envVar, name, install string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run make tools, or set %s or put %s on PATH (%s): %v", name, envVar, name, install, err)
	}
	return p
}

// helmBin finds helm.
func helmBin(t *testing.T) string {
	t.Helper()
	return toolBin(t, "HELM_BIN", "helm", "go install helm.sh/helm/v3/cmd/helm@v3.19.0")
}

// runHelm runs helm with args and returns stdout, stderr and the error.
func runHelm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	// A private helm home keeps the test away from the user's repositories and plugins.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// templateArgs are the `helm template` arguments for the chart with extra args.
func templateArgs(extra ...string) []string {
	args := []string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	return append(args, extra...)
}

// valuesArgs turns testdata values file names into -f arguments.
func valuesArgs(files ...string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", filepath.Join("testdata", f))
	}
	return args
}

// rendering is one `helm template` run, shared by every test that asks for the
// same arguments.
type rendering struct {
	once        sync.Once
	out, stderr string
	err         error
}

// renderings caches helm template's output by its arguments: the tests render
// the same few scenarios again and again (22 of 70 helm runs were repeats, at
// about 170 ms of CPU each), and neither the chart nor its values files change
// during a run. Each test still decodes its own objects.
var renderings sync.Map // arguments joined by NUL → *rendering

// render runs helm template (or reuses an earlier identical run) and fails the
// test when it fails.
func render(t *testing.T, extra ...string) string {
	t.Helper()
	args := templateArgs(extra...)
	v, _ := renderings.LoadOrStore(strings.Join(args, "\x00"), &rendering{})
	r := v.(*rendering)
	r.once.Do(func() { r.out, r.stderr, r.err = runHelm(t, args...) })
	if r.err != nil {
		t.Fatalf("helm template %v: %v\n%s", extra, r.err, r.stderr)
	}
	return r.out
}

// manifest is one rendered document, decoded strictly into its API type.
type manifest struct {
	Source string // the template it came from
	Raw    string
	Kind   string
	Object any
}

// serviceMonitor is the part of prometheus-operator's ServiceMonitor
// (monitoring.coreos.com/v1) that the chart renders; the CRD is not in
// k8s.io/api, and a strict decode into this struct catches a misspelt field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// prometheusRule is the part of prometheus-operator's PrometheusRule
// (monitoring.coreos.com/v1) that the chart renders, decoded strictly like
// the ServiceMonitor.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

// ruleGroup is one group of a PrometheusRule, in the shape of a Prometheus
// rule file's group.
type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

// rule is one alerting rule.
type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// newObject returns an empty object of the API type for apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Pod":
		return &corev1.Pod{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "batch/v1/Job":
		return &batchv1.Job{}, true
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &serviceMonitor{}, true
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &prometheusRule{}, true
	}
	return nil, false
}

// decodeAll splits helm output into documents and decodes each one strictly:
// an unknown or misplaced field, or an unexpected kind, fails the test.
func decodeAll(t *testing.T, out string) []manifest {
	t.Helper()
	var ms []manifest
	for _, doc := range strings.Split(out, "\n---") {
		source := ""
		var body []string
		for _, line := range strings.Split(doc, "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok && source == "" {
				source = s
				continue
			}
			body = append(body, line)
		}
		raw := strings.TrimSpace(strings.Join(body, "\n"))
		if raw == "" || raw == "---" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(raw), &tm); err != nil {
			t.Fatalf("%s: not YAML: %v", source, err)
		}
		obj, ok := newObject(tm.APIVersion, tm.Kind)
		if !ok {
			t.Fatalf("%s: unexpected %s %s", source, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(raw), obj); err != nil {
			t.Fatalf("%s: strict decode into %T: %v", source, obj, err)
		}
		ms = append(ms, manifest{Source: source, Raw: raw, Kind: tm.Kind, Object: obj})
	}
	return ms
}

// named returns the object of type T called name, failing when there is none.
func named[T metav1.Object](t *testing.T, ms []manifest, name string) T {
	t.Helper()
	for _, m := range ms {
		if o, ok := m.Object.(T); ok && o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

// all returns every object of type T.
func all[T any](ms []manifest) []T {
	var found []T
	for _, m := range ms {
		if o, ok := m.Object.(T); ok {
			found = append(found, o)
		}
	}
	return found
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T any](t *testing.T, ms []manifest) T {
	t.Helper()
	found := all[T](ms)
	if len(found) != 1 {
		var zero T
		t.Fatalf("got %d objects of type %T, want 1", len(found), zero)
	}
	return found[0]
}
