package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Service is a process under measurement: the payments-api binary, or this
// program serving the bare handler.
type Service struct {
	addr   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
	// cleanup, when set, runs once the process has stopped (what Setup started).
	cleanup func()
}

// startService starts the binary at path with exactly env through launch, and
// waits until ready answers 200.
func startService(ctx context.Context, launch func(start func() error) error, path string, args []string, env map[string]string, addr, ready string) (*Service, error) {
	cmd := exec.Command(path, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// One access-log line per request is part of the cost measured; where it
	// goes is not (a container runtime reads it in another process).
	cmd.Stdout = nil
	s := &Service{addr: addr, cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &limitedWriter{w: s.stderr, n: 64 << 10}
	if err := launch(cmd.Start); err != nil {
		return nil, err
	}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx, "http://"+addr+ready); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w; its stderr:\n%s", path, err, s.stderr)
	}
	return s, nil
}

func (s *Service) waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			return fmt.Errorf("exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		res, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("not ready within 30 s")
}

// peakRSS is the process's high-water mark of resident memory (VmHWM), in bytes.
func (s *Service) peakRSS() (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// clockTicks is the unit of /proc/stat and /proc/PID/stat times (USER_HZ,
// 100 on every Linux architecture's ABI).
const clockTicks = 100

// ranFor is the process's time on a CPU, summed over its threads, to the
// nanosecond (/proc/PID/task/*/schedstat).
func (s *Service) ranFor() (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var ran time.Duration
	for _, task := range tasks {
		raw, err := os.ReadFile(dir + "/" + task.Name() + "/schedstat")
		if err != nil {
			continue // the thread has ended
		}
		f := strings.Fields(string(raw))
		if len(f) < 1 {
			return 0, fmt.Errorf("%s/%s/schedstat: %q", dir, task.Name(), raw)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		ran += time.Duration(ns)
	}
	return ran, nil
}

// ticks is the process's user and system time in clock ticks, the unit the
// CPUs' times are counted in.
func (s *Service) ticks() (int64, error) { return processTicks(strconv.Itoa(s.cmd.Process.Pid)) }

// processTicks reads a process's user and system time from /proc/PID/stat.
func processTicks(pid string) (int64, error) {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which may hold spaces: state is
	// the first, utime the 12th, stime the 13th.
	_, rest, _ := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %q", pid, raw)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, cmp.Or(err1, err2)
}

// busyTicks is the time the given CPUs spent running any process (user,
// nice and system time in /proc/stat), in clock ticks.
func busyTicks(cpus []int) (int64, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	want := make(map[string]bool, len(cpus))
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	var busy int64
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) < 5 || !want[f[0]] {
			continue
		}
		for _, v := range f[1:4] { // user, nice, system
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			busy += n
		}
	}
	return busy, nil
}

// stop ends the process with SIGTERM, then SIGKILL if it lingers.
func (s *Service) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.cleanup != nil {
		s.cleanup()
	}
}

// freeAddr returns a loopback address with a port free at the time of asking.
func freeAddr() (string, error) {
	ln, err := listen()
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// serveBare is the child process that serves the bare handler: it reads the
// body and answers as the webhook does for an ignored event, and nothing else.
func serveBare(ctx context.Context, addr string) error {
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"received":true,"forwarded":false}`+"\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
