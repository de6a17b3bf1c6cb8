package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

const (
	defaultHealthcheckURL = "http://127.0.0.1:8001/readyz"
	healthcheckTimeout    = 3 * time.Second
)

// healthcheck GETs the URL and succeeds on 200 only. It exists because the
// distroless image has no shell or curl for a Docker HEALTHCHECK or a helm test.
func healthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 1 {
		fmt.Fprintf(stderr, "payments-api healthcheck: want at most one URL\n%s", usage)
		return exitError{code: 2}
	}
	target := defaultHealthcheckURL
	if len(args) == 1 {
		target = args[0]
	}
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
