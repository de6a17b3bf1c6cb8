// Package scripts_test tests the repository's shell scripts.
package scripts_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runSetup runs scripts/setup with PATH and PG_ROOT alone in its environment,
// never as root: as root it would install with apt-get, which no test may do.
func runSetup(t *testing.T, path, pgRoot string) (stdout, stderr string, err error) {
	t.Helper()
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		t.Skip("not Debian: setup prints a generic message here")
	}
	script, err := os.Open("setup")
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skipf("running as root without setpriv, so the script cannot be run as another user: %v", err)
		}
		cmd = exec.Command(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/bin/bash", "-s")
	} else {
		cmd = exec.Command("/bin/bash", "-s")
	}
	cmd.Stdin = script // read from stdin, so that the user nobody needs no access to the work tree
	cmd.Env = []string{"PATH=" + path, "PG_ROOT=" + pgRoot}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// worldDir is a temporary directory that the user nobody can read and search,
// holding an executable (an empty file is enough for command -v) for each of
// names, in subdirectories when a name has a slash.
func worldDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSetupStopsWithTheCommand makes tools look missing, by narrowing PATH and
// pointing PG_ROOT at an empty directory, and expects setup to stop at once
// (exit 1) with the exact apt-get command for what is missing.
func TestSetupStopsWithTheCommand(t *testing.T) {
	tests := []struct {
		name     string
		onPath   []string
		inPGRoot []string
		wantSudo string
	}{
		{
			name:     "nothing installed",
			wantSudo: "sudo apt-get update && sudo apt-get install -y chromium postgresql redis-server curl",
		},
		{
			name:     "only the browser missing",
			onPath:   []string{"redis-server", "curl"},
			inPGRoot: []string{"15/bin/initdb", "15/bin/pg_ctl", "15/bin/postgres"},
			wantSudo: "sudo apt-get update && sudo apt-get install -y chromium",
		},
		{
			name:     "PostgreSQL without pg_ctl, Redis missing",
			onPath:   []string{"chromium", "curl"},
			inPGRoot: []string{"15/bin/initdb", "15/bin/postgres"},
			wantSudo: "sudo apt-get update && sudo apt-get install -y postgresql redis-server",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runSetup(t, worldDir(t, tt.onPath...), worldDir(t, tt.inPGRoot...))
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("setup = %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			lines := strings.Split(stderr, "\n")
			found := false
			for _, l := range lines {
				found = found || strings.TrimSpace(l) == tt.wantSudo
			}
			if !found {
				t.Errorf("stderr has no line %q:\n%s", tt.wantSudo, stderr)
			}
			if strings.Contains(stdout, "installing") {
				t.Errorf("setup tried to install as a user:\n%s", stdout)
			}
		})
	}
}

// TestSetupFindsInstalledTools: with everything present (PostgreSQL only in
// its Debian directory, not on PATH) setup says so and exits 0.
func TestSetupFindsInstalledTools(t *testing.T) {
	pgRoot := worldDir(t, "13/bin/initdb", "13/bin/pg_ctl", "13/bin/postgres", "15/bin/initdb", "15/bin/pg_ctl", "15/bin/postgres")
	stdout, stderr, err := runSetup(t, worldDir(t, "chromium", "redis-server", "curl"), pgRoot)
	if err != nil {
		t.Fatalf("setup = %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if want := "PostgreSQL (" + filepath.Join(pgRoot, "15/bin") + ")"; !strings.Contains(stdout, want) {
		t.Errorf("stdout = %q, want it to name the newest version's directory %s", stdout, want)
	}
}
