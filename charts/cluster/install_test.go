package cluster

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReadmeInstall follows the README's production install, word for word,
// into a namespace that enforces Pod Security "restricted": the Secret made
// out of band, helm install, helm test, then helm uninstall.
func TestReadmeInstall(t *testing.T) {
	t.Parallel()
	r := parseReadmeInstall(t)
	ns := r.namespace
	restrictedNamespace(t, ns)
	negativeControl(t, ns)
	createSecret(t, ns, r.secretName, r.secretKeys...)

	args := append([]string{"install", r.release, filepath.Join(repoRoot, r.chart), "--namespace", ns}, r.installArgs...)
	helm(t, args...)

	docs := releaseManifest(t, ns, r.release)
	want := []string{
		"ConfigMap/payments-api", "Deployment/payments-api", "HorizontalPodAutoscaler/payments-api",
		"Ingress/payments-api", "PodDisruptionBudget/payments-api", "Service/payments-api",
		"ServiceAccount/payments-api",
	}
	if got := kinds(docs); !slices.Equal(got, want) {
		t.Errorf("release objects:\n got %q\nwant %q", got, want)
	}
	checkAccepted(t, ns, docs)

	// The Deployment has no replicas of its own: the HPA scales it from the
	// default of one to its minimum.
	waitHPAAtMinimum(t, ns, "payments-api", 2)
	waitRolledOut(t, ns, "payments-api", 2)

	helm(t, "test", r.testRelease, "--namespace", ns)
	// Its hook-delete-policy removes the test Pod once it succeeded.
	eventually(t, "helm test Pod deleted", func(ctx context.Context) error {
		_, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "payments-api-test", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errFound("Pod payments-api-test", err)
	})

	helm(t, "uninstall", r.release, "--namespace", ns, "--wait")
	waitNothingLeft(t, ns, kept{"Secret", r.secretName})
}
