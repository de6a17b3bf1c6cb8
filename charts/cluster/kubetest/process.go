package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// process is one program of the control plane, its output kept in a log file
// in the cluster's directory.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the program has exited
	err     error         // its exit status, set before done is closed
}

// startProcess starts bin with args, its output going to <dir>/<name>.log.
// The environment is the test's, less the variables that name starts with in
// capitals: etcd reads ETCD_* as flags (ETCD_BIN among them).
func startProcess(dir, name, bin string, args []string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	prefix := strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, prefix) })
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// stop asks the program to exit and kills it if it has not within grace.
func (p *process) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the program has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of the program's log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logContains reports whether the program's log contains s.
func (p *process) logContains(s string) bool {
	b, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

// pollInterval is how often a wait checks its condition again.
const pollInterval = 250 * time.Millisecond

// waitFor calls check until it returns nil. It gives up when p exits (the
// error then ends with p's log) or when ctx ends.
func waitFor(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := check(checkCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before %s; its log ends:\n%s", p.name, p.err, what, p.tail(40))
		case <-ctx.Done():
			return fmt.Errorf("%s: no %s before the deadline (last: %v); its log ends:\n%s", p.name, what, err, p.tail(40))
		case <-ticker.C:
		}
	}
}

// errAddrInUse is returned when a program could not bind a port that was free
// a moment before: another process on the machine took it in between.
var errAddrInUse = errors.New("a port was taken before the program bound it")

// startServing starts a program that listens on n loopback ports chosen now,
// and waits until ready says it serves. A port taken by another process in
// the meantime makes it try again with new ports, three times in all.
func startServing(ctx context.Context, dir, name, bin string, n int,
	args func(ports []int) []string, ready func(ctx context.Context, ports []int) error,
) (*process, []int, error) {
	var err error
	for range 3 {
		var ports []int
		if ports, err = freePorts(n); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		var p *process
		if p, err = startProcess(dir, name, bin, args(ports)); err != nil {
			return nil, nil, err
		}
		err = waitFor(ctx, p, "health", func(ctx context.Context) error { return ready(ctx, ports) })
		if err == nil {
			return p, ports, nil
		}
		p.stop(stopGrace)
		if !p.logContains("address already in use") {
			return nil, nil, err
		}
		err = fmt.Errorf("%s: %w: %w", name, errAddrInUse, err)
	}
	return nil, nil, err
}

// freePorts returns n distinct loopback ports that are free now.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		// Held open until all are chosen, so that the n ports differ.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
