package chartstest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

// binaryEnv is every environment variable of the binary (the README's
// configuration tables, and the standard OpenTelemetry ones the chart passes
// through). The chart may set no other variable: the binary would ignore it,
// and an operator would believe it configured something.
var binaryEnv = []string{
	"LISTEN_ADDR", "METRICS_ADDR", "LOG_LEVEL", "LOG_FORMAT", "FRONTEND_URL",
	"CORS_ALLOWED_ORIGINS", "CLERK_ISSUER", "CLERK_JWKS_URL", "CLERK_JWT_KEY",
	"CLERK_AUTHORIZED_PARTIES", "CLERK_CLOCK_SKEW", "STRIPE_SECRET_KEY",
	"STRIPE_WEBHOOK_SECRET", "STRIPE_API_URL", "STRIPE_PRICE_IDS",
	"CHECKOUT_SUCCESS_URL", "CHECKOUT_CANCEL_URL", "CHECKOUT_RATE_LIMIT",
	"NEXTJS_WEBHOOK_URL", "NEXTJS_WEBHOOK_SECRET", "WEBHOOK_FORWARD_EVENTS",
	"FORWARD_TIMEOUT", "SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT",
	// Durable delivery.
	"DATABASE_URL", "DELIVERY_WORKERS", "DELIVERY_MAX_ATTEMPTS", "DELIVERY_RETENTION",
	"ADMIN_ADDR", "ADMIN_USERNAME", "ADMIN_PASSWORD",
	// Subscriptions.
	"PORTAL_RETURN_URL", "STRIPE_PORTAL_CONFIGURATION", "CHECKOUT_ALLOW_PROMOTION_CODES",
	"CHECKOUT_TRIAL_DAYS", "CHECKOUT_SINGLE_SUBSCRIPTION",
	// Shared rate limits.
	"REDIS_URL",
	// Tracing.
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
}

// secretEnv are the variables that must come from a Secret, never a literal.
var secretEnv = []string{
	"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "NEXTJS_WEBHOOK_SECRET", "CLERK_JWT_KEY",
	"DATABASE_URL", "REDIS_URL", "ADMIN_USERNAME", "ADMIN_PASSWORD",
}

// scenario is one way of installing the chart.
type scenario struct {
	name      string
	files     []string
	wantKinds []string
}

var scenarios = []scenario{
	{
		name:      "defaults",
		files:     []string{"required.yaml"},
		wantKinds: []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Pod", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"},
	},
	{
		name:  "all features",
		files: []string{"required.yaml", "all-features.yaml"},
		// The second ConfigMap is the Grafana dashboard; the migration Job
		// brings its hook Secret and NetworkPolicy.
		wantKinds: []string{"ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
			"NetworkPolicy", "NetworkPolicy", "Pod", "PodDisruptionBudget", "PrometheusRule", "Secret", "Secret",
			"Service", "ServiceAccount", "ServiceMonitor"},
	},
	{
		name:      "existing secret",
		files:     []string{"existing-secret.yaml"},
		wantKinds: []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "Pod", "PodDisruptionBudget", "Service", "ServiceAccount"},
	},
}

func renderScenario(t *testing.T, sc scenario, extra ...string) []manifest {
	t.Helper()
	return decodeAll(t, render(t, append(valuesArgs(sc.files...), extra...)...))
}

func TestLintStrict(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, valuesArgs(sc.files...)...)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint output lacks success line:\n%s", out)
			}
		})
	}
}

func TestRenderedKinds(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ms := renderScenario(t, sc)
			var got []string
			for _, m := range ms {
				got = append(got, m.Kind)
			}
			sort.Strings(got)
			if !slices.Equal(got, sc.wantKinds) {
				t.Errorf("kinds = %v, want %v", got, sc.wantKinds)
			}
			for _, m := range ms {
				meta := objectMeta(t, m)
				for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
					if meta.Labels[k] == "" {
						t.Errorf("%s %s: label %s missing", m.Kind, meta.Name, k)
					}
				}
				if m.Kind != "Pod" && meta.Labels["app.kubernetes.io/version"] == "" {
					t.Errorf("%s %s: label app.kubernetes.io/version missing", m.Kind, meta.Name)
				}
			}
		})
	}
}

// objectMeta returns the metadata of any decoded object.
func objectMeta(t *testing.T, m manifest) metav1.ObjectMeta {
	t.Helper()
	switch o := m.Object.(type) {
	case metav1.Object: // the ServiceMonitor too, through its embedded ObjectMeta
		return metav1.ObjectMeta{Name: o.GetName(), Labels: o.GetLabels(), Annotations: o.GetAnnotations()}
	}
	t.Fatalf("%T has no metadata", m.Object)
	return metav1.ObjectMeta{}
}

// podSpecs returns every pod template of the release: the Deployment's, the
// helm test Pod's and the migration Job's.
func podSpecs(t *testing.T, ms []manifest) map[string]struct {
	meta metav1.ObjectMeta
	spec corev1.PodSpec
} {
	t.Helper()
	specs := map[string]struct {
		meta metav1.ObjectMeta
		spec corev1.PodSpec
	}{}
	for _, m := range ms {
		switch o := m.Object.(type) {
		case *appsv1.Deployment:
			specs["Deployment/"+o.Name] = struct {
				meta metav1.ObjectMeta
				spec corev1.PodSpec
			}{o.Spec.Template.ObjectMeta, o.Spec.Template.Spec}
		case *corev1.Pod:
			specs["Pod/"+o.Name] = struct {
				meta metav1.ObjectMeta
				spec corev1.PodSpec
			}{o.ObjectMeta, o.Spec}
		case *batchv1.Job:
			specs["Job/"+o.Name] = struct {
				meta metav1.ObjectMeta
				spec corev1.PodSpec
			}{o.Spec.Template.ObjectMeta, o.Spec.Template.Spec}
		}
	}
	if len(all[*appsv1.Deployment](ms)) != 1 || len(all[*corev1.Pod](ms)) != 1 {
		t.Fatalf("got %d pod specs, want the Deployment's, the helm test Pod's and any Job's", len(specs))
	}
	return specs
}

// restrictedViolations evaluates a pod against the latest restricted Pod
// Security Standard and returns why it is forbidden, or "" when allowed.
func restrictedViolations(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	level := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	res := policy.AggregateCheckResults(evaluator.EvaluatePod(level, meta, spec))
	if res.Allowed {
		return ""
	}
	return fmt.Sprintf("%v %v", res.ForbiddenReasons, res.ForbiddenDetails)
}

func TestPodSecurityRestricted(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			for name, p := range podSpecs(t, renderScenario(t, sc)) {
				if v := restrictedViolations(t, &p.meta, &p.spec); v != "" {
					t.Errorf("%s violates restricted: %s", name, v)
				}
			}
		})
	}
	// The evaluator must be able to say no, or the check above proves nothing.
	t.Run("control", func(t *testing.T) {
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}
		if restrictedViolations(t, &metav1.ObjectMeta{}, &spec) == "" {
			t.Error("a pod without a security context was allowed")
		}
	})
}

func TestNoSecretOutsideSecrets(t *testing.T) {
	sc := scenarios[1] // every secret value is set there
	ms := renderScenario(t, sc)
	for _, m := range ms {
		if _, ok := m.Object.(*corev1.Secret); ok {
			continue
		}
		for key, value := range sentinels {
			for _, needle := range []string{strings.TrimSpace(value), base64.StdEncoding.EncodeToString([]byte(value)), "SENTINEL"} {
				if strings.Contains(m.Raw, needle) {
					t.Errorf("%s (%s) contains the value of %s", m.Kind, m.Source, key)
				}
			}
		}
	}
	secret := named[*corev1.Secret](t, ms, "pay-payments-api")
	// The sentinels really were rendered, into the Secret only.
	for key, want := range sentinels {
		if got := string(secret.Data[key]); got != want {
			t.Errorf("Secret %s = %q, want %q", key, got, want)
		}
	}
	for name, p := range podSpecs(t, ms) {
		for _, c := range p.spec.Containers {
			for _, e := range c.Env {
				if slices.Contains(secretEnv, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s: %s is not taken from a Secret", name, e.Name)
				}
				if e.Value != "" {
					t.Errorf("%s: env %s is a literal; plain configuration belongs in the ConfigMap", name, e.Name)
				}
			}
		}
	}
}

// containerEnv maps each variable the API container gets to where it comes from.
func containerEnv(t *testing.T, ms []manifest) (map[string]string, *appsv1.Deployment) {
	t.Helper()
	d := only[*appsv1.Deployment](t, ms)
	cm := named[*corev1.ConfigMap](t, ms, d.Name)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil || from.ConfigMapRef.Name != cm.Name {
			t.Fatalf("envFrom %+v is not the chart's ConfigMap %s", from, cm.Name)
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s is set twice", e.Name)
		}
		env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
	}
	return env, d
}

func TestEnvironmentMatchesBinary(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			env, _ := containerEnv(t, renderScenario(t, sc))
			for name := range env {
				if !slices.Contains(binaryEnv, name) {
					t.Errorf("%s is not a variable of the binary", name)
				}
			}
			for _, name := range []string{"LISTEN_ADDR", "METRICS_ADDR", "CLERK_ISSUER", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
				"STRIPE_PRICE_IDS", "NEXTJS_WEBHOOK_URL", "NEXTJS_WEBHOOK_SECRET", "SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
				if _, ok := env[name]; !ok {
					t.Errorf("%s is not set", name)
				}
			}
		})
	}
	t.Run("every variable can be set", func(t *testing.T) {
		env, _ := containerEnv(t, renderScenario(t, scenarios[1]))
		for _, name := range binaryEnv {
			if _, ok := env[name]; !ok {
				t.Errorf("all-features values do not set %s: the chart cannot configure it", name)
			}
		}
	})
	t.Run("values reach the variables", func(t *testing.T) {
		env, _ := containerEnv(t, renderScenario(t, scenarios[1]))
		want := map[string]string{
			"LOG_LEVEL":                "debug",
			"LOG_FORMAT":               "text",
			"FRONTEND_URL":             "https://shop.example.com",
			"CORS_ALLOWED_ORIGINS":     "https://shop.example.com,https://www.shop.example.com",
			"CLERK_ISSUER":             "https://clerk.example.com",
			"CLERK_JWKS_URL":           "https://clerk.example.com/.well-known/jwks.json",
			"CLERK_AUTHORIZED_PARTIES": "https://shop.example.com",
			"CLERK_CLOCK_SKEW":         "10s",
			"STRIPE_API_URL":           "https://stripe-mock.payments.svc.cluster.local:12112",
			"STRIPE_PRICE_IDS":         "price_basic,price_pro",
			"CHECKOUT_SUCCESS_URL":     "https://shop.example.com/thanks?session_id={CHECKOUT_SESSION_ID}",
			"CHECKOUT_CANCEL_URL":      "https://shop.example.com/pricing",
			"CHECKOUT_RATE_LIMIT":      "5/m",
			"NEXTJS_WEBHOOK_URL":       "http://web.frontend.svc.cluster.local:8080/api/stripe/forwarded",
			"WEBHOOK_FORWARD_EVENTS":   "checkout.session.completed,invoice.paid",
			"FORWARD_TIMEOUT":          "15s",
			"SHUTDOWN_DELAY":           "10s",
			"SHUTDOWN_TIMEOUT":         "30s",
			"STRIPE_SECRET_KEY":        "secret:pay-payments-api/STRIPE_SECRET_KEY",
			"CLERK_JWT_KEY":            "secret:pay-payments-api/CLERK_JWT_KEY",

			"DATABASE_URL":          "secret:pay-payments-api/DATABASE_URL",
			"DELIVERY_WORKERS":      "20",
			"DELIVERY_MAX_ATTEMPTS": "30",
			"DELIVERY_RETENTION":    "72h",
			"ADMIN_ADDR":            ":9191",
			"ADMIN_USERNAME":        "secret:pay-payments-api/ADMIN_USERNAME",
			"ADMIN_PASSWORD":        "secret:pay-payments-api/ADMIN_PASSWORD",

			"PORTAL_RETURN_URL":              "https://shop.example.com/settings/billing",
			"STRIPE_PORTAL_CONFIGURATION":    "bpc_1PortalConfig42",
			"CHECKOUT_ALLOW_PROMOTION_CODES": "true",
			"CHECKOUT_TRIAL_DAYS":            "14",
			"CHECKOUT_SINGLE_SUBSCRIPTION":   "false",

			"REDIS_URL": "secret:pay-payments-api/REDIS_URL",

			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring.svc.cluster.local:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_SERVICE_NAME":           "payments-api-eu",
			// Sorted, and percent-encoded as the OpenTelemetry SDK decodes them.
			"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=production,team=payments%20and%20billing",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
	})
	t.Run("existing secret keys", func(t *testing.T) {
		env, d := containerEnv(t, renderScenario(t, scenarios[2]))
		want := map[string]string{
			"STRIPE_SECRET_KEY":     "secret:payments-api-prod/stripe-secret-key",
			"STRIPE_WEBHOOK_SECRET": "secret:payments-api-prod/stripe-webhook-secret",
			"NEXTJS_WEBHOOK_SECRET": "secret:payments-api-prod/nextjs-webhook-secret",
			"CLERK_JWT_KEY":         "secret:payments-api-prod/clerk-jwt-key",
			"DATABASE_URL":          "secret:payments-api-prod/database-url",
			"REDIS_URL":             "secret:payments-api-prod/redis-url",
			"ADMIN_USERNAME":        "secret:payments-api-prod/admin-user",
			"ADMIN_PASSWORD":        "secret:payments-api-prod/admin-password",
			"ADMIN_ADDR":            ":9091",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			optional := e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional
			if optional != (e.Name == "CLERK_JWT_KEY") {
				t.Errorf("%s optional = %v; only the Clerk PEM key may be missing", e.Name, optional)
			}
		}
	})
}

// seconds reads a chart duration (e.g. 1m30s) as whole seconds, for the
// grace-period check.
func seconds(t *testing.T, d string) int64 {
	t.Helper()
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("duration %q: %v", d, err)
	}
	return int64(dur / time.Second)
}

func TestDeploymentMatchesBinary(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ms := renderScenario(t, sc)
			env, d := containerEnv(t, ms)
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]

			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			want := map[string]int32{"http": 8001, "metrics": 9090}
			if addr, ok := env["ADMIN_ADDR"]; ok {
				port, _ := strconv.Atoi(strings.TrimPrefix(addr, ":"))
				want["admin"] = int32(port)
			}
			if !maps.Equal(ports, want) {
				t.Errorf("container ports = %v, want %v (ADMIN_ADDR %q)", ports, want, env["ADMIN_ADDR"])
			}
			if env["LISTEN_ADDR"] != ":8001" || env["METRICS_ADDR"] != ":9090" {
				t.Errorf("LISTEN_ADDR %q, METRICS_ADDR %q do not match the container ports", env["LISTEN_ADDR"], env["METRICS_ADDR"])
			}
			for name, probe := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				want := "/readyz"
				if name == "liveness" {
					want = "/healthz"
				}
				if probe == nil || probe.HTTPGet == nil {
					t.Errorf("%s probe is not an HTTP probe", name)
					continue
				}
				if probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe = %s on %s, want %s on the named port http", name, probe.HTTPGet.Path, probe.HTTPGet.Port.String(), want)
				}
			}

			if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.String() != "0" {
				t.Errorf("rolling update maxUnavailable = %v, want 0", d.Spec.Strategy.RollingUpdate)
			}
			need := seconds(t, env["SHUTDOWN_DELAY"]) + seconds(t, env["SHUTDOWN_TIMEOUT"])
			if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds <= need {
				t.Errorf("terminationGracePeriodSeconds = %v, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %d", pod.TerminationGracePeriodSeconds, need)
			}
			if sc.name == "defaults" && env["SHUTDOWN_DELAY"] != "5s" {
				t.Errorf("SHUTDOWN_DELAY = %q, want 5s in Kubernetes", env["SHUTDOWN_DELAY"])
			}
			for _, a := range []string{"checksum/config", "checksum/secrets"} {
				if len(d.Spec.Template.Annotations[a]) != 64 {
					t.Errorf("annotation %s = %q, want a sha256", a, d.Spec.Template.Annotations[a])
				}
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken is not false")
			}
			sa := only[*corev1.ServiceAccount](t, ms)
			if pod.ServiceAccountName != sa.Name || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Errorf("pods run as %q; ServiceAccount %q automount %v", pod.ServiceAccountName, sa.Name, sa.AutomountServiceAccountToken)
			}
			sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
			if len(pod.TopologySpreadConstraints) == 0 {
				t.Error("no topologySpreadConstraints")
			}
			for _, tsc := range pod.TopologySpreadConstraints {
				if tsc.LabelSelector == nil || !labels.Equals(tsc.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
					t.Errorf("topology spread on %s does not select the release's pods: %v", tsc.TopologyKey, tsc.LabelSelector)
				}
			}
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Error("the Deployment's selector does not match its pods")
			}
			sec := c.SecurityContext
			if sec == nil || sec.ReadOnlyRootFilesystem == nil || !*sec.ReadOnlyRootFilesystem || sec.RunAsUser == nil || *sec.RunAsUser != 65532 {
				t.Errorf("container security context %+v: want read-only root fs and user 65532", sec)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want a CPU request (the HPA needs it) and a memory limit", c.Resources)
			}

			// Service, PDB and HPA point at these pods.
			svc := only[*corev1.Service](t, ms)
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Error("the Service does not select the API pods")
			}
			svcPorts := map[string]string{}
			for _, p := range svc.Spec.Ports {
				svcPorts[p.Name] = fmt.Sprintf("%d->%s", p.Port, p.TargetPort.String())
			}
			if svcPorts["http"] != "8001->http" || svcPorts["metrics"] != "9090->metrics" {
				t.Errorf("Service ports = %v, want http 8001 and metrics 9090 to the named container ports", svcPorts)
			}
			pdb := only[*policyv1.PodDisruptionBudget](t, ms)
			if !labels.Equals(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
				t.Error("the PodDisruptionBudget does not select the API pods")
			}
			hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, ms)
			if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name {
				t.Errorf("HPA scales %v, want Deployment %s", hpa.Spec.ScaleTargetRef, d.Name)
			}
			if d.Spec.Replicas != nil {
				t.Error("replicas is set while the HPA owns the count")
			}
		})
	}
}

func TestHelmTestPod(t *testing.T) {
	ms := renderScenario(t, scenarios[0])
	pod := only[*corev1.Pod](t, ms)
	svc := only[*corev1.Service](t, ms)
	d := only[*appsv1.Deployment](t, ms)
	if pod.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("helm.sh/hook = %q, want test", pod.Annotations["helm.sh/hook"])
	}
	c := pod.Spec.Containers[0]
	want := []string{"/payments-api", "healthcheck", fmt.Sprintf("http://%s:%d/readyz", svc.Name, svc.Spec.Ports[0].Port)}
	if got := append(slices.Clone(c.Command), c.Args...); !slices.Equal(got, want) {
		t.Errorf("test command = %q, want %q", got, want)
	}
	if c.Image != d.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("test image %s is not the API image %s", c.Image, d.Spec.Template.Spec.Containers[0].Image)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %s, want Never", pod.Spec.RestartPolicy)
	}
	if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Error("the Service selects the test pod: it would receive API traffic")
	}
}

func TestImageReference(t *testing.T) {
	chart, err := os.ReadFile(chartDir + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chart, &meta); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"defaults to appVersion", []string{"required.yaml"}, "ghcr.io/acme/payments-api:" + meta.AppVersion},
		{"tag and digest", []string{"required.yaml", "all-features.yaml"},
			"ghcr.io/acme/payments-api:1.2.3@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := only[*appsv1.Deployment](t, decodeAll(t, render(t, valuesArgs(tt.files...)...)))
			if got := d.Spec.Template.Spec.Containers[0].Image; got != tt.want {
				t.Errorf("image = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNextjsWebhookURL(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"in-cluster Service in the release namespace", nil, "http://nextjs.payments.svc.cluster.local:3000/api/payments/webhook"},
		{"other Service, namespace, port and path",
			[]string{"--set", "nextjs.serviceName=web,nextjs.namespace=frontend,nextjs.port=8080,nextjs.webhookPath=/hooks/stripe"},
			"http://web.frontend.svc.cluster.local:8080/hooks/stripe"},
		{"explicit URL wins", []string{"--set", "nextjs.webhookUrl=https://shop.example.com/api/payments/webhook"},
			"https://shop.example.com/api/payments/webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cm := only[*corev1.ConfigMap](t, decodeAll(t, render(t, append(valuesArgs("required.yaml"), tt.set...)...)))
			if got := cm.Data["NEXTJS_WEBHOOK_URL"]; got != tt.want {
				t.Errorf("NEXTJS_WEBHOOK_URL = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestChecksumsRollPods(t *testing.T) {
	annotations := func(extra ...string) map[string]string {
		d := only[*appsv1.Deployment](t, decodeAll(t, render(t, append(valuesArgs("required.yaml"), extra...)...)))
		return d.Spec.Template.Annotations
	}
	base := annotations()
	config := annotations("--set", "log.level=debug")
	secret := annotations("--set", "stripe.secretKey=sk_test_rotated")
	if config["checksum/config"] == base["checksum/config"] || config["checksum/secrets"] != base["checksum/secrets"] {
		t.Errorf("a config change: checksum/config %s→%s, checksum/secrets %s→%s; want only the config checksum to change",
			base["checksum/config"], config["checksum/config"], base["checksum/secrets"], config["checksum/secrets"])
	}
	if secret["checksum/secrets"] == base["checksum/secrets"] || secret["checksum/config"] != base["checksum/config"] {
		t.Errorf("a secret change: checksum/secrets %s→%s, checksum/config %s→%s; want only the secrets checksum to change",
			base["checksum/secrets"], secret["checksum/secrets"], base["checksum/config"], secret["checksum/config"])
	}
	// The checksum is of the Secret, not of a secret: it reveals nothing on its own.
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(sentinels["STRIPE_SECRET_KEY"])))
	if base["checksum/secrets"] == sum {
		t.Error("checksum/secrets is the hash of the bare Stripe key")
	}
}

// TestChecksumsCoverEverySecret checks that each secret the chart reads rolls
// the pods when it changes: its value in the chart's Secret, or its key in
// existingSecret.
func TestChecksumsCoverEverySecret(t *testing.T) {
	existing := append(valuesArgs("existing-secret.yaml"), "--set", "admin.enabled=false")
	tests := []struct {
		name          string
		base, changed []string
	}{
		{"database URL", valuesArgs("required.yaml"), []string{"--set", "database.url=postgres://u:p@db/payments"}},
		{"redis URL", valuesArgs("required.yaml"), []string{"--set", "redis.url=redis://redis:6379"}},
		{"admin password", append(valuesArgs("required.yaml"), "--set", "database.url=postgres://u:p@db/payments,admin.enabled=true,admin.username=ops,admin.password=0123456789abcdef"),
			[]string{"--set", "admin.password=0123456789abcdefg"}},
		{"database key", existing, []string{"--set", "existingSecretKeys.databaseUrl=pg-url"}},
		{"redis key", existing, []string{"--set", "existingSecretKeys.redisUrl=cache-url"}},
		{"admin password key", existing, []string{"--set", "existingSecretKeys.adminPassword=ui-password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := only[*appsv1.Deployment](t, decodeAll(t, render(t, tt.base...))).Spec.Template.Annotations
			after := only[*appsv1.Deployment](t, decodeAll(t, render(t, append(slices.Clone(tt.base), tt.changed...)...))).Spec.Template.Annotations
			if before["checksum/secrets"] == after["checksum/secrets"] {
				t.Errorf("checksum/secrets unchanged by %v", tt.changed)
			}
		})
	}
}

func TestOptionalResources(t *testing.T) {
	ms := renderScenario(t, scenarios[1])
	svc := only[*corev1.Service](t, ms)
	svcPorts := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = true
	}

	ing := only[*networkingv1.Ingress](t, ms)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName = %v, want nginx", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "api-example-com-tls" || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"api.example.com"}) {
		t.Errorf("tls = %+v", ing.Spec.TLS)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "api.example.com" {
		t.Fatalf("rules = %+v", ing.Spec.Rules)
	}
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		b := p.Backend.Service
		if p.Path != "/stripe" || b == nil || b.Name != svc.Name || !svcPorts[b.Port.Name] || b.Port.Name != "http" {
			t.Errorf("ingress path %s → %+v, want /stripe → %s port http", p.Path, b, svc.Name)
		}
	}

	d := only[*appsv1.Deployment](t, ms)
	np := named[*networkingv1.NetworkPolicy](t, ms, d.Name)
	if !labels.Equals(np.Spec.PodSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Error("the NetworkPolicy does not select the API pods")
	}
	var ingressPorts []string
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			ingressPorts = append(ingressPorts, p.Port.String())
		}
	}
	if !slices.Equal(ingressPorts, []string{"http", "metrics"}) {
		t.Errorf("ingress ports = %v, want http then metrics", ingressPorts)
	}
	var egressPorts []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			egressPorts = append(egressPorts, fmt.Sprintf("%s/%s", p.Port.String(), *p.Protocol))
		}
	}
	if want := []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "5432/TCP", "6380/TCP", "4318/TCP", "12112/TCP"}; !slices.Equal(egressPorts, want) {
		t.Errorf("egress ports = %v, want %v (DNS, HTTPS, Next.js, PostgreSQL, Redis, OTLP, extra)", egressPorts, want)
	}
	testPod := only[*corev1.Pod](t, ms)
	testAllowed := false
	for _, peer := range np.Spec.Ingress[0].From {
		if peer.PodSelector != nil && peer.NamespaceSelector == nil && labels.SelectorFromSet(peer.PodSelector.MatchLabels).Matches(labels.Set(testPod.Labels)) {
			testAllowed = true
		}
	}
	if !testAllowed {
		t.Error("the NetworkPolicy blocks the helm test pod")
	}

	sm := only[*serviceMonitor](t, ms)
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor %s labels %v", sm.APIVersion, sm.Labels)
	}
	if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
		t.Error("the ServiceMonitor does not select the Service")
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || !svcPorts["metrics"] || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints = %+v, want port metrics path /metrics", sm.Spec.Endpoints)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor namespaces = %v", sm.Spec.NamespaceSelector.MatchNames)
	}
}

func TestBadValuesFail(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in helm's error output
	}{
		// The schema.
		{"publishable Stripe key", []string{"--set", "stripe.secretKey=pk_test_abc"}, "/stripe/secretKey"},
		{"webhook secret without whsec_", []string{"--set", "stripe.webhookSecret=sec_abc"}, "/stripe/webhookSecret"},
		{"wildcard CORS origin", []string{"--set", "corsAllowedOrigins[0]=*"}, "/corsAllowedOrigins/0"},
		{"CORS origin with a path", []string{"--set", "corsAllowedOrigins[0]=https://shop.example.com/app"}, "/corsAllowedOrigins/0"},
		{"http Clerk issuer", []string{"--set", "clerk.issuer=http://clerk.example.com"}, "/clerk/issuer"},
		{"http JWKS URL", []string{"--set", "clerk.jwksUrl=http://clerk.example.com/jwks"}, "/clerk/jwksUrl"},
		{"duration without unit", []string{"--set-string", "clerk.clockSkew=5"}, "/clerk/clockSkew"},
		{"duration in words", []string{"--set", "shutdown.delay=five"}, "/shutdown/delay"},
		{"negative duration", []string{"--set", "shutdown.timeout=-1s"}, "/shutdown/timeout"},
		{"forward timeout empty", []string{"--set", "webhook.forwardTimeout="}, "/webhook/forwardTimeout"},
		{"rate per day", []string{"--set", "checkout.rateLimit=10/d"}, "/checkout/rateLimit"},
		{"zero rate", []string{"--set", "checkout.rateLimit=0/m"}, "/checkout/rateLimit"},
		{"rate without period", []string{"--set-string", "checkout.rateLimit=10"}, "/checkout/rateLimit"},
		{"no replicas", []string{"--set", "replicaCount=0"}, "/replicaCount"},
		{"latest tag", []string{"--set", "image.tag=latest"}, "/image/tag"},
		{"bad digest", []string{"--set", "image.digest=md5:abc"}, "/image/digest"},
		{"unknown log level", []string{"--set", "log.level=trace"}, "/log/level"},
		{"unknown log format", []string{"--set", "log.format=xml"}, "/log/format"},
		{"frontend URL not http", []string{"--set", "frontendUrl=ftp://shop.example.com"}, "/frontendUrl"},
		{"price ID with a comma", []string{"--set", "stripe.priceIds[0]=price_a\\,price_b"}, "/stripe/priceIds/0"},
		{"short Next.js secret", []string{"--set", "nextjs.webhookSecret=short"}, "/nextjs/webhookSecret"},
		{"Clerk key not a PEM", []string{"--set", "clerk.jwtKey=MIIBIjANBgkq"}, "/clerk/jwtKey"},
		{"port out of range", []string{"--set", "nextjs.port=70000"}, "/nextjs/port"},
		{"webhook path relative", []string{"--set", "nextjs.webhookPath=api/payments/webhook"}, "/nextjs/webhookPath"},
		{"no event types", []string{"--set", "webhook.forwardEvents=null"}, "missing property 'forwardEvents'"},
		{"empty event type", []string{"--set", "webhook.forwardEvents[0]="}, "/webhook/forwardEvents/0"},
		{"unknown top-level value", []string{"--set", "replicas=3"}, "replicas"},
		{"unknown nested value", []string{"--set", "stripe.publishableKey=pk_test_abc"}, "publishableKey"},
		{"HPA without pods", []string{"--set", "autoscaling.maxReplicas=0"}, "/autoscaling/maxReplicas"},
		{"CPU target above 100", []string{"--set", "autoscaling.targetCPUUtilizationPercentage=150"}, "/autoscaling/targetCPUUtilizationPercentage"},
		// The templates' checks.
		{"no secrets at all", []string{"--set", "stripe.secretKey=,stripe.webhookSecret=,nextjs.webhookSecret="}, "stripe.secretKey is required unless existingSecret"},
		{"one secret missing", []string{"--set", "nextjs.webhookSecret="}, "nextjs.webhookSecret is required"},
		{"secret values and existingSecret", []string{"--set", "existingSecret=payments-api-prod"}, "stripe.secretKey conflicts with existingSecret"},
		{"no Clerk issuer", []string{"--set", "clerk.issuer="}, "clerk.issuer is required"},
		{"no price IDs", []string{"--set", "stripe.priceIds=null"}, "stripe.priceIds needs at least one price ID"},
		{"HPA bounds inverted", []string{"--set", "autoscaling.minReplicas=5,autoscaling.maxReplicas=3"}, "minReplicas must not exceed"},
		{"grace period too short", []string{"--set", "terminationGracePeriodSeconds=25"}, "terminationGracePeriodSeconds (25) must exceed"},
		{"two PDB bounds", []string{"--set", "podDisruptionBudget.minAvailable=1"}, "set minAvailable or maxUnavailable, not both"},
		{"scrape timeout above interval", []string{"--set", "metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.scrapeTimeout=1m"}, "scrapeTimeout must not exceed"},
		// Second round: the schema.
		{"MySQL database URL", []string{"--set", "database.url=mysql://u:p@db/payments"}, "/database/url"},
		{"Redis URL over http", []string{"--set", "redis.url=http://redis:6379"}, "/redis/url"},
		{"Redis URL with a path", []string{"--set", "redis.url=redis://redis:6379/cache/0"}, "/redis/url"},
		{"Stripe API over http off loopback", []string{"--set", "stripe.apiUrl=http://stripe-mock.payments.svc:12111"}, "/stripe/apiUrl"},
		{"no delivery workers", []string{"--set", "delivery.workers=0"}, "/delivery/workers"},
		{"too many delivery workers", []string{"--set", "delivery.workers=101"}, "/delivery/workers"},
		{"too many attempts", []string{"--set", "delivery.maxAttempts=101"}, "/delivery/maxAttempts"},
		{"retention in days", []string{"--set", "delivery.retention=7d"}, "/delivery/retention"},
		{"no retention", []string{"--set", "delivery.retention=0s"}, "/delivery/retention"},
		{"short admin password", []string{"--set", "admin.password=tooshort"}, "/admin/password"},
		{"admin port out of range", []string{"--set", "admin.port=0"}, "/admin/port"},
		{"trial too long", []string{"--set", "checkout.trialDays=731"}, "/checkout/trialDays"},
		{"negative trial", []string{"--set", "checkout.trialDays=-1"}, "/checkout/trialDays"},
		{"promotion codes as a word", []string{"--set-string", "checkout.allowPromotionCodes=yes"}, "/checkout/allowPromotionCodes"},
		{"portal configuration without bpc_", []string{"--set", "stripe.portalConfiguration=pc_123"}, "/stripe/portalConfiguration"},
		{"portal return URL not http", []string{"--set", "portal.returnUrl=javascript:alert(1)"}, "/portal/returnUrl"},
		{"unknown OTLP protocol", []string{"--set", "tracing.otlpProtocol=udp"}, "/tracing/otlpProtocol"},
		{"OTLP endpoint without scheme", []string{"--set", "tracing.otlpEndpoint=collector:4318"}, "/tracing/otlpEndpoint"},
		{"Next.js secret under 32 characters", []string{"--set", "nextjs.webhookSecret=0123456789abcdef0123456789abcde"}, "/nextjs/webhookSecret"},
		{"checkout error ratio above 1", []string{"--set", "metrics.prometheusRule.checkoutErrorRatio=2"}, "/metrics/prometheusRule/checkoutErrorRatio"},
		{"rule selector not PromQL", []string{"--set", "metrics.prometheusRule.selector=job"}, "/metrics/prometheusRule/selector"},
		{"dashboard without labels", []string{"--set", "metrics.grafanaDashboard.labels=null"}, "missing property 'labels'"},
		{"database key with a slash", []string{"--set", "existingSecretKeys.databaseUrl=a/b"}, "/existingSecretKeys/databaseUrl"},
		// Second round: the templates' checks.
		{"admin without a database", []string{"--set", "admin.enabled=true,admin.username=ops,admin.password=0123456789abcdef"}, "admin.enabled needs a database"},
		{"admin without credentials", []string{"--set", "admin.enabled=true,database.url=postgres://u:p@db/payments"}, "admin.enabled needs admin.username and admin.password"},
		{"admin on the metrics port", []string{"--set", "admin.enabled=true,admin.port=9090,database.url=postgres://u:p@db/payments,admin.username=ops,admin.password=0123456789abcdef"}, "admin.port 9090 is already"},
		{"admin with existingSecret but no keys", []string{"-f", "testdata/existing-secret.yaml", "--set", "stripe.secretKey=,stripe.webhookSecret=,nextjs.webhookSecret=,existingSecretKeys.adminPassword="},
			"admin.enabled with existingSecret needs existingSecretKeys.adminUsername and existingSecretKeys.adminPassword"},
		{"admin with existingSecret but no database key", []string{"-f", "testdata/existing-secret.yaml", "--set", "stripe.secretKey=,stripe.webhookSecret=,nextjs.webhookSecret=,existingSecretKeys.databaseUrl="},
			"admin.enabled needs a database"},
		{"database URL and existingSecret", []string{"-f", "testdata/existing-secret.yaml", "--set", "stripe.secretKey=,stripe.webhookSecret=,nextjs.webhookSecret=,database.url=postgres://u:p@db/payments"},
			"database.url conflicts with existingSecret"},
		{"redis URL and existingSecret", []string{"-f", "testdata/existing-secret.yaml", "--set", "stripe.secretKey=,stripe.webhookSecret=,nextjs.webhookSecret=,redis.url=redis://redis:6379"},
			"redis.url conflicts with existingSecret"},
		{"database key without existingSecret", []string{"--set", "existingSecretKeys.databaseUrl=database-url"}, "existingSecretKeys.databaseUrl needs existingSecret"},
		{"redis key without existingSecret", []string{"--set", "existingSecretKeys.redisUrl=redis-url"}, "existingSecretKeys.redisUrl needs existingSecret"},
		{"same secret for Stripe and Next.js", []string{"--set", "stripe.webhookSecret=whsec_0123456789abcdef0123456789abcdef,nextjs.webhookSecret=whsec_0123456789abcdef0123456789abcdef"},
			"nextjs.webhookSecret must differ from stripe.webhookSecret"},
		{"rules without a scrape", []string{"--set", "metrics.prometheusRule.enabled=true"}, "metrics.prometheusRule.enabled needs the metrics scraped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := templateArgs(append(valuesArgs("required.yaml"), tt.args...)...)
			out, stderr, err := runHelm(t, args...)
			if err == nil {
				t.Fatalf("helm template succeeded with %v:\n%.400s", tt.args, out)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("error does not mention %q:\n%s", tt.want, stderr)
			}
			for key, value := range sentinels {
				if strings.Contains(stderr, strings.TrimSpace(value)) {
					t.Errorf("error output echoes the value of %s", key)
				}
			}
		})
	}
}

// TestNotes renders NOTES.txt, which `helm template` leaves out, through a
// copy of the chart that exposes it as a ConfigMap.
func TestNotes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "payments-api")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	probe := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"template", release, dir, "--namespace", namespace, "--kube-version", kubeVersion, "--show-only", "templates/zz-notes.yaml"}
	out, stderr, err := runHelm(t, append(args, valuesArgs("required.yaml", "all-features.yaml")...)...)
	if err != nil {
		t.Fatalf("render NOTES.txt: %v\n%s", err, stderr)
	}
	got := only[*corev1.ConfigMap](t, decodeAll(t, out)).Data["notes"]
	for _, want := range []string{
		"kubectl --namespace payments port-forward service/pay-payments-api 8001:http",
		"stripe listen --forward-to localhost:8001/stripe/webhook",
		"helm test --namespace payments pay",
		"https://api.example.com/stripe",
		"http://web.frontend.svc.cluster.local:8080/api/stripe/forwarded, through the durable queue",
		"kubectl --namespace payments port-forward deployment/pay-payments-api 9191:admin",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, got)
		}
	}
	for key, value := range sentinels {
		if strings.Contains(got, strings.TrimSpace(value)) {
			t.Errorf("NOTES.txt shows the value of %s", key)
		}
	}
}

// TestValuesDocumented checks that every property of values.yaml that the
// schema defines has a comment beginning with its name, and a description
// to the editor through the schema header.
func TestValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if !strings.HasPrefix(text, "# yaml-language-server: $schema=values.schema.json\n") {
		t.Error("values.yaml does not start with the yaml-language-server schema header")
	}
	schemaRaw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(schemaRaw, &schema); err != nil {
		t.Fatal(err)
	}
	if schema["$schema"] != "http://json-schema.org/draft-07/schema#" || schema["additionalProperties"] != false {
		t.Errorf("schema is not draft-07 with additionalProperties false")
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, s map[string]any, v map[string]any)
	walk = func(prefix string, s map[string]any, v map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			val, present := v[name]
			if !present {
				continue
			}
			path := prefix + name
			ps, _ := p.(map[string]any)
			sub, isObj := val.(map[string]any)
			if _, nested := ps["properties"]; nested && isObj {
				walk(path+".", ps, sub)
				continue
			}
			if !strings.Contains(text, "# "+path+" ") {
				t.Errorf("values.yaml: %s has no comment beginning with its name", path)
			}
		}
	}
	walk("", schema, values)
}
