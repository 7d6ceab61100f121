package proc

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr gives the child its parent-death signal (the kernel sends
// it when the thread that forked the child exits: see startNiced) and, unless
// SameProcessGroup, its own process group.
func setSysProcAttr(cmd *exec.Cmd, o Options) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: o.ParentDeathSignal, Setpgid: !o.SameProcessGroup}
}
