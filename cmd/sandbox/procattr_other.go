//go:build !linux

package main

import "syscall"

// childAttr puts a child into a process group of its own, so that a Ctrl-C in
// the terminal reaches only the sandbox, which stops its children itself.
// Outside Linux there is no parent-death signal: children of a SIGKILLed
// sandbox keep running, and the next run reports their ports as taken.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
