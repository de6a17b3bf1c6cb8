// Package cluster installs the payments-api chart with the real helm on a real
// Kubernetes control plane that runs on this machine (package kubetest): the
// API server decides what it accepts, Pod Security admits or refuses the Pods
// the ReplicaSets create, the controller manager and the scheduler do their
// work, and kwok reports Pods running and Jobs completed, since no image runs.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/acme/payments-api/charts/cluster/kubetest"
)

// cluster is the control plane every test of this package shares; each test
// works in namespaces of its own.
var cluster *kubetest.Cluster

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// runTests starts the control plane, runs the tests and stops it, failing the
// run if anything of it is left behind.
func runTests(m *testing.M) int {
	bins, err := kubetest.BinariesFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Generous: the first start on a loaded two-core machine takes a while.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	started := time.Now()
	cluster, err = kubetest.Start(ctx, bins)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("control plane ready in %s\n", time.Since(started).Round(time.Millisecond))

	code := m.Run()
	if code != 0 {
		cluster.WriteLogs(os.Stderr, 60)
	}
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if running := cluster.Running(); len(running) > 0 {
		fmt.Fprintf(os.Stderr, "still running after Stop: %v\n", running)
		code = 1
	}
	if _, err := os.Stat(cluster.Dir()); !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "%s not removed by Stop: %v\n", cluster.Dir(), err)
		code = 1
	}
	return code
}
