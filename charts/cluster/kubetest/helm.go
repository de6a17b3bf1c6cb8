package kubetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
)

// Helm runs helm against the cluster as its administrator and returns its
// stdout and stderr. helm's home (cache, configuration, data) is the
// cluster's own, away from the user's repositories, plugins and clusters.
func (c *Cluster) Helm(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, c.helm, args...)
	home := filepath.Join(c.dir, "helm")
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+c.Kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
