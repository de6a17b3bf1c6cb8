package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/acme/payments-api/internal/config"
)

const healthcheckTimeout = 3 * time.Second

// healthcheck GETs the URL and succeeds on 200 only. It exists because the
// distroless image has no shell or curl for a Docker HEALTHCHECK or a helm test.
// Without a URL it asks this machine's /readyz on LISTEN_ADDR's port, reading
// that variable alone, so that it works wherever the server's environment is
// only partly present (a helm test, docker exec).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 1 {
		fmt.Fprintf(stderr, "payments-api healthcheck: want at most one URL\n%s", usage)
		return exitError{code: 2}
	}
	target := ""
	if len(args) == 1 {
		target = args[0]
	} else {
		var err error
		if target, err = readyzURL(getenv); err != nil {
			// 1, not 2: to Docker's HEALTHCHECK, 2 is reserved.
			fmt.Fprintf(stderr, "healthcheck: %v\n", err)
			return exitError{code: 1}
		}
	}
	return probe(ctx, target, stderr)
}

// readyzURL is the server's own /readyz as seen from this machine: the port
// of LISTEN_ADDR, at its host, or at 127.0.0.1 when it listens on every
// address (no host, 0.0.0.0 or ::).
func readyzURL(getenv func(string) string) (string, error) {
	addr, err := config.ListenAddr(getenv)
	if err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(addr) // checked by config
	if port == "0" {
		return "", fmt.Errorf("LISTEN_ADDR %s has port 0, chosen by the system at start: give the URL to probe", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// probe GETs target within healthcheckTimeout and succeeds on 200 only.
func probe(ctx context.Context, target string, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: invalid URL: %v\n", err)
		return exitError{code: 1}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return exitError{code: 1}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s answered %d\n", target, resp.StatusCode)
		return exitError{code: 1}
	}
	return nil
}
