//go:build unix

package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig unix.Signal) error {
	if err := unix.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal process group %d: %w", pid, err)
	}
	return nil
}
