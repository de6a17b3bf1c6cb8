package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/acme/payments-api/charts/cluster/kubetest"
)

// databaseURL turns on durable mode, which adds the migration hook Job. No
// PostgreSQL is there: kwok reports the Job's Pod as succeeded.
const databaseURL = "postgres://payments:secret@postgres.db.svc.cluster.local:5432/payments?sslmode=require"

// TestMigrationBeforeRollout installs and upgrades the chart in durable mode and
// checks, from the order of the server's own writes, that the migration hook
// Job was created, its Pod admitted under Pod Security "restricted" and run to
// completion, all before the Deployment was created or changed; and that the
// hook's objects are gone once it succeeded.
func TestMigrationBeforeRollout(t *testing.T) {
	t.Parallel()
	const ns, release, fullname = "migration", "mig", "mig-payments-api"
	restrictedNamespace(t, ns)
	durable := append(values("required.yaml"), "--set", "database.url="+databaseURL)

	t.Log("install")
	helmMigrating(t, ns, fullname, append([]string{"install", release, chartDir, "--namespace", ns}, durable...)...)
	checkHookObjectsGone(t, ns, fullname+"-migrate")
	waitHPAAtMinimum(t, ns, fullname, 2)
	waitRolledOut(t, ns, fullname, 2)

	t.Log("upgrade, with a change that rolls the Pods")
	helmMigrating(t, ns, fullname, append(append([]string{"upgrade", release, chartDir, "--namespace", ns}, durable...),
		"--set", "log.level=debug")...)
	checkHookObjectsGone(t, ns, fullname+"-migrate")
	waitRolledOut(t, ns, fullname, 2)

	helm(t, "uninstall", release, "--namespace", ns, "--wait")
	waitNothingLeft(t, ns)
}

// TestFailedMigrationLeavesPodsAlone upgrades a running release to durable
// mode with a migration that fails (kwok makes a Job's Pod exit 1 in
// kubetest.FailingJobsNamespace): the upgrade fails, the Deployment and its
// Pods stay as they were, the failed Job stays for its log, and the hook
// Secret holding the database URL goes.
func TestFailedMigrationLeavesPodsAlone(t *testing.T) {
	t.Parallel()
	const ns, release, fullname = kubetest.FailingJobsNamespace, "fail", "fail-payments-api"
	restrictedNamespace(t, ns)
	helm(t, append([]string{"install", release, chartDir, "--namespace", ns}, values("required.yaml")...)...)
	waitHPAAtMinimum(t, ns, fullname, 2)
	before := podNames(waitRolledOut(t, ns, fullname, 2))
	deployments := cluster.Client.AppsV1().Deployments(ns)
	d, err := deployments.Get(t.Context(), fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	args := append(append([]string{"upgrade", release, chartDir, "--namespace", ns}, values("required.yaml")...),
		"--set", "database.url="+databaseURL, "--set", "migration.backoffLimit=0", "--set", "log.level=debug")
	_, stderr, err := runHelm(t, args...)
	if err == nil || !strings.Contains(stderr, "pre-upgrade hooks failed") || !strings.Contains(stderr, "BackoffLimitExceeded") {
		t.Fatalf("upgrade with a failing migration: err %v, stderr:\n%s\nwant it failed by the pre-upgrade hook", err, stderr)
	}

	after, err := deployments.Get(t.Context(), fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != d.Generation {
		t.Errorf("Deployment changed (generation %d → %d) although the migration failed", d.Generation, after.Generation)
	}
	if got := podNames(waitRolledOut(t, ns, fullname, 2)); !slices.Equal(got, before) {
		t.Errorf("Pods %v after the failed upgrade, want the same as before: %v", got, before)
	}
	job, err := cluster.Client.BatchV1().Jobs(ns).Get(t.Context(), fullname+"-migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the failed migration Job is not kept for its log: %v", err)
	}
	if !slices.ContainsFunc(job.Status.Conditions, func(c batchv1.JobCondition) bool {
		return c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue
	}) {
		t.Errorf("migration Job conditions %+v, want Failed", job.Status.Conditions)
	}
	if _, err := cluster.Client.CoreV1().Secrets(ns).Get(t.Context(), fullname+"-migrate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("hook Secret %s-migrate after the failed hook: %v", fullname, errFound("it", err))
	}

	// Hooks are not part of a release: the failed Job outlives the uninstall
	// and is deleted by hand, as an operator would once its log is read.
	helm(t, "uninstall", release, "--namespace", ns, "--wait")
	background := metav1.DeletePropagationBackground
	err = cluster.Client.BatchV1().Jobs(ns).Delete(t.Context(), job.Name, metav1.DeleteOptions{PropagationPolicy: &background})
	if err != nil {
		t.Fatalf("the failed migration Job after the uninstall: %v", err)
	}
	waitNothingLeft(t, ns)
}

// podNames returns the Pods' names, sorted.
func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return sorted(names)
}

// helmMigrating runs a helm install or upgrade in durable mode and checks that
// the migration Job ran to completion before the Deployment rolled.
func helmMigrating(t *testing.T, namespace, deployment string, args ...string) {
	t.Helper()
	var generation int64 // before an install, none
	d, err := cluster.Client.AppsV1().Deployments(namespace).Get(t.Context(), deployment, metav1.GetOptions{})
	switch {
	case err == nil:
		generation = d.Generation
	case !apierrors.IsNotFound(err):
		t.Fatal(err)
	}
	r := record(t, namespace)
	defer r.stop()
	helm(t, args...)
	checkMigrationFirst(t, r, deployment+"-migrate", deployment, generation)
}

// Watched resources.
var (
	jobs        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	pods        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// write is one write the server made, as a watch reported it.
type write struct {
	typ watch.EventType
	obj *unstructured.Unstructured
	// rv is the object's resourceVersion. Clients may not compare those in
	// general, but on this cluster each is etcd's revision of the write, one
	// counter for every object: a larger one was written later.
	rv int64
}

func (w write) String() string {
	return fmt.Sprintf("%d %s %s/%s", w.rv, w.typ, w.obj.GetKind(), w.obj.GetName())
}

// recorder keeps the writes to a namespace's Jobs, Pods and Deployments.
type recorder struct {
	namespace string
	stop      func()

	mu     sync.Mutex
	writes []write
	err    error // the first watch error
}

// record starts watching namespace's Jobs, Pods and Deployments from now on.
func record(t *testing.T, namespace string) *recorder {
	t.Helper()
	dyn := dynamicClient(t)
	now, err := dyn.Resource(deployments).Namespace(namespace).List(t.Context(), metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &recorder{namespace: namespace, stop: cancel}
	for _, gvr := range []schema.GroupVersionResource{jobs, pods, deployments} {
		w, err := dyn.Resource(gvr).Namespace(namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: now.GetResourceVersion()})
		if err != nil {
			cancel()
			t.Fatalf("watch %s: %v", gvr.Resource, err)
		}
		go r.keep(w)
	}
	return r
}

// keep records the watch's events until it ends.
func (r *recorder) keep(w watch.Interface) {
	defer w.Stop()
	for ev := range w.ResultChan() {
		r.mu.Lock()
		obj, ok := ev.Object.(*unstructured.Unstructured)
		if ev.Type == watch.Error || !ok {
			r.err = cmpOr(r.err, fmt.Errorf("watch: %v", ev.Object))
		} else if rv, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64); err != nil {
			r.err = cmpOr(r.err, fmt.Errorf("resourceVersion of %s: %w", obj.GetName(), err))
		} else {
			r.writes = append(r.writes, write{typ: ev.Type, obj: obj, rv: rv})
		}
		r.mu.Unlock()
	}
}

// cmpOr returns a unless it is nil, else b.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// snapshot returns the writes recorded so far, oldest first.
func (r *recorder) snapshot() ([]write, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := slices.Clone(r.writes)
	slices.SortStableFunc(ws, func(a, b write) int { return int(a.rv - b.rv) })
	return ws, r.err
}

// migrationSteps are the revisions at which the migration Job and the rollout
// reached each step, as the server wrote them; zero when not (yet) seen.
type migrationSteps struct {
	jobCreated, podAdmitted, podSucceeded, jobComplete, jobDeleted, deploymentRolled int64
}

// checkMigrationFirst waits until the watches have reported the Deployment
// rolled (created, or its spec changed past generation) and the migration
// Job's end, then checks the order: Job created, its Pod admitted, the Pod
// succeeded, the Job complete and removed by its delete policy, then the
// Deployment.
func checkMigrationFirst(t *testing.T, r *recorder, job, deployment string, generation int64) {
	t.Helper()
	var s migrationSteps
	var ws []write
	eventually(t, "migration Job and rollout reported by the watches", func(ctx context.Context) error {
		var err error
		if ws, err = r.snapshot(); err != nil {
			return errStop{err}
		}
		s = steps(ws, job, deployment, generation)
		if s.deploymentRolled == 0 {
			return fmt.Errorf("no rollout reported yet: %+v", s)
		}
		if s.jobDeleted == 0 {
			// Helm has returned: a Job still on the server will not be deleted
			// (nor one created that never was), but a deletion may not have
			// been reported yet.
			_, err := cluster.Client.BatchV1().Jobs(r.namespace).Get(ctx, job, metav1.GetOptions{})
			if apierrors.IsNotFound(err) && s.jobCreated != 0 {
				return fmt.Errorf("the Job's deletion not reported yet: %+v", s)
			}
		}
		return nil
	})
	order := []int64{s.jobCreated, s.podAdmitted, s.podSucceeded, s.jobComplete, s.jobDeleted, s.deploymentRolled}
	if slices.Contains(order, 0) || !slices.IsSorted(order) {
		var b strings.Builder
		for _, w := range ws {
			b.WriteString("\n" + w.String())
		}
		t.Fatalf("want Job created < Pod admitted < Pod succeeded < Job complete < Job deleted < Deployment rolled, got %+v; writes:%s", s, b.String())
	}
}

// steps finds in ws the first write of each step.
func steps(ws []write, job, deployment string, generation int64) migrationSteps {
	var s migrationSteps
	first := func(step *int64, rv int64) {
		if *step == 0 {
			*step = rv
		}
	}
	for _, w := range ws {
		o := w.obj
		switch {
		case o.GetKind() == "Job" && o.GetName() == job:
			switch {
			case w.typ == watch.Added:
				first(&s.jobCreated, w.rv)
			case w.typ == watch.Deleted:
				first(&s.jobDeleted, w.rv)
			case hasCondition(o, "Complete"):
				first(&s.jobComplete, w.rv)
			}
		case o.GetKind() == "Pod" && ownedBy(o, "Job", job):
			phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
			switch {
			case w.typ == watch.Added:
				first(&s.podAdmitted, w.rv)
			case phase == "Succeeded":
				first(&s.podSucceeded, w.rv)
			}
		case o.GetKind() == "Deployment" && o.GetName() == deployment && o.GetGeneration() > generation:
			first(&s.deploymentRolled, w.rv)
		}
	}
	return s
}

// hasCondition reports whether the object's status has condition typ True.
func hasCondition(o *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// ownedBy reports whether o's controller is the kind named name.
func ownedBy(o *unstructured.Unstructured, kind, name string) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.Kind == kind && ref.Name == name {
			return true
		}
	}
	return false
}

// checkHookObjectsGone checks that the migration hook's Job and Secret are
// gone once it succeeded (its delete policy is hook-succeeded): the Secret
// holds the database URL, which no object of the release should keep.
func checkHookObjectsGone(t *testing.T, namespace, name string) {
	t.Helper()
	if _, err := cluster.Client.BatchV1().Jobs(namespace).Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Job %s after the hook succeeded: %v", name, errFound("it", err))
	}
	if _, err := cluster.Client.CoreV1().Secrets(namespace).Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret %s after the hook succeeded: %v", name, errFound("it", err))
	}
}
