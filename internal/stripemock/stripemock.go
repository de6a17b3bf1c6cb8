// Package stripemock runs the real stripe-mock binary for tests: one process on
// free loopback ports, started on demand, awaited until it answers and killed
// when the test ends. Launch does the same outside a test (the local sandbox),
// with the lifetime and ports left to the caller.
//
// The binary is found through the STRIPE_MOCK_BIN environment variable, or else
// as bin/stripe-mock in the module root (the directory holding go.mod, found by
// walking up from the working directory). A missing binary fails the test with
// a hint to run `make tools`: an integration test that silently skips proves
// nothing.
package stripemock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// EnvBinary names the environment variable that points at the stripe-mock binary.
const EnvBinary = "STRIPE_MOCK_BIN"

// Key is a secret key that stripe-mock accepts. It needs exactly the shape
// sk_test_<one part>: stripe-mock refuses keys with more underscores.
const Key = "sk_test_payments123"

// startTimeout bounds how long a start may take. stripe-mock loads its OpenAPI
// spec first: about a second on an idle two-core machine, but 20 s was seen
// too short with every test package, PostgreSQL and Redis busy at once.
const startTimeout = 60 * time.Second

// Server is a running stripe-mock.
type Server struct {
	// URL is the base URL of its HTTP listener, e.g. http://127.0.0.1:40123.
	URL string
}

// Start launches stripe-mock on free loopback ports, waits until it answers
// and registers its shutdown with tb.Cleanup. It fails tb when the binary is
// missing or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("stripemock: working directory: %v", err)
	}
	bin, err := FindBinary(os.Getenv(EnvBinary), wd)
	if err != nil {
		tb.Fatalf("stripemock: %v", err)
	}
	// Both listeners on port 0 (Launch's default): stripe-mock's HTTPS listener
	// otherwise takes the fixed port 12112, and parallel test binaries would
	// collide on it.
	p, err := Launch(context.Background(), bin, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Stop)
	return &Server{URL: p.URL}
}

// waitReady polls stripe-mock until it answers an authenticated request.
func waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/prices/price_ready", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+Key)
		res, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered: %w", url, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FindBinary returns the stripe-mock binary to run: fromEnv when it is set,
// else bin/stripe-mock in the first directory at or above dir that holds go.mod.
func FindBinary(fromEnv, dir string) (string, error) {
	const hint = "install it with `make tools` (or set " + EnvBinary + ")"
	if fromEnv != "" {
		if err := executable(fromEnv); err != nil {
			return "", fmt.Errorf("%s=%s: %w; %s", EnvBinary, fromEnv, err, hint)
		}
		return fromEnv, nil
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			bin := filepath.Join(d, "bin", "stripe-mock")
			if err := executable(bin); err != nil {
				return "", fmt.Errorf("%s: %w; %s", bin, err, hint)
			}
			return bin, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod at or above %s to find bin/stripe-mock; %s", dir, hint)
		}
		d = parent
	}
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
