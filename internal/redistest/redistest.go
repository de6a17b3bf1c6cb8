// Package redistest runs a throwaway redis-server for tests: one process on a
// free loopback port, without persistence, killed when the test ends. A fault
// test can stop it, freeze it and start it again on the same port, which is
// what a client sees when Redis crashes, hangs or is restarted.
//
// The binary is REDIS_SERVER_BIN when set, else redis-server on PATH. A missing
// binary fails the test with the command that installs it: an integration test
// that silently skips proves nothing.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/logtest"
)

// EnvBinary names the environment variable that points at the redis-server binary.
const EnvBinary = "REDIS_SERVER_BIN"

// InstallCommand installs redis-server on Debian and Ubuntu, as the error of
// a missing binary says.
const InstallCommand = "sudo apt-get install -y redis-server"

// startTimeout bounds how long a start may take on a busy machine; redis-server
// itself is up within milliseconds.
const startTimeout = 20 * time.Second

// Options configures Start.
type Options struct {
	// Password, when set, is required from clients (requirepass).
	Password string
}

// Server is a running redis-server. Its methods fail the test they were given
// on error; they are safe to call from the test's goroutine only.
type Server struct {
	// Addr is its host:port on loopback, the same across restarts.
	Addr string

	tb   testing.TB
	bin  string
	dir  string
	opts Options

	mu   sync.Mutex
	proc *process // nil while stopped
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	out    *logtest.Buffer // its log, for the failure message
}

// Start launches redis-server on a free loopback port, waits until it answers
// and registers its shutdown with tb.Cleanup. It fails tb when the binary is
// missing or does not come up.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin, err := FindBinary(os.Getenv(EnvBinary))
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), opts: opts}
	tb.Cleanup(s.Stop)
	// The free port is found by closing a listener, so another process may
	// take it before redis-server binds it: try a few.
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		s.Addr = addr
		if err = s.launch(); err == nil {
			return s
		}
		if attempt == 3 {
			tb.Fatalf("redistest: %v", err)
		}
	}
}

// URL returns the redis:// URL of the server, with its password if any.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr, Path: "/0"}
	if s.opts.Password != "" {
		u.User = url.UserPassword("", s.opts.Password)
	}
	return u.String()
}

// Stop kills the server (as a crash would) and waits until it has exited.
// Everything it held is lost. It is safe to call when already stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	// An error means it is already gone; the wait below settles it either way.
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Restart starts the server again on the same port, empty, and waits until
// it answers. It stops the running one first, if any.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("redistest: restart: %v", err)
	}
}

// Freeze suspends the server (SIGSTOP): the kernel still accepts connections
// and reads requests, but nothing answers, like a Redis stuck in a long
// command or a saturated host. Thaw resumes it; Stop works either way.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		s.tb.Fatalf("redistest: %v to a stopped server", sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: %v: %v", sig, err)
	}
}

// launch starts redis-server on s.Addr and waits until it answers PING.
func (s *Server) launch() error {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return err
	}
	args := []string{
		"--bind", host, "--port", port,
		// Throwaway: nothing on disk, nothing kept across a restart.
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", "",
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	cmd := exec.Command(s.bin, args...)
	out := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), out: out}
	go func() {
		defer close(p.exited)
		_ = cmd.Wait() // how it ended shows in its log, reported below
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitReady(ctx, s.Addr, p.exited); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("redis-server on %s: %w; its log:\n%s", s.Addr, err, out.String())
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls addr with PING until redis-server answers, it exits or ctx
// ends. An authentication error is an answer too: the server is up.
func waitReady(ctx context.Context, addr string, exited <-chan struct{}) error {
	for {
		err := ping(ctx, addr)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering")
		case <-ctx.Done():
			return fmt.Errorf("never answered: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ping sends one inline PING and reads the first line of the answer.
func ping(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	switch {
	case len(line) > 0 && line[0] == '+', len(line) > 7 && line[:7] == "-NOAUTH":
		return nil
	default:
		return fmt.Errorf("PING answered %q", line)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// FindBinary returns the redis-server to run: fromEnv when it is set, else
// redis-server on PATH. Its error says how to install one.
func FindBinary(fromEnv string) (string, error) {
	name := "redis-server"
	if fromEnv != "" {
		name = fromEnv
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		where := "redis-server is not on PATH"
		if fromEnv != "" {
			where = EnvBinary + "=" + fromEnv + " is not an executable"
		}
		return "", fmt.Errorf("%s; install it with `%s` (macOS: `brew install redis`), or set %s", where, InstallCommand, EnvBinary)
	}
	return bin, nil
}
