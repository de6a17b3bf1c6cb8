// Package pgtest runs throwaway PostgreSQL servers for tests, built from the
// Debian server binaries (initdb, postgres): no Docker, no shared server, and
// nothing left behind.
//
// Two uses:
//   - Database and Template.Database give each test a fresh database on a cluster
//     shared by the test binary (started on first use, stopped by Run, which the
//     package's TestMain calls). A Template is set up once (e.g. migrated) and
//     copied per test, which takes milliseconds.
//   - Start gives a test a cluster of its own, which it may stop, kill and
//     restart on the same port: the database faults a service must survive.
//
// Servers listen on a free loopback port, keep their data in a temporary
// directory, and run with fsync off: a killed server loses nothing committed (the
// operating system still has it), only a machine crash would. As root, they run
// as the postgres user, since PostgreSQL refuses to run as root. A missing binary
// fails the test with the command that installs it; it never skips.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallCommand installs the PostgreSQL server binaries on Debian and Ubuntu,
// as the error of a missing binary says.
const InstallCommand = "sudo apt-get install -y postgresql"

// startTimeout bounds how long a server may take to accept connections, on a
// loaded machine (crash recovery included).
const startTimeout = 60 * time.Second

// settings are the server's command-line settings. fsync and full-page writes
// off make tests fast and lose nothing when only the server dies; synchronous
// commit stays on, so a commit that returned has reached the operating system
// and survives a SIGKILL (what the fault tests rely on).
var settings = []string{
	"listen_addresses=127.0.0.1",
	"unix_socket_directories=",
	"fsync=off",
	"full_page_writes=off",
	"max_connections=300",
	"shared_buffers=32MB",
	"log_min_messages=warning",
	"log_min_error_statement=panic",
}

// Cluster is one PostgreSQL server: a data directory and a loopback port.
type Cluster struct {
	// Port is the TCP port, kept across restarts.
	Port int

	bin  string // directory of initdb and postgres
	dir  string // temporary directory; the data directory is dir/data
	cred *syscall.Credential
	// initdbDir is the initdb output a launched cluster was copied from, its
	// own to remove.
	initdbDir string

	mu   sync.Mutex
	proc *server // nil while stopped
}

// server is one run of the postmaster.
type server struct {
	cmd    *exec.Cmd
	log    *tailBuffer
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

// Start starts a cluster of t's own. It is stopped and its data removed when t
// ends, whether the test passed or not.
func Start(t testing.TB) *Cluster {
	t.Helper()
	requireRun(t)
	c, err := newCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.destroy)
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Launch starts a cluster outside a test, for a program that measures with a
// real database (make bench-load). Close stops it and removes its data and
// what Launch set up; Run does that for tests.
func Launch() (*Cluster, error) {
	p, err := makePristine() // its own: nothing shared outlives it
	if err != nil {
		return nil, err
	}
	c, err := clusterFrom(p)
	if err != nil {
		os.RemoveAll(p.dir)
		return nil, err
	}
	c.initdbDir = p.dir
	if err := c.start(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close stops a cluster from Launch at once and removes its data.
func (c *Cluster) Close() {
	c.destroy()
	os.RemoveAll(c.initdbDir)
}

// URL returns the URL of database db, as the superuser postgres (no password:
// the server trusts loopback connections).
func (c *Cluster) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down as an administrator would (fast shutdown:
// sessions are ended, work is checkpointed) and waits until it has exited.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// Kill ends the server as a crash would: the postmaster gets SIGKILL, its
// backends exit as they notice, and the next Restart runs crash recovery.
func (c *Cluster) Kill(t testing.TB) {
	t.Helper()
	if err := c.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Restart starts a stopped or killed server again, on the same port and data.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
}

// CreateDatabase creates database name, copied from template when it is not
// empty, and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// DropDatabase drops database name, ending its sessions first.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: dropping database %s: %w", name, err)
	}
	return nil
}

// newCluster makes a data directory (a copy of the process's pristine one) and
// picks a port; the server is not started.
func newCluster() (*Cluster, error) {
	p, err := pristineDir()
	if err != nil {
		return nil, err
	}
	return clusterFrom(p)
}

// clusterFrom makes a data directory, a copy of p's, and picks a port.
func clusterFrom(p pristine) (*Cluster, error) {
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{bin: p.bin, dir: dir, cred: cred}
	if err := c.chown(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// cp -a keeps the owner and the 0700 mode PostgreSQL insists on.
	if out, err := exec.Command("cp", "-a", p.data, c.dataDir()).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: copying the initial data directory: %v: %s", err, out)
	}
	if c.Port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// start runs the postmaster and waits until it accepts connections. A server
// just killed may still have backends attached to its shared memory for a
// moment; PostgreSQL then refuses to start, and start tries again.
func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("pgtest: the server is already running")
	}
	deadline := time.Now().Add(startTimeout)
	for {
		s, err := c.launch()
		if err != nil {
			return err
		}
		err = c.waitReady(s, deadline)
		if err == nil {
			c.proc = s
			return nil
		}
		stopServer(s, syscall.SIGKILL)
		if !bytes.Contains(s.log.Bytes(), []byte("is still in use")) || time.Now().After(deadline) {
			return fmt.Errorf("pgtest: %w\nserver log:\n%s", err, s.log.Bytes())
		}
		time.Sleep(100 * time.Millisecond) // the old backends are exiting; nothing to wait on
	}
}

func (c *Cluster) launch() (*server, error) {
	args := []string{"-D", c.dataDir(), "-p", strconv.Itoa(c.Port)}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.SysProcAttr = procAttr(c.cred)
	cmd.Dir = c.dir
	s := &server{cmd: cmd, log: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

func (c *Cluster) waitReady(s *server, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres")+"&connect_timeout=5")
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited before accepting connections: %v", s.err)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %v: %w", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signal sends sig to the running server and waits until it has exited.
func (c *Cluster) signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return errors.New("pgtest: the server is not running")
	}
	s := c.proc
	c.proc = nil
	if !stopServer(s, sig) {
		return fmt.Errorf("pgtest: postgres did not exit after %v\nserver log:\n%s", sig, s.log.Bytes())
	}
	return nil
}

// stopServer signals s and waits for it to exit, escalating to SIGKILL when it
// takes more than 30 s. It reports whether it exited in time for sig.
func stopServer(s *server, sig syscall.Signal) bool {
	_ = s.cmd.Process.Signal(sig) // an error means it has exited already
	select {
	case <-s.exited:
		return true
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return false
	}
}

// destroy stops the server at once, if it runs, and removes the data.
func (c *Cluster) destroy() {
	c.mu.Lock()
	s := c.proc
	c.proc = nil
	c.mu.Unlock()
	if s != nil {
		// Immediate shutdown: the data is thrown away, nothing to checkpoint.
		stopServer(s, syscall.SIGQUIT)
	}
	os.RemoveAll(c.dir)
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; start then reports the server's error.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// credential returns the postgres user's ids when running as root (initdb and
// postgres refuse root), nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the postgres user, which the Debian package creates (%s): %w", InstallCommand, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// debianBinDirs is where Debian's packages put each major version's binaries.
const debianBinDirs = "/usr/lib/postgresql/*/bin"

// binDir finds the directory holding initdb and postgres: the newest of
// binGlob's matches, else wherever lookPath finds them.
func binDir(binGlob string, lookPath func(string) (string, error)) (string, error) {
	dirs, _ := filepath.Glob(binGlob)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	initdb, err := lookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("pgtest: PostgreSQL's initdb and postgres were not found in %s or on PATH; install them with: %s", binGlob, InstallCommand)
	}
	d := filepath.Dir(initdb)
	if !isExecutable(filepath.Join(d, "postgres")) {
		return "", fmt.Errorf("pgtest: %s has initdb but no postgres; install the server with: %s", d, InstallCommand)
	}
	return d, nil
}

// version reads the major version out of /usr/lib/postgresql/<version>/bin.
func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// pristine is a data directory made by initdb once per test binary; clusters
// start from copies of it, which is much faster than initdb each time.
type pristine struct {
	bin, dir, data string
}

var (
	pristineOnce sync.Once
	pristineVal  pristine
	pristineErr  error
)

func pristineDir() (pristine, error) {
	pristineOnce.Do(func() { pristineVal, pristineErr = makePristine() })
	return pristineVal, pristineErr
}

func makePristine() (pristine, error) {
	bin, err := binDir(debianBinDirs, exec.LookPath)
	if err != nil {
		return pristine{}, err
	}
	cred, err := credential()
	if err != nil {
		return pristine{}, err
	}
	dir, err := os.MkdirTemp("", "pgtest-initdb-")
	if err != nil {
		return pristine{}, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return pristine{}, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "--no-sync", "--auth=trust",
		"--username=postgres", "--encoding=UTF8", "--locale=C")
	cmd.SysProcAttr = procAttr(cred)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return pristine{}, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	return pristine{bin: bin, dir: dir, data: data}, nil
}

// removePristine deletes the pristine data directory, if one was made.
func removePristine() {
	if pristineVal.dir != "" {
		os.RemoveAll(pristineVal.dir)
	}
}

// tailBuffer keeps the last max bytes written to it: a server's log, for the
// error message when it fails.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.b...)
}
