package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/fakeclerk"
)

// buildBinary builds payments-api the way the Dockerfile does (static,
// -trimpath, stripped, version stamped) so that these tests run what ships.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "payments-api")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v9.9.9-test", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestBinary runs the built binary as a process: configuration errors, version,
// serving, the healthcheck command against the live server, and a real SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)

	t.Run("version needs no configuration", func(t *testing.T) {
		cmd := exec.Command(bin, "version")
		cmd.Env = []string{}
		out, err := cmd.Output()
		if err != nil || string(out) != "v9.9.9-test\n" {
			t.Fatalf("version = %q, %v", out, err)
		}
	})

	t.Run("invalid configuration exits 2", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = []string{"STRIPE_SECRET_KEY=pk_test_Sekr1t", "CLERK_ISSUER=http://clerk.example.com", "LISTEN_ADDR=127.0.0.1:0"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if code := exitCode(err); code != 2 {
			t.Fatalf("exit code = %d, want 2", code)
		}
		want := []string{"CLERK_ISSUER: must use https", "STRIPE_SECRET_KEY: is a publishable pk_ key", "STRIPE_WEBHOOK_SECRET: is required", "STRIPE_PRICE_IDS: is required", "NEXTJS_WEBHOOK_SECRET: is required"}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != len(want) {
			t.Errorf("stderr has %d lines, want %d:\n%s", len(lines), len(want), stderr.String())
		}
		for _, w := range want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
			}
		}
		if strings.Contains(stderr.String(), "Sekr1t") {
			t.Errorf("stderr echoes the key:\n%s", stderr.String())
		}
	})

	t.Run("serves and stops on SIGTERM", func(t *testing.T) {
		clerk, err := fakeclerk.New("https://clerk.example.com")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Env = []string{
			"LISTEN_ADDR=127.0.0.1:0",
			"METRICS_ADDR=127.0.0.1:0",
			"CLERK_ISSUER=https://clerk.example.com",
			"CLERK_JWT_KEY=" + clerk.PublicKeyPEM(), // networkless: ready at once
			"STRIPE_SECRET_KEY=sk_test_abc",
			"STRIPE_WEBHOOK_SECRET=whsec_abc",
			"STRIPE_PRICE_IDS=price_a",
			"NEXTJS_WEBHOOK_SECRET=" + testNextSecret,
			"SHUTDOWN_DELAY=200ms",
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })

		lines := make(chan map[string]any, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					m = map[string]any{"msg": "NOT JSON: " + sc.Text()}
				}
				lines <- m
			}
		}()
		waitFor := func(msg string) map[string]any {
			t.Helper()
			timeout := time.After(20 * time.Second)
			for {
				select {
				case m, ok := <-lines:
					if !ok {
						t.Fatalf("output ended before %q", msg)
					}
					if strings.HasPrefix(m["msg"].(string), "NOT JSON") {
						t.Errorf("log line: %s", m["msg"])
					}
					if m["msg"] == msg {
						return m
					}
				case <-timeout:
					t.Fatalf("no %q log line", msg)
				}
			}
		}
		addr := waitFor("listening")["addr"].(string)

		hc := exec.Command(bin, "healthcheck", "http://"+addr+"/readyz")
		if out, err := hc.CombinedOutput(); err != nil {
			t.Fatalf("healthcheck against the live server: %v %s", err, out)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitFor("draining")
		waitFor("stopped")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit after SIGTERM: %v, want 0", err)
		}

		hc = exec.Command(bin, "healthcheck", "http://"+addr+"/readyz")
		if code := exitCode(hc.Run()); code != 1 {
			t.Errorf("healthcheck after stop: exit %d, want 1", code)
		}
	})
}
