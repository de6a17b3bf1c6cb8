// Command loadbench measures the real payments-api binary under load, on
// loopback only: it starts the stand-ins the service talks to (Stripe answering
// at once, Clerk's JWKS, a Next.js receiver) in its own process, starts the
// service once per scenario, drives it with distinct requests over keep-alive
// connections, and prints a table of throughput, latency and the service's peak
// memory. A bare net/http server, measured in the same run, gives the machine's
// ceiling to compare with.
//
// It is a measurement, not a test: `make bench-load` runs it; `make test` does
// not. Every scenario is bounded in time and in requests.
//
// Usage:
//
//	loadbench -service bin/payments-api [-duration 5s] [-conns 64] [-run REGEXP] [-pin=false]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	service  string
	duration time.Duration
	warmup   time.Duration
	conns    int
	run      *regexp.Regexp
	event    string
	logLevel string
	pin      bool
	bareAddr string            // set in the child process that serves the bare handler
	extraEnv map[string]string // -service-env, for experiments (GOGC, GODEBUG…)

	loadAtStart string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var pattern string
	fs.StringVar(&o.service, "service", "bin/payments-api", "the payments-api binary to measure (build it with `make build`)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per scenario")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time before each scenario's measurement")
	fs.IntVar(&o.conns, "conns", 64, "concurrent keep-alive connections")
	fs.StringVar(&pattern, "run", "", "run only the scenarios whose name matches this regular expression")
	fs.StringVar(&o.event, "event", "internal/webhook/testdata/checkout_session_completed.json", "a realistic Stripe event body; its id and type are replaced per request")
	fs.StringVar(&o.logLevel, "log-level", "info", "the service's LOG_LEVEL (info writes one access-log line per request, as in production)")
	fs.BoolVar(&o.pin, "pin", true, "run the service on half of the CPUs and the load on the other half, so that they never wait for each other (Linux, 2 CPUs or more)")
	fs.StringVar(&o.bareAddr, "serve-bare", "", "internal: serve the bare net/http handler on this address")
	o.extraEnv = map[string]string{}
	fs.Func("service-env", "`NAME=VALUE` added to the service's environment; repeatable (e.g. GOGC=200)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return errors.New("want NAME=VALUE")
		}
		o.extraEnv[k] = v
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return o, fmt.Errorf("-run: %w", err)
	}
	o.run = re
	if o.duration <= 0 || o.duration > 5*time.Minute || o.warmup < 0 || o.conns < 1 || o.conns > 1024 {
		return o, errors.New("-duration must be within (0, 5m], -warmup not negative, -conns within [1, 1024]")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.bareAddr != "" {
		return serveBare(ctx, o.bareAddr)
	}
	o.loadAtStart = loadAverage()
	st, err := newStand(ctx, o)
	if err != nil {
		return err
	}
	defer st.close()
	if o.pin {
		split, ok, err := splitCPUs()
		if err != nil {
			return err
		}
		if ok {
			st.cpus = &split
		} else {
			fmt.Fprintln(stderr, "loadbench: fewer than 2 CPUs (or no affinity here): the service and the load share them")
		}
	}

	var results []result
	for _, sc := range scenarios() {
		if !o.run.MatchString(sc.Name) {
			continue
		}
		fmt.Fprintf(stderr, "loadbench: %s …\n", sc.Name)
		res, err := st.measure(ctx, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		results = append(results, res)
	}
	printTable(stdout, o, st.cpus, results)
	return nil
}
