package kubetest

import "syscall"

// sysProcAttr has the kernel kill a program of the control plane when the
// test binary dies, even without running Stop (a panic, a test timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
