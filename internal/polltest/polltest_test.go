package polltest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(10 * time.Millisecond)
			n.Add(1)
		}
	}()
	Eventually(t, "three ticks", func() bool { return n.Load() == 3 })
}

// fatalTB records a Fatalf and stops the calling goroutine, as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestWithinFailsWithWhatWasAwaited(t *testing.T) {
	tb := &fatalTB{}
	start := time.Now()
	func() {
		defer func() {
			if r := recover(); r != tb {
				panic(r)
			}
		}()
		Within(tb, 50*time.Millisecond, "a condition that never holds", func() bool { return false })
	}()
	if !strings.Contains(tb.msg, "a condition that never holds") || !strings.Contains(tb.msg, "50ms") {
		t.Errorf("failure = %q, want what was awaited and the limit", tb.msg)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the limit", waited)
	}
}
