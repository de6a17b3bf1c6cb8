package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http/httputil"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// result is one row of the table.
type result struct {
	name      string
	bare      bool
	paced     bool          // sent at a fixed rate: its req/s is that rate
	requests  int           // answered within the measured window
	elapsed   time.Duration // the measured window
	p50, p99  time.Duration
	errors    int    // wrong statuses and broken connections
	firstErr  string // what the first error was
	peakRSS   int64
	exhausted bool // ran out of prepared requests before the window ended
	note      string
	// cpu is the CPU use in the measured window.
	cpu cpuUse
}

func (r result) perSecond() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// measure runs one scenario: it starts a fresh service (so that its peak
// memory is this scenario's), builds the requests, drives them and reads the
// service's high-water mark.
func (st *Stand) measure(ctx context.Context, sc Scenario) (result, error) {
	n := sc.prepared(st.opts.warmup + st.opts.duration)
	reqs, err := sc.Prepare(st, n)
	if err != nil {
		return result{}, err
	}
	svc, err := st.start(ctx, sc)
	if err != nil {
		return result{}, err
	}
	if !sc.Bare {
		defer svc.stop()
	}
	if st.cpus != nil {
		if err := st.cpus.loadOnly(); err != nil {
			return result{}, err
		}
	}
	cpu := sampleCPU(svc, st.cpus, st.opts.warmup, st.opts.warmup+st.opts.duration)
	res, err := drive(ctx, svc.addr, st.opts, sc, reqs, n)
	if err == nil {
		res.cpu, err = cpu()
	}
	if st.cpus != nil {
		if rerr := st.cpus.release(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return result{}, err
	}
	res.name, res.bare, res.paced = sc.Name, sc.Bare, sc.Rate > 0
	if res.peakRSS, err = svc.peakRSS(); err != nil {
		return result{}, err
	}
	if sc.Report != nil {
		if res.note, err = sc.Report(ctx, st, svc); err != nil {
			return result{}, fmt.Errorf("report: %w", err)
		}
	}
	return res, nil
}

// start runs the service for sc, or the bare server (once, kept for the run).
func (st *Stand) start(ctx context.Context, sc Scenario) (*Service, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if sc.Bare {
		if st.bare == nil {
			self, err := os.Executable()
			if err != nil {
				return nil, err
			}
			if st.bare, err = startService(ctx, st.launch, self, []string{"-serve-bare", addr}, nil, addr, "/"); err != nil {
				return nil, err
			}
		}
		return st.bare, nil
	}
	env := st.serviceEnv(addr)
	maps.Copy(env, st.opts.extraEnv)
	var cleanup func()
	if sc.Setup != nil {
		more, c, err := sc.Setup(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
		cleanup = c
		maps.Copy(env, more)
	}
	svc, err := startService(ctx, st.launch, st.opts.service, nil, env, addr, "/readyz")
	if err != nil {
		if cleanup != nil {
			cleanup()
		}
		return nil, err
	}
	svc.cleanup = cleanup
	return svc, nil
}

// cpuReading is one sample of the CPU counters sampleCPU compares.
type cpuReading struct {
	ran       time.Duration // the service's, exact
	svc, self int64         // the service's and this program's, in ticks
	svcCPUs   int64         // the service's CPUs' busy time, in ticks
	loadCPUs  int64         // this program's CPUs' busy time, in ticks
	err       error
}

func readCPU(svc *Service, cpus *cpuSplit) cpuReading {
	var r cpuReading
	errs := make([]error, 5)
	r.ran, errs[0] = svc.ranFor()
	r.svc, errs[1] = svc.ticks()
	if cpus != nil {
		r.self, errs[2] = processTicks("self")
		r.svcCPUs, errs[3] = busyTicks(cpus.serviceCPUs())
		r.loadCPUs, errs[4] = busyTicks(cpus.loadCPUs())
	}
	r.err = errors.Join(errs...)
	return r
}

// cpuUse is what sampleCPU measured over a window: the service's CPU time,
// and the share of the service's CPUs and of the load's CPUs that other
// processes took (-1 when the CPUs are not split).
type cpuUse struct {
	ran                   time.Duration
	othersSvc, othersLoad float64
}

// sampleCPU reads the CPU counters from and to (from now), in the background;
// the function it returns waits for the second reading and compares the two.
func sampleCPU(svc *Service, cpus *cpuSplit, from, to time.Duration) func() (cpuUse, error) {
	start := time.Now()
	done := make(chan [2]cpuReading, 1)
	go func() {
		time.Sleep(time.Until(start.Add(from)))
		a := readCPU(svc, cpus)
		time.Sleep(time.Until(start.Add(to)))
		done <- [2]cpuReading{a, readCPU(svc, cpus)}
	}()
	return func() (cpuUse, error) {
		r := <-done
		a, b := r[0], r[1]
		if err := cmp.Or(a.err, b.err); err != nil {
			return cpuUse{}, err
		}
		u := cpuUse{ran: b.ran - a.ran, othersSvc: -1, othersLoad: -1}
		if cpus != nil {
			others := func(busy, own int64, n int) float64 {
				return max(0, float64(busy-own)/((to-from).Seconds()*clockTicks*float64(n)))
			}
			u.othersSvc = others(b.svcCPUs-a.svcCPUs, b.svc-a.svc, len(cpus.serviceCPUs()))
			u.othersLoad = others(b.loadCPUs-a.loadCPUs, b.self-a.self, len(cpus.loadCPUs()))
		}
		return u, nil
	}
}

// window is a scenario's measured time.
type window struct{ from, to time.Time }

// drive sends reqs over opts.conns keep-alive connections: for the warm-up,
// then for the measured window, or until the prepared requests run out.
func drive(ctx context.Context, addr string, o options, sc Scenario, reqs Requests, n int) (result, error) {
	start := time.Now()
	w := window{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}
	ctx, cancel := context.WithDeadline(ctx, w.to)
	defer cancel()

	var due <-chan time.Time
	if sc.Rate > 0 {
		due = pace(ctx, start, sc.Rate, o.conns)
	}
	var (
		next      atomic.Int64
		exhausted atomic.Bool
		wg        sync.WaitGroup
		workers   = make([]*worker, o.conns)
	)
	for c := range workers {
		wk := &worker{addr: addr, want: sc.Want, window: w}
		workers[c] = wk
		wg.Go(func() {
			defer wk.close()
			for ctx.Err() == nil {
				sent := time.Now()
				if due != nil {
					var ok bool
					if sent, ok = <-due; !ok {
						return
					}
				}
				i := int(next.Add(1) - 1)
				if i >= n {
					exhausted.Store(true)
					return
				}
				wk.do(reqs, i, sent)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return result{}, err
	}

	res := result{elapsed: o.duration, exhausted: exhausted.Load()}
	var lat []time.Duration
	last := w.from
	for _, wk := range workers {
		lat = append(lat, wk.latencies...)
		res.errors += wk.errors
		if res.firstErr == "" {
			res.firstErr = wk.firstErr
		}
		if wk.last.After(last) {
			last = wk.last
		}
	}
	if res.exhausted {
		res.elapsed = last.Sub(w.from)
	}
	res.requests = len(lat)
	if len(lat) == 0 {
		return res, fmt.Errorf("no request answered in the measured window (%d errors; first: %s)", res.errors, res.firstErr)
	}
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)*50/100], lat[len(lat)*99/100]
	return res, nil
}

// timerSlack is how late Go's timers may wake this program without anything
// being wrong: when the process has nothing else to do it sleeps in steps of
// about a millisecond.
const timerSlack = 2 * time.Millisecond

// pace hands out the times at which requests are due, rate per second, until
// ctx ends. A worker late to take one still measures from when it was due, so
// that a stalled service shows. A request handed out less than timerSlack
// after it was due counts from when it was handed out: that lag is this
// program's timer, not the service.
func pace(ctx context.Context, start time.Time, rate, conns int) <-chan time.Time {
	due := make(chan time.Time, conns)
	go func() {
		defer close(due)
		interval := time.Second / time.Duration(rate)
		for k := 0; ; k++ {
			at := start.Add(time.Duration(k) * interval)
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			if now := time.Now(); now.Sub(at) < timerSlack {
				at = now
			}
			select {
			case due <- at:
			case <-ctx.Done():
				return
			}
		}
	}()
	return due
}

// worker is one keep-alive connection. It writes each request whole and reads
// the answer with the least parsing that is still correct HTTP/1.1 framing.
type worker struct {
	addr   string
	want   int
	window window

	conn net.Conn
	rd   *bufio.Reader
	buf  []byte

	latencies []time.Duration
	errors    int
	firstErr  string
	last      time.Time
}

func (wk *worker) do(reqs Requests, i int, sent time.Time) {
	wk.buf = reqs(wk.buf[:0], i)
	status, err := wk.roundTrip()
	done := time.Now()
	if !sent.Before(wk.window.from) && !done.After(wk.window.to) {
		if err == nil && status != wk.want {
			err = fmt.Errorf("status %d, want %d", status, wk.want)
		}
		if err != nil {
			wk.errors++
			if wk.firstErr == "" {
				wk.firstErr = err.Error()
			}
			return
		}
		wk.latencies = append(wk.latencies, done.Sub(sent))
		wk.last = done
	}
}

func (wk *worker) roundTrip() (int, error) {
	if wk.conn == nil {
		c, err := net.Dial("tcp", wk.addr)
		if err != nil {
			return 0, err
		}
		wk.conn, wk.rd = c, bufio.NewReaderSize(c, 16<<10)
	}
	_ = wk.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := wk.conn.Write(wk.buf); err != nil {
		wk.close()
		return 0, err
	}
	status, keep, err := readResponse(wk.rd)
	if err != nil || !keep {
		wk.close()
	}
	return status, err
}

func (wk *worker) close() {
	if wk.conn != nil {
		_ = wk.conn.Close()
		wk.conn = nil
	}
}

// readResponse reads one response and discards its body; keep is false when the
// server closes the connection after it.
func readResponse(rd *bufio.Reader) (status int, keep bool, err error) {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := rd.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		_, err = io.Copy(io.Discard, httputil.NewChunkedReader(rd))
	case length >= 0:
		_, err = rd.Discard(length)
	default:
		_, err = io.Copy(io.Discard, rd)
		keep = false
	}
	return status, keep, err
}

// busyOthers is the share of the service's CPUs other processes may take
// before its tail is marked as theirs rather than its own.
const busyOthers = 0.05

// printTable writes the results; req/s of each row is also given as a share of
// the bare server's (the mean of its rows).
func printTable(w io.Writer, o options, cpus *cpuSplit, results []result) {
	var bare float64
	var bares int
	for _, r := range results {
		if r.bare {
			bare += r.perSecond()
			bares++
		}
	}
	if bares > 0 {
		bare /= float64(bares)
	}
	fmt.Fprintf(w, "\n%d cores, %d connections, %s warm-up + %s measured per scenario; load average at the start: %s, at the end: %s\n",
		runtime.NumCPU(), o.conns, o.warmup, o.duration, o.loadAtStart, loadAverage())
	if cpus != nil {
		fmt.Fprintf(w, "%s\n", cpus)
	} else {
		fmt.Fprintln(w, "service and load sharing every CPU: latencies include the load generator's turns")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treq/s\tvs bare\tp50\tp99\tp99/p50\tCPU used\tothers: service's CPU\tload's CPU\terrors\tpeak RSS\t")
	busy := false
	for _, r := range results {
		share := "-"
		if bare > 0 && !r.bare && !r.paced {
			share = fmt.Sprintf("%.0f %%", 100*r.perSecond()/bare)
		}
		name := r.name
		if r.exhausted {
			name += " (ran out of requests)"
		}
		mark := ""
		if r.cpu.othersSvc > busyOthers || r.cpu.othersLoad > busyOthers {
			mark, busy = " *", true
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%.1f%s\t%.2f\t%s\t%s\t%d\t%.1f MiB\t\n", name, r.perSecond(), share,
			round(r.p50), round(r.p99), float64(r.p99)/float64(r.p50), mark,
			r.cpu.ran.Seconds()/r.elapsed.Seconds(), percent(r.cpu.othersSvc), percent(r.cpu.othersLoad),
			r.errors, float64(r.peakRSS)/(1<<20))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "CPU used: the service's CPU time over the window (1.00 = one core); "+
		"others: the share of the service's CPUs, and of the load generator's, that other processes took.")
	if busy {
		fmt.Fprintf(w, "* other processes took more than %.0f %% of the service's or the load's CPU: the tail is theirs "+
			"as much as the service's (run again when the machine is quieter)\n", 100*busyOthers)
	}
	for _, r := range results {
		if r.firstErr != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", r.name, r.firstErr)
		}
		if r.note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.name, r.note)
		}
	}
}

// loadAverage is the machine's 1, 5 and 15 minute load averages: other work on
// the machine takes cores from the measurement.
func loadAverage() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := bytes.Fields(raw)
	return string(bytes.Join(f[:min(3, len(f))], []byte(" ")))
}

// percent writes a share, or - when it is not known (-1).
func percent(share float64) string {
	if share < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %%", 100*share)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
