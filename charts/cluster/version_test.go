package cluster

import (
	"os"
	"strings"
	"testing"
)

// TestServerVersion checks that the API server reports the Kubernetes version
// pinned in go.mod: a build without the version stamped in reports v0.0.0,
// which the chart's kubeVersion refuses.
func TestServerVersion(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "k8s.io/kubernetes" {
			want = f[1]
		}
	}
	if want == "" {
		t.Fatal("go.mod does not require k8s.io/kubernetes")
	}
	v, err := cluster.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != want {
		t.Errorf("server version %s, want %s", v.GitVersion, want)
	}
}
