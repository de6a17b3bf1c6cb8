package chartstest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// hookWeight reads an object's helm.sh/hook-weight (0 when unset, as helm does).
func hookWeight(t *testing.T, annotations map[string]string) int {
	t.Helper()
	w, ok := annotations["helm.sh/hook-weight"]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(w)
	if err != nil {
		t.Fatalf("hook weight %q: %v", w, err)
	}
	return n
}

// TestMigrationJob checks the schema migration that runs before any pod of a
// durable release starts: a pre-install and pre-upgrade hook with the API's
// image and security context, reading DATABASE_URL from a Secret that exists
// when it runs.
func TestMigrationJob(t *testing.T) {
	tests := []struct {
		name       string
		files      []string
		secretName string // the Secret the Job reads DATABASE_URL from
		secretKey  string
		hookSecret bool // whether the chart renders that Secret as an earlier hook
		hookPolicy bool // whether a hook NetworkPolicy lets the Job out
	}{
		{"chart Secret: a hook Secret of lower weight", []string{"required.yaml", "all-features.yaml"}, "pay-payments-api-migrate", "DATABASE_URL", true, true},
		{"existing Secret: read as it is", []string{"existing-secret.yaml"}, "payments-api-prod", "database-url", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms := decodeAll(t, render(t, valuesArgs(tt.files...)...))
			job := only[*batchv1.Job](t, ms)
			d := only[*appsv1.Deployment](t, ms)

			if got := job.Annotations["helm.sh/hook"]; got != "pre-install,pre-upgrade" {
				t.Errorf("helm.sh/hook = %q, want pre-install,pre-upgrade", got)
			}
			if got := job.Annotations["helm.sh/hook-delete-policy"]; got != "before-hook-creation,hook-succeeded" {
				t.Errorf("Job delete policy = %q, want before-hook-creation,hook-succeeded (a failed Job stays for its log)", got)
			}
			pod := job.Spec.Template.Spec
			if pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy = %s, want Never (the Job's backoffLimit retries)", pod.RestartPolicy)
			}
			if job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil {
				t.Error("the Job has no backoffLimit or activeDeadlineSeconds: a broken database would hold the install until helm's timeout")
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("got %d containers, want 1", len(pod.Containers))
			}
			c, api := pod.Containers[0], d.Spec.Template.Spec.Containers[0]
			if got := append(slices.Clone(c.Command), c.Args...); !slices.Equal(got, []string{"/payments-api", "migrate"}) {
				t.Errorf("command = %q, want [/payments-api migrate]", got)
			}
			if c.Image != api.Image || c.ImagePullPolicy != api.ImagePullPolicy {
				t.Errorf("image %s (%s), want the API's %s (%s)", c.Image, c.ImagePullPolicy, api.Image, api.ImagePullPolicy)
			}
			if !equality.Semantic.DeepEqual(c.SecurityContext, api.SecurityContext) || !equality.Semantic.DeepEqual(pod.SecurityContext, d.Spec.Template.Spec.SecurityContext) {
				t.Errorf("security context %+v / pod %+v differs from the API's", c.SecurityContext, pod.SecurityContext)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the Job mounts a service account token; it needs no API access")
			}
			// The chart's ServiceAccount is not there yet when a pre-install hook runs.
			if pod.ServiceAccountName != "default" {
				t.Errorf("serviceAccountName = %q, want default (the chart's is created after pre-install hooks)", pod.ServiceAccountName)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Error("the migration container has no memory limit")
			}
			if len(c.EnvFrom) != 0 || len(c.Env) != 1 || c.Env[0].Name != "DATABASE_URL" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.SecretKeyRef == nil {
				t.Fatalf("env = %+v, envFrom = %+v; want DATABASE_URL alone, from a Secret (the ConfigMap does not exist before install)", c.Env, c.EnvFrom)
			}
			ref := c.Env[0].ValueFrom.SecretKeyRef
			if ref.Name != tt.secretName || ref.Key != tt.secretKey || (ref.Optional != nil && *ref.Optional) {
				t.Errorf("DATABASE_URL from %s/%s (optional %v), want %s/%s, required", ref.Name, ref.Key, ref.Optional, tt.secretName, tt.secretKey)
			}

			svc := only[*corev1.Service](t, ms)
			if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(job.Spec.Template.Labels)) {
				t.Error("the Service selects the migration pod")
			}
			if labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(job.Spec.Template.Labels)) {
				t.Error("the Deployment's selector matches the migration pod")
			}

			hookSecrets := hooks[*corev1.Secret](ms)
			if !tt.hookSecret {
				if len(hookSecrets) != 0 {
					t.Errorf("got %d hook Secrets, want none with existingSecret", len(hookSecrets))
				}
			} else {
				if len(hookSecrets) != 1 {
					t.Fatalf("got %d hook Secrets, want 1", len(hookSecrets))
				}
				s := hookSecrets[0]
				if s.Name != tt.secretName || s.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" {
					t.Errorf("hook Secret %s is a %q hook, want %s as pre-install,pre-upgrade", s.Name, s.Annotations["helm.sh/hook"], tt.secretName)
				}
				if hookWeight(t, s.Annotations) >= hookWeight(t, job.Annotations) {
					t.Errorf("hook Secret weight %d is not below the Job's %d: the Job could start first", hookWeight(t, s.Annotations), hookWeight(t, job.Annotations))
				}
				if got := s.Annotations["helm.sh/hook-delete-policy"]; got != "before-hook-creation,hook-succeeded" {
					t.Errorf("hook Secret delete policy = %q: it must go once the hooks are done", got)
				}
				keys := slices.Sorted(maps.Keys(s.Data))
				if !slices.Equal(keys, []string{"DATABASE_URL"}) || string(s.Data["DATABASE_URL"]) != sentinels["DATABASE_URL"] {
					t.Errorf("hook Secret holds %v; want DATABASE_URL alone, the configured one", keys)
				}
			}

			hookPolicies := hooks[*networkingv1.NetworkPolicy](ms)
			if !tt.hookPolicy {
				if len(hookPolicies) != 0 {
					t.Errorf("got %d hook NetworkPolicies without networkPolicy.enabled", len(hookPolicies))
				}
				return
			}
			if len(hookPolicies) != 1 {
				t.Fatalf("got %d hook NetworkPolicies, want 1", len(hookPolicies))
			}
			np := hookPolicies[0]
			if hookWeight(t, np.Annotations) >= hookWeight(t, job.Annotations) || np.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" {
				t.Errorf("hook NetworkPolicy %v does not come before the Job", np.Annotations)
			}
			if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(job.Spec.Template.Labels)) {
				t.Error("the hook NetworkPolicy does not select the migration pod")
			}
			if labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Error("the hook NetworkPolicy selects the API pods")
			}
			if len(np.Spec.Ingress) != 0 || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				t.Errorf("the migration pod accepts ingress: %+v", np.Spec.Ingress)
			}
			if got := egressPorts(np); !slices.Equal(got, []string{"53/UDP", "53/TCP", "5432/TCP"}) {
				t.Errorf("migration egress = %v, want DNS and PostgreSQL only", got)
			}
			if db := np.Spec.Egress[len(np.Spec.Egress)-1].To; len(db) != 1 || db[0].PodSelector == nil || db[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "postgresql" {
				t.Errorf("PostgreSQL peers = %+v, want networkPolicy.databaseTo", db)
			}
		})
	}
}

// hooks returns every object of type T that is a helm hook.
func hooks[T metav1.Object](ms []manifest) []T {
	var found []T
	for _, o := range all[T](ms) {
		if o.GetAnnotations()["helm.sh/hook"] != "" {
			found = append(found, o)
		}
	}
	return found
}

// egressPorts lists a NetworkPolicy's egress ports as port/protocol, in order.
func egressPorts(np *networkingv1.NetworkPolicy) []string {
	var ports []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", p.Port.String(), *p.Protocol))
		}
	}
	return ports
}

func TestNoDatabaseNoMigration(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"synchronous delivery", valuesArgs("required.yaml")},
		{"migration turned off", append(valuesArgs("required.yaml"), "--set", "database.url=postgres://u:p@db/payments,migration.enabled=false,networkPolicy.enabled=true")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms := decodeAll(t, render(t, tt.args...))
			if jobs := all[*batchv1.Job](ms); len(jobs) != 0 {
				t.Errorf("got %d Jobs, want none", len(jobs))
			}
			for _, m := range ms {
				if h := objectMeta(t, m).Annotations["helm.sh/hook"]; h != "" && h != "test" {
					t.Errorf("%s %s is a %s hook", m.Kind, objectMeta(t, m).Name, h)
				}
			}
		})
	}
}

// TestAdminPort checks that the queue's admin UI stays off by default and,
// when on, is a container port only: never behind the Service, so never
// behind the Ingress.
func TestAdminPort(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		wantPort int32 // 0: no admin listener
	}{
		{"off by default", []string{"required.yaml"}, 0},
		{"on, custom port", []string{"required.yaml", "all-features.yaml"}, 9191},
		{"on, existing Secret", []string{"existing-secret.yaml"}, 9091},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms := decodeAll(t, render(t, valuesArgs(tt.files...)...))
			env, d := containerEnv(t, ms)
			var admin *corev1.ContainerPort
			for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
				if p.Name == "admin" {
					admin = &p
				}
			}
			if tt.wantPort == 0 {
				if admin != nil || env["ADMIN_ADDR"] != "" || env["ADMIN_USERNAME"] != "" {
					t.Errorf("admin port %v, ADMIN_ADDR %q, ADMIN_USERNAME %q; want none by default", admin, env["ADMIN_ADDR"], env["ADMIN_USERNAME"])
				}
			} else if admin == nil || admin.ContainerPort != tt.wantPort || env["ADMIN_ADDR"] != fmt.Sprintf(":%d", tt.wantPort) {
				t.Errorf("admin port %v, ADMIN_ADDR %q; want %d", admin, env["ADMIN_ADDR"], tt.wantPort)
			}
			svc := only[*corev1.Service](t, ms)
			for _, p := range svc.Spec.Ports {
				if p.Name != "http" && p.Name != "metrics" || p.TargetPort.String() == "admin" || p.TargetPort.IntValue() == int(tt.wantPort) && tt.wantPort != 0 {
					t.Errorf("Service port %s → %s: the admin UI must not be exposed", p.Name, p.TargetPort.String())
				}
			}
			for _, np := range all[*networkingv1.NetworkPolicy](ms) {
				for _, r := range np.Spec.Ingress {
					for _, p := range r.Ports {
						if p.Port.String() == "admin" || p.Port.IntValue() == int(tt.wantPort) && tt.wantPort != 0 {
							t.Errorf("NetworkPolicy %s opens the admin port", np.Name)
						}
					}
				}
			}
		})
	}
}

// TestOptionalEgress checks that the NetworkPolicy opens PostgreSQL, Redis
// and the collector exactly when the service uses them, on the ports and to
// the peers configured, and to any address when no peer is named.
func TestOptionalEgress(t *testing.T) {
	tests := []struct {
		name string
		set  string
		want []string
	}{
		{"nothing optional", "", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP"}},
		{"database", "database.url=postgres://u:p@db/payments", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "5432/TCP"}},
		{"database on another port", "database.url=postgres://u:p@db/payments,networkPolicy.databasePort=6432", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "6432/TCP"}},
		{"redis", "redis.url=redis://redis:6379", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "6379/TCP"}},
		{"collector port from the endpoint", "tracing.otlpEndpoint=http://collector:14318", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "14318/TCP"}},
		{"collector port from grpc", "tracing.otlpEndpoint=http://collector,tracing.otlpProtocol=grpc", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "4317/TCP"}},
		{"collector port from http", "tracing.otlpEndpoint=https://collector", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "4318/TCP"}},
		{"collector port explicit", "tracing.otlpEndpoint=http://collector:4318,networkPolicy.otlpPort=8080", []string{"53/UDP", "53/TCP", "443/TCP", "3000/TCP", "8080/TCP"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(valuesArgs("required.yaml"), "--set", "networkPolicy.enabled=true")
			if tt.set != "" {
				args = append(args, "--set", tt.set)
			}
			ms := decodeAll(t, render(t, args...))
			d := only[*appsv1.Deployment](t, ms)
			np := named[*networkingv1.NetworkPolicy](t, ms, d.Name)
			if got := egressPorts(np); !slices.Equal(got, tt.want) {
				t.Errorf("egress = %v, want %v", got, tt.want)
			}
			// Without peers, the optional rules allow any address: managed
			// databases and caches live outside the cluster.
			if last := np.Spec.Egress[len(np.Spec.Egress)-1]; len(tt.want) > 4 && len(last.To) != 0 {
				t.Errorf("the rule for %s has peers %+v, want none (any address)", tt.want[4], last.To)
			}
		})
	}
	t.Run("peers", func(t *testing.T) {
		ms := renderScenario(t, scenarios[1])
		d := only[*appsv1.Deployment](t, ms)
		np := named[*networkingv1.NetworkPolicy](t, ms, d.Name)
		peers := map[string]networkingv1.NetworkPolicyPeer{}
		for _, r := range np.Spec.Egress {
			if len(r.To) == 1 && len(r.Ports) == 1 {
				peers[r.Ports[0].Port.String()] = r.To[0]
			}
		}
		if p := peers["5432"]; p.PodSelector == nil || p.PodSelector.MatchLabels["app.kubernetes.io/name"] != "postgresql" {
			t.Errorf("PostgreSQL peer %+v, want networkPolicy.databaseTo", p)
		}
		if p := peers["6380"]; p.IPBlock == nil || p.IPBlock.CIDR != "10.20.0.0/16" {
			t.Errorf("Redis peer %+v, want networkPolicy.redisTo", p)
		}
		if p := peers["4318"]; p.NamespaceSelector == nil || p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
			t.Errorf("collector peer %+v, want networkPolicy.otlpTo", p)
		}
	})
}
