// Package polltest waits in tests for something another goroutine or process
// makes true (a log line written, a job rescued, a server restarted), failing
// with what was awaited instead of hanging until go test's own timeout.
package polltest

import (
	"testing"
	"time"
)

// Limit is how long Eventually waits: far above what a healthy run needs on a
// busy machine, far below go test's timeout.
const Limit = 10 * time.Second

// interval is the pause between two checks: short enough not to slow a test
// down, long enough not to busy a shared machine.
const interval = 5 * time.Millisecond

// Eventually checks cond until it holds, failing the test after Limit.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, Limit, what, cond)
}

// Within is Eventually with the caller's limit, for timers of their own (a
// database's rescuer, a schema re-check) that need longer than Limit.
func Within(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(interval) {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %s waiting for %s", limit, what)
		}
	}
}
