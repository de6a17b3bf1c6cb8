package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReadyzURL pins where the healthcheck looks for each form of LISTEN_ADDR.
func TestReadyzURL(t *testing.T) {
	tests := []struct {
		listen, want string
	}{
		{"", "http://127.0.0.1:8001/readyz"},
		{":8001", "http://127.0.0.1:8001/readyz"},
		{":9000", "http://127.0.0.1:9000/readyz"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/readyz"},
		{"[::]:9000", "http://127.0.0.1:9000/readyz"},
		{"[0:0:0:0:0:0:0:0]:9000", "http://127.0.0.1:9000/readyz"},
		{"127.0.0.1:9000", "http://127.0.0.1:9000/readyz"},
		{"10.1.2.3:9000", "http://10.1.2.3:9000/readyz"},
		{"[::1]:9000", "http://[::1]:9000/readyz"},
		{"[fd00::7]:9000", "http://[fd00::7]:9000/readyz"},
		{"localhost:9000", "http://localhost:9000/readyz"},
		{"payments.internal:9000", "http://payments.internal:9000/readyz"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			got, err := readyzURL(func(k string) string { return map[string]string{"LISTEN_ADDR": tt.listen}[k] })
			if err != nil || got != tt.want {
				t.Errorf("readyzURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// readyzServer answers GET /readyz with 200 on ln and counts the requests.
func readyzServer(t *testing.T, ln net.Listener) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		n.Add(1)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return &n
}

// TestHealthcheckFollowsListenAddr runs the command with only LISTEN_ADDR set,
// in each of its forms, against a server on that port: every form reaches it.
func TestHealthcheckFollowsListenAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	requests := readyzServer(t, ln)
	forms := []string{":" + port, "0.0.0.0:" + port, "[::]:" + port, "127.0.0.1:" + port, "localhost:" + port}
	if ln6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		_, port6, _ := net.SplitHostPort(ln6.Addr().String())
		readyzServer(t, ln6)
		forms = append(forms, "[::1]:"+port6)
	} else {
		t.Logf("no IPv6 loopback here, [::1] not tried: %v", err)
	}

	for _, listen := range forms {
		t.Run(listen, func(t *testing.T) {
			var stderr bytes.Buffer
			env := map[string]string{"LISTEN_ADDR": listen}
			if err := run(context.Background(), []string{"payments-api", "healthcheck"}, func(k string) string { return env[k] }, io.Discard, &stderr); err != nil {
				t.Errorf("healthcheck = %v (%s)", err, stderr.String())
			}
		})
	}
	if got, min := requests.Load(), int64(5); got < min {
		t.Errorf("the IPv4 server got %d requests, want at least %d", got, min)
	}
}

// TestHealthcheckListenAddrProblems: a LISTEN_ADDR the healthcheck cannot
// follow is exit 1 (Docker reserves 2) with a line naming the variable; the
// rest of the configuration, missing here, is never asked for.
func TestHealthcheckListenAddrProblems(t *testing.T) {
	for listen, want := range map[string]string{
		"8001":         `LISTEN_ADDR: "8001" is not a host:port address`,
		":70000":       "LISTEN_ADDR: \":70000\" has an invalid port",
		"127.0.0.1:0":  "LISTEN_ADDR 127.0.0.1:0 has port 0",
		"[::1]:nope":   "LISTEN_ADDR: \"[::1]:nope\" has an invalid port",
		"off":          `LISTEN_ADDR: "off" is not a host:port address`,
		"localhost:-1": `LISTEN_ADDR: "localhost:-1" has an invalid port`,
	} {
		t.Run(listen, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := map[string]string{"LISTEN_ADDR": listen}
			err := run(context.Background(), []string{"payments-api", "healthcheck"}, func(k string) string { return env[k] }, &stdout, &stderr)
			var exit exitError
			if !errors.As(err, &exit) || exit.code != 1 {
				t.Fatalf("run = %v, want exit code 1", err)
			}
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr = %q, want %q", stderr.String(), want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}
