package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/acme/payments-api/charts/cluster/kubetest"
)

// waitTimeout bounds every wait for the cluster to converge: seconds on an
// idle machine, much longer on a loaded two-core one.
const waitTimeout = 3 * time.Minute

// errStop wraps an error that no amount of waiting will cure.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// eventually calls check every 250 ms until it returns nil, and fails the test
// with its last error after waitTimeout or as soon as it returns an errStop.
func eventually(t *testing.T, what string, check func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return
		}
		if stop, ok := errors.AsType[errStop](err); ok {
			t.Fatalf("%s: %v", what, stop.err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s: %v", what, waitTimeout, err)
		case <-ticker.C:
		}
	}
}

// listOptions selects by label and field selector; empty means all.
func listOptions(labels, fields string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: labels, FieldSelector: fields}
}

// restrictedNamespace creates a namespace that enforces the restricted Pod
// Security Standard (and warns and audits against it, so that a Deployment
// whose template would be refused is reported when it is created).
func restrictedNamespace(t *testing.T, name string) {
	t.Helper()
	labels := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		labels["pod-security.kubernetes.io/"+mode] = "restricted"
		labels["pod-security.kubernetes.io/"+mode+"-version"] = "latest"
	}
	cluster.Namespace(t, name, labels)
}

// dynamicClient returns a client for any resource, custom ones included. It
// does not print the server's deprecation warnings: listing every resource
// lists deprecated ones (v1 Endpoints).
func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandler = rest.NoWarnings{}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mapper maps kinds to resources as the server serves them now (after a CRD
// is installed, a new mapper sees it).
func mapper(t *testing.T) meta.RESTMapper {
	t.Helper()
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))
}

// manifestDoc is one document of a release's manifest: its raw YAML, exactly
// as helm sent it, and the object decoded from it.
type manifestDoc struct {
	raw string
	obj *unstructured.Unstructured
}

// releaseManifest returns the documents of the release's manifest (hooks are
// not in it).
func releaseManifest(t *testing.T, namespace, release string) []manifestDoc {
	t.Helper()
	out := helm(t, "get", "manifest", release, "--namespace", namespace)
	var docs []manifestDoc
	for doc := range strings.SplitSeq(out, "\n---\n") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatalf("manifest of %s: %v\n%s", release, err, doc)
		}
		if len(obj.Object) == 0 {
			continue // a comment or an empty document
		}
		docs = append(docs, manifestDoc{raw: doc, obj: obj})
	}
	if len(docs) == 0 {
		t.Fatalf("release %s has an empty manifest", release)
	}
	return docs
}

// kinds returns the documents' kinds, sorted, as "Kind/name".
func kinds(docs []manifestDoc) []string {
	var ks []string
	for _, d := range docs {
		ks = append(ks, d.obj.GetKind()+"/"+d.obj.GetName())
	}
	slices.Sort(ks)
	return ks
}

// checkAccepted checks that the server holds every object of the manifest,
// and that each document, sent again as it stands with strict field
// validation (a server-side apply, dry run), has no field the server does not
// know nor any field twice: helm's own requests are only warned about those,
// and the field is silently dropped.
func checkAccepted(t *testing.T, namespace string, docs []manifestDoc) {
	t.Helper()
	dyn, m := dynamicClient(t), mapper(t)
	force := true
	for _, d := range docs {
		gvk := d.obj.GroupVersionKind()
		mapping, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: the server does not serve it: %v", gvk, d.obj.GetName(), err)
			continue
		}
		ns := cmp.Or(d.obj.GetNamespace(), namespace) // the Grafana dashboard may go elsewhere
		res := resourceClient(dyn, mapping, ns)
		if _, err := res.Get(t.Context(), d.obj.GetName(), metav1.GetOptions{}); err != nil {
			t.Errorf("%s/%s not on the server: %v", gvk.Kind, d.obj.GetName(), err)
			continue
		}
		_, err = res.Patch(t.Context(), d.obj.GetName(), types.ApplyPatchType, []byte(d.raw), metav1.PatchOptions{
			DryRun:          []string{metav1.DryRunAll},
			FieldManager:    "strict-check",
			FieldValidation: "Strict",
			Force:           &force,
		})
		if err != nil {
			t.Errorf("%s/%s refused with strict field validation: %v", gvk.Kind, d.obj.GetName(), err)
		}
	}
}

// resourceClient is the dynamic client for mapping's resource, in namespace
// when it is namespaced.
func resourceClient(dyn dynamic.Interface, mapping *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return dyn.Resource(mapping.Resource).Namespace(namespace)
	}
	return dyn.Resource(mapping.Resource)
}

// waitRolledOut waits until the Deployment runs want ready Pods of its current
// template and no other, and checks those Pods: created by its ReplicaSet,
// admitted, scheduled on the fake node and running there. A ReplicaSet that
// cannot create its Pods (the API server or Pod Security refused them) fails
// the test at once with the server's reason.
func waitRolledOut(t *testing.T, namespace, name string, want int32) []corev1.Pod {
	t.Helper()
	apps := cluster.Client.AppsV1()
	var current *appsv1.ReplicaSet
	eventually(t, fmt.Sprintf("Deployment %s rolled out with %d ready replicas", name, want), func(ctx context.Context) error {
		current = nil
		d, err := apps.Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return errStop{err}
		}
		rss, err := apps.ReplicaSets(namespace).List(ctx, listOptions(selector.String(), ""))
		if err != nil {
			return err
		}
		for _, rs := range rss.Items {
			for _, c := range rs.Status.Conditions {
				if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
					return errStop{fmt.Errorf("ReplicaSet %s cannot create its Pods: %s", rs.Name, c.Message)}
				}
			}
			if rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
				current = &rs
			}
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || d.Spec.Replicas == nil || *d.Spec.Replicas != want ||
			s.Replicas != want || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.AvailableReplicas != want || current == nil {
			return fmt.Errorf("spec.replicas %v, status %+v", d.Spec.Replicas, s)
		}
		return nil
	})

	hash := current.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	pods, err := cluster.Client.CoreV1().Pods(namespace).List(t.Context(),
		listOptions(appsv1.DefaultDeploymentUniqueLabelKey+"="+hash, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := int32(len(pods.Items)); got != want {
		t.Fatalf("Deployment %s: %d Pods of its current ReplicaSet, want %d", name, got, want)
	}
	for _, p := range pods.Items {
		owner := metav1.GetControllerOf(&p)
		if owner == nil || owner.Kind != "ReplicaSet" || owner.Name != current.Name {
			t.Errorf("Pod %s: controller %v, want ReplicaSet %s", p.Name, owner, current.Name)
		}
		if p.Spec.NodeName != kubetest.NodeName || p.Status.Phase != corev1.PodRunning {
			t.Errorf("Pod %s: on node %q in phase %s, want running on %s", p.Name, p.Spec.NodeName, p.Status.Phase, kubetest.NodeName)
		}
	}
	return pods.Items
}

// waitHPAAtMinimum waits until the HorizontalPodAutoscaler has scaled its
// Deployment to minReplicas: without a metrics server it cannot measure
// anything, but it still enforces its lower bound.
func waitHPAAtMinimum(t *testing.T, namespace, name string, minReplicas int32) {
	t.Helper()
	eventually(t, fmt.Sprintf("HPA %s at its minimum of %d", name, minReplicas), func(ctx context.Context) error {
		hpa, err := cluster.Client.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != minReplicas {
			return errStop{fmt.Errorf("spec.minReplicas %v, want %d", hpa.Spec.MinReplicas, minReplicas)}
		}
		if hpa.Status.DesiredReplicas != minReplicas || hpa.Status.CurrentReplicas != minReplicas {
			return fmt.Errorf("status %+v", hpa.Status)
		}
		return nil
	})
}

// negativeControl proves that the namespace enforces the restricted Pod
// Security Standard: the server refuses a Pod without its security settings.
func negativeControl(t *testing.T, namespace string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "not-restricted"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.invalid/app:1",
		}}},
	}
	_, err := cluster.Client.CoreV1().Pods(namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted:latest"`) {
		t.Fatalf("a Pod that is not restricted, created in %s: got %v, want Forbidden by PodSecurity restricted", namespace, err)
	}
}

// createSecret creates an Opaque Secret with a placeholder value for each key.
// No container runs, so the values are never read.
func createSecret(t *testing.T, namespace, name string, keys ...string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{}}
	for _, k := range keys {
		s.StringData[k] = "placeholder-" + k
	}
	if _, err := cluster.Client.CoreV1().Secrets(namespace).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Secret %s: %v", name, err)
	}
}

// kept is an object that may stay in a namespace after an uninstall.
type kept struct{ kind, name string }

// waitNothingLeft waits until the namespace holds nothing but what Kubernetes
// keeps in every namespace, the objects in keep (those the test made itself),
// and Events (the record of what happened, which expire on their own).
func waitNothingLeft(t *testing.T, namespace string, keep ...kept) {
	t.Helper()
	keep = append(keep, kept{"ServiceAccount", "default"}, kept{"ConfigMap", "kube-root-ca.crt"})
	dyn := dynamicClient(t)
	lists, err := cluster.Client.Discovery().ServerPreferredNamespacedResources()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "nothing left in "+namespace, func(ctx context.Context) error {
		var left []string
		for _, list := range lists {
			gv, err := schema.ParseGroupVersion(list.GroupVersion)
			if err != nil {
				return errStop{err}
			}
			for _, r := range list.APIResources {
				if r.Kind == "Event" || !slices.Contains(r.Verbs, "list") {
					continue
				}
				items, err := dyn.Resource(gv.WithResource(r.Name)).Namespace(namespace).List(ctx, metav1.ListOptions{})
				if err != nil {
					return fmt.Errorf("list %s: %w", r.Name, err)
				}
				for _, item := range items.Items {
					if !slices.Contains(keep, kept{r.Kind, item.GetName()}) {
						left = append(left, r.Kind+"/"+item.GetName())
					}
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("left behind: %v", left)
		}
		return nil
	})
}

// installCRD creates the CustomResourceDefinition in file, unless it exists,
// and waits until the server serves its kind.
func installCRD(t *testing.T, file string) {
	t.Helper()
	dir := os.Getenv("PROMETHEUS_OPERATOR_CRDS")
	if dir == "" {
		t.Fatal("PROMETHEUS_OPERATOR_CRDS is not set: `make test-cluster` downloads the pinned prometheus-operator CRDs and sets it")
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &crd.Object); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	crds := dynamicClient(t).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(t.Context(), crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create CRD %s: %v", crd.GetName(), err)
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	eventually(t, "CRD "+crd.GetName()+" served", func(ctx context.Context) error {
		_, err := mapper(t).RESTMapping(schema.GroupKind{Group: group, Kind: kind})
		return err
	})
}

// errFound is the error of a wait for an object to be gone: err when getting
// it failed, else that it still exists.
func errFound(what string, err error) error {
	if err != nil {
		return err
	}
	return errors.New(what + " still exists")
}
