package gate

import "syscall"

// childAttr makes a run's bench child get SIGTERM when the gate dies, so it
// stops the server it started instead of running on.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
