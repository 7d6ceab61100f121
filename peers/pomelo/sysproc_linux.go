package pomelo

import "syscall"

// sysProcAttr puts the master in a process group of its own (its servers
// join it: Stop signals the group) and kills it if chatbench dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
