package chartstest

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestBinaryAcceptsChartConfiguration starts the real binary with the
// environment each scenario gives the API container (the ConfigMap and the
// chart's Secret) and waits for it to listen: a value the chart renders in a
// form the binary refuses would make it exit 2 at start in every pod.
// Addresses and hosts become loopback ones, so that nothing leaves the
// machine and no fixed port is taken; every other value is the chart's.
func TestBinaryAcceptsChartConfiguration(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "payments-api")
	build := exec.Command("go", "build", "-o", bin, "./"+mainPkg)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	loopback := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		// Nothing answers on port 1: each client fails fast, and the service
		// must start all the same.
		"CLERK_ISSUER": "http://127.0.0.1:1", "CLERK_JWKS_URL": "http://127.0.0.1:1/jwks",
		"STRIPE_API_URL": "http://127.0.0.1:1", "NEXTJS_WEBHOOK_URL": "http://127.0.0.1:1/hook",
		"DATABASE_URL": "postgres://payments:pw@127.0.0.1:1/payments", "REDIS_URL": "redis://127.0.0.1:1/0",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
		// A real key: the sentinel in the values is not one.
		"CLERK_JWT_KEY": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}
	for _, sc := range scenarios[:2] { // the existing Secret of the third is not rendered
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ms := renderScenario(t, sc)
			d := only[*appsv1.Deployment](t, ms)
			env := map[string]string{}
			for k, v := range named[*corev1.ConfigMap](t, ms, d.Name).Data {
				env[k] = v
			}
			for k, v := range named[*corev1.Secret](t, ms, d.Name).Data {
				env[k] = string(v)
			}
			for k, v := range loopback {
				if _, set := env[k]; set || k == "CLERK_JWT_KEY" {
					env[k] = v
				}
			}
			if _, ok := env["ADMIN_ADDR"]; ok {
				env["ADMIN_ADDR"] = "127.0.0.1:0"
			}
			runUntilListening(t, bin, env)
		})
	}
}

// runUntilListening starts bin with exactly env, waits (up to a minute, for a
// loaded machine) for its "listening" log line, then stops it with SIGTERM
// and waits for it to exit.
func runUntilListening(t *testing.T, bin string, env map[string]string) {
	t.Helper()
	cmd := exec.Command(bin)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan bool, 1)
	go func() {
		found := false
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if line := sc.Text(); !found && (strings.Contains(line, `"msg":"listening"`) || strings.Contains(line, "msg=listening")) {
				found = true
				listening <- true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		if !found {
			listening <- false
		}
	}()
	select {
	case ok := <-listening:
		if !ok {
			err := cmd.Wait()
			t.Fatalf("payments-api exited before listening (%v); the chart's configuration was refused:\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("payments-api did not listen within a minute:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("payments-api did not stop within a minute of SIGTERM")
	}
}
