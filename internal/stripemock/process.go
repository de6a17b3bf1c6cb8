package stripemock

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Options configures Launch.
type Options struct {
	// HTTPAddr is the host:port of the HTTP listener; port 0 picks a free one.
	// Empty means 127.0.0.1:0.
	HTTPAddr string
	// HTTPSAddr is the host:port of the HTTPS listener, which stripe-mock always
	// opens. Empty means 127.0.0.1:0: its own default, the fixed port 12112,
	// would collide between parallel runs.
	HTTPSAddr string
	// Log, when set, receives each line stripe-mock prints (its requests and
	// their status), from a goroutine of its own.
	Log func(line string)
	// SysProcAttr is passed to the process, e.g. to put it into its own process
	// group so that a terminal's Ctrl-C reaches only the caller, which then
	// stops it in order.
	SysProcAttr *syscall.SysProcAttr
}

// Process is a stripe-mock started by Launch.
type Process struct {
	// URL is the base URL of its HTTP listener, e.g. http://127.0.0.1:12111.
	URL string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the result of Wait, set before exited is closed
}

// Launch starts the stripe-mock binary bin and waits until it answers an
// authenticated request. The process runs until ctx ends or Stop is called; if
// it does not come up, it is killed and waited for before Launch returns.
func Launch(ctx context.Context, bin string, opts Options) (*Process, error) {
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:0"
	}
	if opts.HTTPSAddr == "" {
		opts.HTTPSAddr = "127.0.0.1:0"
	}
	cmd := exec.CommandContext(ctx, bin, "-http-addr", opts.HTTPAddr, "-https-addr", opts.HTTPSAddr)
	cmd.SysProcAttr = opts.SysProcAttr
	// Nothing but stripe-mock holds the pipe, so Wait returns soon after the
	// kill; the delay only guards against a stray grandchild keeping it open.
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stripe-mock: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stripe-mock: start %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}

	addr := make(chan string, 1)
	go func() {
		defer close(p.exited)
		// Read the output to its end, so that stripe-mock never blocks on a
		// full pipe, and learn the address it listens on from its banner.
		const banner = "Listening for HTTP at address: "
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, banner); ok {
				select {
				case addr <- strings.TrimSpace(a):
				default:
				}
			}
			if opts.Log != nil {
				opts.Log(line)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
	}()

	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.exited:
		return nil, fmt.Errorf("stripe-mock: %s exited before listening (%v); is %s taken?", bin, p.err, opts.HTTPAddr)
	case <-startCtx.Done():
		p.Stop()
		return nil, fmt.Errorf("stripe-mock: %s did not listen within %v", bin, startTimeout)
	}
	if err := waitReady(startCtx, p.URL); err != nil {
		p.Stop()
		return nil, fmt.Errorf("stripe-mock: %w", err)
	}
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited, for whatever reason.
func (p *Process) Done() <-chan struct{} { return p.exited }

// Err returns how the process ended; call it only after Done is closed.
func (p *Process) Err() error { return p.err }

// Stop kills the process and waits until it has exited. It is safe to call
// more than once, and after the process ended by itself.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	// An error means it is already gone; the wait below settles it either way.
	_ = p.cmd.Process.Kill()
	<-p.exited
}
