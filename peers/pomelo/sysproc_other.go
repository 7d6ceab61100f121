//go:build !linux

package pomelo

import "syscall"

// sysProcAttr puts the master in a process group of its own (its servers
// join it: Stop signals the group).
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
