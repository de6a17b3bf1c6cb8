package stripemock

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func findBinary(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := FindBinary(os.Getenv(EnvBinary), wd)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// gone reports whether no process with pid exists any more.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestLaunchLogsAndStops(t *testing.T) {
	var (
		mu    sync.Mutex
		lines []string
	)
	p, err := Launch(context.Background(), findBinary(t), Options{
		Log: func(line string) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, line)
		},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)

	res, err := http.Get(p.URL + "/v1/customers/cus_launch") // no key: 401, but logged
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	p.Stop()
	p.Stop() // a second stop is harmless
	if !gone(p.Pid()) {
		t.Fatalf("pid %d still exists after Stop", p.Pid())
	}
	if _, err := http.Get(p.URL + "/v1/customers/cus_launch"); err == nil {
		t.Fatalf("%s still answers after Stop", p.URL)
	}
	mu.Lock()
	got := strings.Join(lines, "\n")
	mu.Unlock()
	for _, want := range []string{"Listening for HTTP at address: " + strings.TrimPrefix(p.URL, "http://"), "GET /v1/customers/cus_launch"} {
		if !strings.Contains(got, want) {
			t.Errorf("logged lines lack %q:\n%s", want, got)
		}
	}
}

func TestLaunchEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Launch(ctx, findBinary(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	cancel()
	<-p.Done()
	if p.Err() == nil {
		t.Error("Err() = nil after the context killed the process, want the kill")
	}
	if !gone(p.Pid()) {
		t.Fatalf("pid %d still exists after its context ended", p.Pid())
	}
}

func TestLaunchPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := Launch(context.Background(), findBinary(t), Options{HTTPAddr: ln.Addr().String()})
	if err == nil {
		p.Stop()
		t.Fatalf("Launch on the taken port %s succeeded", ln.Addr())
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error %q does not name the taken address %s", err, ln.Addr())
	}
}
