package auth_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU makes a benchmark also report cpu-ns/op: the CPU time of its own
// thread per operation. On a shared machine, wall time per op counts whatever
// else ran meanwhile; the thread's CPU time does not. Call it just before the
// loop and the function it returns just after. Garbage collection on other
// threads is not in it; B/op and allocs/op show that cost.
func threadCPU(b *testing.B) (stop func()) {
	b.Helper()
	runtime.LockOSThread()
	start := threadTime(b)
	return func() {
		used := threadTime(b) - start
		runtime.UnlockOSThread()
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// threadTime is the CPU time the calling thread has used, to the nanosecond
// (CLOCK_THREAD_CPUTIME_ID). The caller keeps to its thread with
// runtime.LockOSThread.
func threadTime(tb testing.TB) time.Duration {
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		tb.Fatalf("clock_gettime: %v", errno)
	}
	return time.Duration(ts.Nano())
}

const threadTimeWorks = true
