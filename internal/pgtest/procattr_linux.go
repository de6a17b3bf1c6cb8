package pgtest

import "syscall"

// procAttr runs a server process as cred (nil: as ourselves). On Linux the
// kernel also kills it if the test binary dies without stopping it (a timeout
// panic, SIGKILL), so no server outlives its tests; the signal is tied to the
// OS thread that started the process, which the Go runtime keeps for the life
// of the test binary.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
