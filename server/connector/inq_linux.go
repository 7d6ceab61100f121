package connector

import "golang.org/x/sys/unix"

// inq returns the unread bytes in a socket's receive queue (SIOCINQ).
func inq(fd uintptr) int {
	n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return n
}
