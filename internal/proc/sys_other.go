//go:build !unix

package proc

import (
	"errors"
	"os/exec"
	"syscall"
)

func setSysProcAttr(*exec.Cmd, Options) {}

func signalGroup(int, syscall.Signal) error {
	return errors.New("process groups are not supported on this system")
}
