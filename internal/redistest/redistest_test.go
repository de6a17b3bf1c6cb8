package redistest

import (
	"bufio"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// send writes inline commands on one connection and returns the first line of
// each answer. A server that does not answer within wait is an error.
func send(t *testing.T, addr string, wait time.Duration, cmds ...string) ([]string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var answers []string
	for _, cmd := range cmds {
		if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
			return answers, err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return answers, err
		}
		answers = append(answers, strings.TrimRight(line, "\r\n"))
	}
	return answers, nil
}

func mustSend(t *testing.T, addr string, cmds ...string) []string {
	t.Helper()
	got, err := send(t, addr, 10*time.Second, cmds...)
	if err != nil {
		t.Fatalf("%v to %s: %v", cmds, addr, err)
	}
	return got
}

func TestStartStopRestart(t *testing.T) {
	var addr string
	t.Run("running", func(t *testing.T) {
		s := Start(t, Options{})
		addr = s.Addr
		if host, _, err := net.SplitHostPort(s.Addr); err != nil || host != "127.0.0.1" {
			t.Fatalf("Addr = %q, want a loopback host:port", s.Addr)
		}
		if got, want := mustSend(t, s.Addr, "SET k v", "GET k"), []string{"+OK", "$1"}; !slices.Equal(got, want) {
			t.Fatalf("SET then GET = %q, want %q", got, want)
		}

		s.Stop()
		if _, err := send(t, s.Addr, 10*time.Second, "PING"); err == nil {
			t.Fatal("PING answered after Stop")
		}
		s.Stop() // a second stop is harmless

		s.Restart()
		if got := s.Addr; got != addr {
			t.Fatalf("Addr after Restart = %q, want the same %q", got, addr)
		}
		if got, want := mustSend(t, s.Addr, "GET k"), []string{"$-1"}; !slices.Equal(got, want) {
			t.Fatalf("GET after Restart = %q, want %q: nothing may persist", got, want)
		}
	})
	// The subtest's cleanup killed the process: its port no longer answers.
	if _, err := send(t, addr, 10*time.Second, "PING"); err == nil {
		t.Fatalf("redis-server at %s still answers after cleanup", addr)
	}
}

func TestPassword(t *testing.T) {
	const password = "pa:ss/w@rd"
	s := Start(t, Options{Password: password})

	if got := mustSend(t, s.Addr, "PING"); !strings.HasPrefix(got[0], "-NOAUTH") {
		t.Fatalf("PING without AUTH = %q, want -NOAUTH", got)
	}
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatalf("URL %q: %v", s.URL(), err)
	}
	if got, _ := u.User.Password(); got != password {
		t.Fatalf("URL password = %q, want %q", got, password)
	}
	if got, want := u.Host, s.Addr; got != want {
		t.Fatalf("URL host = %q, want %q", got, want)
	}
	if got, want := mustSend(t, s.Addr, `AUTH "`+password+`"`, "PING"), []string{"+OK", "+PONG"}; !slices.Equal(got, want) {
		t.Fatalf("AUTH then PING = %q, want %q", got, want)
	}
}

func TestFreezeThaw(t *testing.T) {
	s := Start(t, Options{})
	s.Freeze()
	// A frozen server never answers, so the short wait cannot give a false pass.
	_, err := send(t, s.Addr, 200*time.Millisecond, "PING")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to a frozen server: err = %v, want a timeout", err)
	}
	s.Thaw()
	if got, want := mustSend(t, s.Addr, "PING"), []string{"+PONG"}; !slices.Equal(got, want) {
		t.Fatalf("PING after Thaw = %q, want %q", got, want)
	}
}

func TestFindBinary(t *testing.T) {
	if _, err := FindBinary(""); err != nil {
		t.Fatalf("FindBinary on this machine: %v", err)
	}

	missing := filepath.Join(t.TempDir(), "redis-server")
	t.Run("env names a missing file", func(t *testing.T) {
		_, err := FindBinary(missing)
		wantHint(t, err, EnvBinary+"="+missing)
	})
	t.Run("not on PATH", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := FindBinary("")
		wantHint(t, err, "not on PATH")
	})
	t.Run("env names a non-executable file", func(t *testing.T) {
		if err := os.WriteFile(missing, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := FindBinary(missing)
		wantHint(t, err, "not an executable")
	})
}

// wantHint checks that err names the problem and the exact install command.
func wantHint(t *testing.T, err error, problem string) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil, want an error")
	}
	for _, want := range []string{problem, "`" + InstallCommand + "`", EnvBinary} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestLaunchReportsLog checks that a server that cannot start fails with its
// log rather than hanging: here its port is already taken.
func TestLaunchReportsLog(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bin, err := FindBinary("")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{tb: t, bin: bin, dir: t.TempDir(), Addr: l.Addr().String()}
	defer s.Stop()
	err = s.launch()
	if err == nil || !strings.Contains(err.Error(), "its log") {
		t.Fatalf("launch on a taken port: err = %v, want one quoting the server's log", err)
	}
}
