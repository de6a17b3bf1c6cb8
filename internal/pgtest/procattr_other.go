//go:build !linux

package pgtest

import "syscall"

// procAttr runs a server process as cred (nil: as ourselves), in a process
// group of its own so that a Ctrl-C reaches only the test binary, which stops
// it. Outside Linux a server outlives a test binary killed outright.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
