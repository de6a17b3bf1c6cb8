package main

import "syscall"

// childAttr puts a child into a process group of its own, so that a Ctrl-C in
// the terminal reaches only the sandbox, which stops its children itself. On
// Linux the kernel also sends the child SIGTERM if the sandbox dies without
// doing so (SIGKILL, a crash), so that nothing is left running. The signal is
// tied to the OS thread that started the child; the Go runtime keeps its
// threads for the life of the process unless a goroutine exits while locked
// to one, which the sandbox never does.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
