package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chartDir is the chart under test.
var chartDir = filepath.Join(repoRoot, "charts", "payments-api")

// helmTimeout bounds one helm command, hooks included; the test binary's own
// deadline is longer.
const helmTimeout = 4 * time.Minute

// runHelm runs helm against the test cluster and returns stdout, stderr and
// the error.
func runHelm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), helmTimeout)
	defer cancel()
	return cluster.Helm(ctx, args...)
}

// helm runs helm and fails the test when it fails or writes anything to
// stderr: the API server's warnings (an unknown field, a deprecated API, a
// pod template that Pod Security would refuse) reach the user there.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr, namespaceWarnings(t, args))
	}
	if strings.TrimSpace(stderr) != "" {
		t.Fatalf("helm %s wrote to stderr:\n%s", strings.Join(args, " "), stderr)
	}
	return stdout
}

// namespaceWarnings returns the Warning events of the namespace named in
// helm's arguments, which say why a hook or a rollout did not finish.
func namespaceWarnings(t *testing.T, args []string) string {
	t.Helper()
	ns, _ := withoutNamespace(args)
	if ns == "" {
		return ""
	}
	events, err := cluster.Client.CoreV1().Events(ns).List(context.Background(), listOptions("", "type=Warning"))
	if err != nil {
		return "\n(events: " + err.Error() + ")"
	}
	var b strings.Builder
	for _, e := range events.Items {
		b.WriteString("\n" + e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name + ": " + e.Reason + ": " + e.Message)
	}
	if b.Len() == 0 {
		return ""
	}
	return "\nWarning events in " + ns + ":" + b.String()
}
