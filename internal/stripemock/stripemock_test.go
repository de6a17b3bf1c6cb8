package stripemock

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartAnswersAndStops(t *testing.T) {
	var url string
	t.Run("running", func(t *testing.T) {
		srv := Start(t)
		url = srv.URL
		if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
			t.Fatalf("URL = %q, want a loopback http URL", srv.URL)
		}
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/prices/price_abc", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+Key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got, want := res.StatusCode, http.StatusOK; got != want {
			t.Fatalf("GET price status = %d, want %d", got, want)
		}
	})
	// The subtest's cleanup killed the process: its port no longer answers.
	if _, err := http.Get(url + "/v1/prices/price_abc"); err == nil {
		t.Fatalf("stripe-mock at %s still answers after cleanup", url)
	}
}

func TestFindBinary(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "internal", "pkg")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}

	// No binary yet: the error must tell the developer what to do.
	if _, err := FindBinary("", deep); err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("FindBinary without binary: err = %v, want one mentioning make tools", err)
	}

	bin := filepath.Join(root, "bin", "stripe-mock")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FindBinary("", deep); err == nil {
		t.Fatal("FindBinary accepted a binary that is not executable")
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := FindBinary("", deep)
	if err != nil {
		t.Fatal(err)
	}
	if got != bin {
		t.Fatalf("FindBinary = %q, want %q", got, bin)
	}

	// The environment wins over the module's bin/.
	other := filepath.Join(t.TempDir(), "mock")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := FindBinary(other, deep); err != nil || got != other {
		t.Fatalf("FindBinary(env) = %q, %v, want %q", got, err, other)
	}
	if _, err := FindBinary(filepath.Join(root, "missing"), deep); err == nil || !strings.Contains(err.Error(), EnvBinary) {
		t.Fatalf("FindBinary(missing env) err = %v, want one naming %s", err, EnvBinary)
	}

	// Outside any module there is nothing to find.
	if _, err := FindBinary("", t.TempDir()); err == nil {
		t.Fatal("FindBinary outside a module found something")
	}
}
