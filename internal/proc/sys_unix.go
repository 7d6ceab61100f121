//go:build unix && !linux

package proc

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr gives the child, unless SameProcessGroup, its own process
// group. There is no parent-death signal here: a child outlives a parent
// that is killed with SIGKILL.
func setSysProcAttr(cmd *exec.Cmd, o Options) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !o.SameProcessGroup}
}
