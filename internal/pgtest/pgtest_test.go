package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Run(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, url, table string) int {
	t.Helper()
	var n int
	if err := connect(t, url).QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

// TestClusterFaults stops, kills and restarts a cluster of the test's own: the
// port stays, committed rows survive a SIGKILL, and a client sees the outage.
func TestClusterFaults(t *testing.T) {
	t.Parallel()
	c := Start(t)
	url := c.URL("postgres")
	conn := connect(t, url)
	mustExec(t, conn, "CREATE TABLE events (id int PRIMARY KEY)")
	mustExec(t, conn, "INSERT INTO events VALUES (1)")

	c.Kill(t)
	if err := conn.Ping(context.Background()); err == nil {
		t.Fatal("ping after Kill succeeded; want an error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connect while killed succeeded; want an error")
	}

	c.Restart(t)
	if got := c.URL("postgres"); got != url {
		t.Errorf("URL after restart = %s, want %s", got, url)
	}
	if got, want := count(t, url, "events"), 1; got != want {
		t.Fatalf("rows after crash recovery = %d, want %d", got, want)
	}
	mustExec(t, connect(t, url), "INSERT INTO events VALUES (2)")

	c.Stop(t)
	c.Restart(t)
	if got, want := count(t, url, "events"), 2; got != want {
		t.Fatalf("rows after stop and restart = %d, want %d", got, want)
	}
}

// TestClusterRemovedAfterTest checks the clean-up: the data directory is gone
// and the port refuses connections once the test that started it ended.
func TestClusterRemovedAfterTest(t *testing.T) {
	t.Parallel()
	var c *Cluster
	t.Run("inner", func(t *testing.T) { c = Start(t) })
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s after the test: %v, want it removed", c.dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		t.Error("the server still accepts connections after the test")
	}
}

// TestLaunch starts a cluster without a test's clean-up, as a benchmark
// program does, and Close removes it.
func TestLaunch(t *testing.T) {
	t.Parallel()
	c, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, connect(t, c.URL("postgres")), "SELECT 1")
	c.Close()
	for _, dir := range []string{c.dir, c.initdbDir} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("directory %s after Close: %v, want it removed", dir, err)
		}
	}
}

// TestDatabaseAndTemplate gives two tests' databases from one template: each
// starts as the template left it, and what one writes the other never sees.
func TestDatabaseAndTemplate(t *testing.T) {
	t.Parallel()
	setups := 0
	tpl := NewTemplate("pgtest_self", func(ctx context.Context, url string) error {
		setups++
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
		return err
	})
	a, b := tpl.Database(t), tpl.Database(t)
	if a == b {
		t.Fatalf("two databases share the URL %s", a)
	}
	mustExec(t, connect(t, a), "INSERT INTO items VALUES (2)")
	if got, want := count(t, a, "items"), 2; got != want {
		t.Errorf("rows in a = %d, want %d", got, want)
	}
	if got, want := count(t, b, "items"), 1; got != want {
		t.Errorf("rows in b = %d, want %d (the template's)", got, want)
	}
	if setups != 1 {
		t.Errorf("setup ran %d times, want 1", setups)
	}

	empty := Database(t)
	var tables int
	if err := connect(t, empty).QueryRow(context.Background(),
		"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("a fresh database has %d tables, want 0", tables)
	}
}

// TestTemplateLeftOpen refuses a template whose setup keeps a session open.
func TestTemplateLeftOpen(t *testing.T) {
	t.Parallel()
	var leaked *pgx.Conn
	tpl := NewTemplate("pgtest_leaky", func(ctx context.Context, url string) error {
		var err error
		leaked, err = pgx.Connect(ctx, url)
		return err
	})
	c := sharedCluster(t)
	tpl.once.Do(func() { tpl.err = tpl.build(c) })
	leaked.Close(context.Background())
	if tpl.err == nil || !strings.Contains(tpl.err.Error(), "left connections open") {
		t.Fatalf("build = %v, want a left-open error", tpl.err)
	}
}

// TestMissingBinaries names the install command instead of skipping.
func TestMissingBinaries(t *testing.T) {
	notFound := func(string) (string, error) { return "", errors.New("not found") }
	_, err := binDir(filepath.Join(t.TempDir(), "*", "bin"), notFound)
	if err == nil || !strings.Contains(err.Error(), InstallCommand) {
		t.Fatalf("binDir = %v, want an error naming %q", err, InstallCommand)
	}

	// initdb alone (a client-only install) is not enough either.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = binDir(filepath.Join(t.TempDir(), "*", "bin"), func(string) (string, error) { return filepath.Join(dir, "initdb"), nil })
	if err == nil || !strings.Contains(err.Error(), InstallCommand) {
		t.Fatalf("binDir with initdb only = %v, want an error naming %q", err, InstallCommand)
	}

	got, err := binDir(debianBinDirs, notFound)
	if err != nil || !strings.HasPrefix(got, "/usr/lib/postgresql/") {
		t.Fatalf("binDir on this machine = %q, %v; want a Debian directory", got, err)
	}
}
