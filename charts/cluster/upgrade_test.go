package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// chartTestdata holds the values files the rendering tests use: the values an
// install needs, every option on, and the secrets in an existing Secret.
var chartTestdata = filepath.Join(repoRoot, "charts", "test", "testdata")

// values turns values file names from chartTestdata into -f arguments.
func values(files ...string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", filepath.Join(chartTestdata, f))
	}
	return args
}

// TestUpgradeEveryOption installs the chart with the values it needs, upgrades
// it with every option on (durable delivery and its migration Job, Redis, the
// admin port, Ingress, NetworkPolicy, ServiceMonitor and PrometheusRule on
// their real CRDs, the Grafana dashboard in another namespace, HPA on CPU and
// memory, PDB as a percentage, node selection and spread), then moves every
// secret to an existing Secret with keys of its own, running helm test after
// each upgrade, and uninstalls.
func TestUpgradeEveryOption(t *testing.T) {
	t.Parallel()
	const ns, release, fullname = "upgrade", "pay", "pay-payments-api"
	restrictedNamespace(t, ns)
	// metrics.grafanaDashboard.namespace in all-features.yaml.
	const dashboards = "monitoring"
	cluster.Namespace(t, dashboards, nil)
	installCRD(t, "monitoring.coreos.com_servicemonitors.yaml")
	installCRD(t, "monitoring.coreos.com_prometheusrules.yaml")
	base := []string{
		"ConfigMap/" + fullname, "Deployment/" + fullname, "HorizontalPodAutoscaler/" + fullname,
		"PodDisruptionBudget/" + fullname, "Secret/" + fullname, "Service/" + fullname, "ServiceAccount/" + fullname,
	}
	every := sorted(append(slices.Clone(base), "ConfigMap/"+fullname+"-dashboard", "Ingress/"+fullname,
		"NetworkPolicy/"+fullname, "PrometheusRule/"+fullname, "ServiceMonitor/"+fullname))

	t.Log("install with the required values")
	helm(t, append([]string{"install", release, chartDir, "--namespace", ns}, values("required.yaml")...)...)
	checkRelease(t, ns, release, base)
	waitHPAAtMinimum(t, ns, fullname, 2)
	waitRolledOut(t, ns, fullname, 2)

	t.Log("upgrade with every option")
	helmMigrating(t, ns, fullname, append([]string{"upgrade", release, chartDir, "--namespace", ns},
		values("required.yaml", "all-features.yaml")...)...)
	checkHookObjectsGone(t, ns, fullname+"-migrate")
	checkRelease(t, ns, release, every)
	waitHPAAtMinimum(t, ns, fullname, 3)
	waitRolledOut(t, ns, fullname, 3)
	helm(t, "test", release, "--namespace", ns)

	t.Log("upgrade with every secret in an existing Secret")
	secret, keys := existingSecret(t)
	createSecret(t, ns, secret, keys...)
	// existingSecret replaces the secrets all-features.yaml gives inline; the
	// chart refuses both for the same variable.
	inline := []string{"clerk.jwtKey", "database.url", "redis.url", "admin.username", "admin.password"}
	args := append([]string{"upgrade", release, chartDir, "--namespace", ns}, values("all-features.yaml", "existing-secret.yaml")...)
	for _, v := range inline {
		args = append(args, "--set", v+"=")
	}
	helmMigrating(t, ns, fullname, args...)
	checkRelease(t, ns, release, slices.DeleteFunc(slices.Clone(every), func(k string) bool { return k == "Secret/"+fullname }))
	waitRolledOut(t, ns, fullname, 3)
	checkSecretRefs(t, ns, fullname, secret)
	helm(t, "test", release, "--namespace", ns)

	helm(t, "uninstall", release, "--namespace", ns, "--wait")
	waitNothingLeft(t, ns, kept{"Secret", secret})
	waitNothingLeft(t, dashboards)
}

// checkRelease checks that the release's manifest holds exactly the objects
// want and that the server accepted each one as it stands.
func checkRelease(t *testing.T, namespace, release string, want []string) {
	t.Helper()
	docs := releaseManifest(t, namespace, release)
	if got := kinds(docs); !slices.Equal(got, want) {
		t.Errorf("release objects:\n got %q\nwant %q", got, want)
	}
	checkAccepted(t, namespace, docs)
}

// sorted returns s sorted.
func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// existingSecret returns the Secret name and keys that existing-secret.yaml names.
func existingSecret(t *testing.T) (string, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartTestdata, "existing-secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ExistingSecret     string            `json:"existingSecret"`
		ExistingSecretKeys map[string]string `json:"existingSecretKeys"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range v.ExistingSecretKeys {
		keys = append(keys, k)
	}
	return v.ExistingSecret, sorted(keys)
}

// checkSecretRefs checks that every secret variable of the Deployment's
// container comes from the Secret named secret.
func checkSecretRefs(t *testing.T, namespace, deployment, secret string) {
	t.Helper()
	d, err := cluster.Client.AppsV1().Deployments(namespace).Get(t.Context(), deployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs := 0
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
				refs++
				if ref.SecretKeyRef.Name != secret {
					t.Errorf("%s comes from Secret %s, want %s", e.Name, ref.SecretKeyRef.Name, secret)
				}
			}
		}
	}
	if refs == 0 {
		t.Errorf("Deployment %s reads no secret variable", deployment)
	}
}
