package cluster

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel SIGKILL the child if the launcher
// dies without stopping it (kill -9 of the launcher leaves no orphans), and
// puts the child in its own process group so a terminal's Ctrl-C reaches
// only the launcher, which then drains the children in order.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
