package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestKilledSandboxLeavesNoOrphans SIGKILLs the sandbox, which then cannot stop
// anything itself: its children must go anyway (the parent-death signal).
func TestKilledSandboxLeavesNoOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sandbox")
	}
	sb := startBuiltSandbox(t)
	pids := sb.pids(t)
	if len(pids) != 2 {
		t.Fatalf("children = %v, want two", pids)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			if running(t, pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL) // what the test found left over
			}
		}
	})

	if err := sb.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-sb.done
	// The service shuts down gracefully on its SIGTERM, which takes a moment.
	deadline := time.Now().Add(30 * time.Second)
	for name, pid := range pids {
		for running(t, pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still runs 30 s after the sandbox was killed", name, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// running reports whether pid is a live process. A zombie counts as gone: an
// orphan's exit status waits for whichever process adopted it, and in a
// container that may be one that never collects it.
func running(t *testing.T, pid int) bool {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatalf("reading the state of pid %d: %v", pid, err)
	}
	// The state follows the command name in parentheses, which may itself hold
	// parentheses: "1234 (payments-api) S …".
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		t.Fatalf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}
