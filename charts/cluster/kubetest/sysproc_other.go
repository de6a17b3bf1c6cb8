//go:build !linux

package kubetest

import "syscall"

// sysProcAttr is empty where the kernel cannot tie a child's life to its
// parent's: Stop is then the only way the programs end.
func sysProcAttr() *syscall.SysProcAttr { return nil }
