package chartstest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// skaffoldConfig is the part of skaffold.yaml that must agree with the chart.
type skaffoldConfig struct {
	APIVersion string `json:"apiVersion"`
	Build      struct {
		Artifacts []struct {
			Image  string `json:"image"`
			Docker struct {
				Dockerfile string            `json:"dockerfile"`
				BuildArgs  map[string]string `json:"buildArgs"`
			} `json:"docker"`
		} `json:"artifacts"`
	} `json:"build"`
	Deploy struct {
		Helm struct {
			Releases []struct {
				Name              string            `json:"name"`
				ChartPath         string            `json:"chartPath"`
				Namespace         string            `json:"namespace"`
				ValuesFiles       []string          `json:"valuesFiles"`
				SetValueTemplates map[string]string `json:"setValueTemplates"`
			} `json:"releases"`
		} `json:"helm"`
	} `json:"deploy"`
	PortForward []struct {
		ResourceType string `json:"resourceType"`
		ResourceName string `json:"resourceName"`
		Namespace    string `json:"namespace"`
		Port         any    `json:"port"`
		LocalPort    int    `json:"localPort"`
	} `json:"portForward"`
	Profiles []struct {
		Name string `json:"name"`
	} `json:"profiles"`
}

// hasValue reports whether the dotted path (with [i] list indexes) exists in values.
func hasValue(values map[string]any, path string) bool {
	var cur any = values
	for _, part := range strings.Split(path, ".") {
		name, _, isList := strings.Cut(part, "[")
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[name]; !ok {
			return false
		}
		if isList {
			if _, ok := cur.([]any); !ok {
				return false
			}
			return true
		}
	}
	return true
}

func TestSkaffold(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, deprecated := range []string{"artifactOverrides", "imageStrategy"} {
		if strings.Contains(string(raw), deprecated) {
			t.Errorf("skaffold.yaml uses the deprecated %s", deprecated)
		}
	}
	var cfg skaffoldConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`^skaffold/v4beta(\d+)$`).FindStringSubmatch(cfg.APIVersion); m == nil || atoi(m[1]) < 11 {
		t.Errorf("apiVersion %s, want skaffold/v4beta11 or newer", cfg.APIVersion)
	}

	if len(cfg.Build.Artifacts) != 1 {
		t.Fatalf("got %d artifacts, want 1", len(cfg.Build.Artifacts))
	}
	art := cfg.Build.Artifacts[0]
	if art.Docker.Dockerfile != "Dockerfile" {
		t.Errorf("dockerfile %q, want Dockerfile", art.Docker.Dockerfile)
	}
	if _, ok := art.Docker.BuildArgs["VERSION"]; !ok {
		t.Error("build passes no VERSION build arg")
	}

	if len(cfg.Deploy.Helm.Releases) != 1 {
		t.Fatalf("got %d releases, want 1", len(cfg.Deploy.Helm.Releases))
	}
	rel := cfg.Deploy.Helm.Releases[0]
	if abs, _ := filepath.Abs(filepath.Join(repoRoot, rel.ChartPath)); abs != mustAbs(t, chartDir) {
		t.Errorf("chartPath %s is not the chart under test", rel.ChartPath)
	}
	// The image the chart runs is the one skaffold builds, through setValueTemplates.
	key := strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(art.Image)
	wantTemplates := map[string]string{
		"image.repository": "{{ .IMAGE_REPO_" + key + " }}",
		"image.tag":        "{{ .IMAGE_TAG_" + key + " }}",
	}
	for k, v := range wantTemplates {
		if strings.ReplaceAll(rel.SetValueTemplates[k], " ", "") != strings.ReplaceAll(v, " ", "") {
			t.Errorf("setValueTemplates[%s] = %q, want %q", k, rel.SetValueTemplates[k], v)
		}
	}
	valuesRaw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(valuesRaw, &values); err != nil {
		t.Fatal(err)
	}
	for k := range rel.SetValueTemplates {
		if !hasValue(values, k) {
			t.Errorf("setValueTemplates sets %s, which is not in the chart's values.yaml", k)
		}
	}

	// Render as skaffold would: its values files, then the templates filled in.
	args := []string{"template", rel.Name, filepath.Join(repoRoot, rel.ChartPath), "--namespace", rel.Namespace, "--kube-version", kubeVersion}
	for _, f := range rel.ValuesFiles {
		args = append(args, "-f", filepath.Join(repoRoot, f))
	}
	filled := map[string]string{
		"image.repository":   art.Image,
		"image.tag":          "0a1b2c3",
		"clerk.issuer":       "https://example.clerk.accounts.dev",
		"stripe.priceIds[0]": "price_dev",
		"nextjs.webhookUrl":  "",
	}
	for k := range rel.SetValueTemplates {
		v, ok := filled[k]
		if !ok {
			t.Fatalf("no test value for setValueTemplates %s", k)
		}
		args = append(args, "--set", k+"="+v)
	}
	out, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %q: %v\n%s", args, err, stderr)
	}
	ms := decodeAll(t, out)
	for _, m := range ms {
		if _, ok := m.Object.(*corev1.Secret); ok {
			t.Error("the dev values render a Secret; the dev secret comes from deploy/.env")
		}
	}
	pod := only[*corev1.Pod](t, ms)
	if want := art.Image + ":0a1b2c3"; pod.Spec.Containers[0].Image != want {
		t.Errorf("image %s, want %s", pod.Spec.Containers[0].Image, want)
	}
	svc := only[*corev1.Service](t, ms)
	if len(cfg.PortForward) != 1 {
		t.Fatalf("got %d port forwards, want 1", len(cfg.PortForward))
	}
	pf := cfg.PortForward[0]
	if !strings.EqualFold(pf.ResourceType, "service") || pf.ResourceName != svc.Name || pf.Namespace != rel.Namespace {
		t.Errorf("port-forward %s/%s in %s, want service/%s in %s", pf.ResourceType, pf.ResourceName, pf.Namespace, svc.Name, rel.Namespace)
	}
	port := -1
	for i, p := range svc.Spec.Ports {
		if p.Name == pf.Port {
			port = i
		}
	}
	if port < 0 || svc.Spec.Ports[port].Name != "http" {
		t.Errorf("port-forward port %v is not the Service's named port http", pf.Port)
	}
	if pf.LocalPort != 8001 {
		t.Errorf("localPort %d, want 8001 (stripe listen --forward-to localhost:8001/stripe/webhook)", pf.LocalPort)
	}
	ing := only[*networkingv1.Ingress](t, ms)
	if p := ing.Spec.Rules[0].HTTP.Paths[0]; p.Path != "/stripe" || p.Backend.Service.Name != svc.Name {
		t.Errorf("dev ingress routes %s to %s, want /stripe to %s", p.Path, p.Backend.Service.Name, svc.Name)
	}

	var profiles []string
	for _, p := range cfg.Profiles {
		profiles = append(profiles, p.Name)
	}
	for _, want := range []string{"kind", "minikube"} {
		if !slices.Contains(profiles, want) {
			t.Errorf("no %s profile (have %q)", want, profiles)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestDeployFiles checks the dev files that skaffold and the README rely on.
func TestDeployFiles(t *testing.T) {
	kindCfg, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "kind-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cluster struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Nodes      []struct {
			Role              string   `json:"role"`
			KubeadmPatches    []string `json:"kubeadmConfigPatches"`
			ExtraPortMappings []struct {
				ContainerPort int    `json:"containerPort"`
				HostPort      int    `json:"hostPort"`
				Protocol      string `json:"protocol"`
			} `json:"extraPortMappings"`
		} `json:"nodes"`
		Name string `json:"name"`
	}
	if err := yaml.UnmarshalStrict(kindCfg, &cluster); err != nil {
		t.Fatalf("kind config: %v", err)
	}
	if cluster.Kind != "Cluster" || cluster.APIVersion != "kind.x-k8s.io/v1alpha4" || len(cluster.Nodes) == 0 {
		t.Fatalf("kind config %+v", cluster)
	}
	mapped := map[int]int{}
	for _, pm := range cluster.Nodes[0].ExtraPortMappings {
		mapped[pm.ContainerPort] = pm.HostPort
	}
	if mapped[80] != 80 || mapped[443] != 443 {
		t.Errorf("kind port mappings %v, want 80→80 and 443→443 for the ingress", mapped)
	}
	if !strings.Contains(strings.Join(cluster.Nodes[0].KubeadmPatches, ""), "ingress-ready=true") {
		t.Error("kind node is not labelled ingress-ready=true")
	}

	example, err := os.ReadFile(filepath.Join(repoRoot, "deploy", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "NEXTJS_WEBHOOK_SECRET", "CLERK_ISSUER", "STRIPE_PRICE_ID"} {
		if !regexp.MustCompile(`(?m)^` + key + `=`).Match(example) {
			t.Errorf("deploy/.env.example has no %s", key)
		}
	}
	script, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "dev-secret.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "values-dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var devValues struct {
		ExistingSecret string `json:"existingSecret"`
	}
	if err := yaml.Unmarshal(dev, &devValues); err != nil {
		t.Fatal(err)
	}
	if devValues.ExistingSecret == "" || !strings.Contains(string(script), "secret="+devValues.ExistingSecret+"\n") {
		t.Errorf("values-dev existingSecret %q is not the Secret deploy/dev-secret.sh creates", devValues.ExistingSecret)
	}
	if !strings.Contains(string(script), "--from-env-file") {
		t.Error("dev-secret.sh does not create the Secret from the env file")
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^/?\.env$`).Match(ignore) {
		t.Error(".gitignore does not ignore .env files: deploy/.env would be committable")
	}
}
