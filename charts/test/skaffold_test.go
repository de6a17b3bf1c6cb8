package chartstest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
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
		Name    string `json:"name"`
		Patches []struct {
			Op    string `json:"op"`
			Path  string `json:"path"`
			Value any    `json:"value"`
		} `json:"patches"`
	} `json:"profiles"`
}

// loadSkaffold reads skaffold.yaml.
func loadSkaffold(t *testing.T) skaffoldConfig {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg skaffoldConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
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
	cfg := loadSkaffold(t)
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

// TestSkaffoldPostgresProfile checks `skaffold dev -p postgres`: a throwaway
// PostgreSQL released and waited for before the API, whose migration Job and
// pods read DATABASE_URL from the dev Secret, pointing at that database.
func TestSkaffoldPostgresProfile(t *testing.T) {
	cfg := loadSkaffold(t)
	api := cfg.Deploy.Helm.Releases[0]
	var patches []map[string]any
	for _, p := range cfg.Profiles {
		if p.Name != "postgres" {
			continue
		}
		for _, pt := range p.Patches {
			patches = append(patches, map[string]any{"op": pt.Op, "path": pt.Path, "value": pt.Value})
		}
	}
	if len(patches) != 2 {
		t.Fatalf("postgres profile patches = %v, want 2 (the database release first, then the API's values file)", patches)
	}
	db, _ := patches[0]["value"].(map[string]any)
	if patches[0]["op"] != "add" || patches[0]["path"] != "/deploy/helm/releases/0" || db == nil {
		t.Fatalf("first patch %v does not insert a release before the API's", patches[0])
	}
	if db["chartPath"] != "deploy/postgres-dev" || db["wait"] != true || db["namespace"] != api.Namespace {
		t.Errorf("database release %v: want chartPath deploy/postgres-dev, wait true, namespace %s", db, api.Namespace)
	}
	valuesFile, _ := patches[1]["value"].(string)
	if patches[1]["op"] != "add" || patches[1]["path"] != "/deploy/helm/releases/1/valuesFiles/-" {
		t.Errorf("second patch %v does not add a values file to the API release (index 1 once the database goes first)", patches[1])
	}

	// The database: pinned, restricted, and where DATABASE_URL points.
	out, stderr, err := runHelm(t, "template", db["name"].(string), filepath.Join(repoRoot, "deploy", "postgres-dev"), "--namespace", api.Namespace, "--kube-version", kubeVersion)
	if err != nil {
		t.Fatalf("helm template postgres-dev: %v\n%s", err, stderr)
	}
	dbObjects := decodeAll(t, out)
	dbPod := only[*appsv1.Deployment](t, dbObjects).Spec.Template
	image := dbPod.Spec.Containers[0].Image
	if tag := image[strings.LastIndex(image, ":")+1:]; strings.Contains(tag, "/") || tag == "latest" || !regexp.MustCompile(`^[0-9]+\.[0-9]+`).MatchString(tag) {
		t.Errorf("PostgreSQL image %s is not pinned to a version tag", image)
	}
	if v := restrictedViolations(t, &dbPod.ObjectMeta, &dbPod.Spec); v != "" {
		t.Errorf("the dev PostgreSQL violates restricted: %s", v)
	}
	dbSvc := only[*corev1.Service](t, dbObjects)
	example, err := os.ReadFile(filepath.Join(repoRoot, "deploy", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DATABASE_URL=(.+)$`).FindSubmatch(example)
	if m == nil {
		t.Fatal("deploy/.env.example has no DATABASE_URL for the postgres profile")
	}
	u, err := url.Parse(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	wantHost := fmt.Sprintf("%s.%s.svc.cluster.local:%d", dbSvc.Name, api.Namespace, dbSvc.Spec.Ports[0].Port)
	var dbName string
	for _, e := range dbPod.Spec.Containers[0].Env {
		if e.Name == "POSTGRES_DB" {
			dbName = e.Value
		}
	}
	if u.Host != wantHost || u.Path != "/"+dbName || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Errorf("DATABASE_URL in .env.example is %s, want postgres://…@%s/%s", m[1], wantHost, dbName)
	}
	script, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "dev-secret.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`keys='[^']*\bDATABASE_URL\b`).Match(script) {
		t.Error("dev-secret.sh does not copy DATABASE_URL into the dev Secret")
	}

	// The API with the profile's values: durable, its DATABASE_URL from the dev Secret.
	args := []string{"template", api.Name, filepath.Join(repoRoot, api.ChartPath), "--namespace", api.Namespace, "--kube-version", kubeVersion}
	for _, f := range append(slices.Clone(api.ValuesFiles), valuesFile) {
		args = append(args, "-f", filepath.Join(repoRoot, f))
	}
	args = append(args, "--set", "clerk.issuer=https://example.clerk.accounts.dev,stripe.priceIds[0]=price_dev")
	out, stderr, err = runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %q: %v\n%s", args, err, stderr)
	}
	ms := decodeAll(t, out)
	job := only[*batchv1.Job](t, ms)
	ref := job.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef
	env, _ := containerEnv(t, ms)
	var devValues struct {
		ExistingSecret string `json:"existingSecret"`
	}
	dev, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "values-dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(dev, &devValues); err != nil {
		t.Fatal(err)
	}
	want := devValues.ExistingSecret + "/DATABASE_URL"
	if ref.Name+"/"+ref.Key != want || env["DATABASE_URL"] != "secret:"+want {
		t.Errorf("migration reads %s/%s, pods %s; want both from %s", ref.Name, ref.Key, env["DATABASE_URL"], want)
	}
}
