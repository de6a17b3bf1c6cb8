//go:build !linux

package auth_test

import (
	"testing"
	"time"
)

// threadCPU reports nothing where the thread's CPU time cannot be read.
func threadCPU(*testing.B) (stop func()) { return func() {} }

func threadTime(testing.TB) time.Duration { return 0 }

const threadTimeWorks = false
