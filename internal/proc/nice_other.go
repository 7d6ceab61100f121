//go:build !linux

package proc

import "os/exec"

// startNiced starts cmd at the caller's priority: only Linux gives a single
// thread its own priority, which a child forked from it inherits (elsewhere
// setpriority would make the whole parent nicer).
func startNiced(cmd *exec.Cmd, nice int) (release func(), err error) {
	return func() {}, cmd.Start()
}
