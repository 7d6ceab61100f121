package connector

import (
	"syscall"
	"unsafe"
)

// inq returns the unread bytes in a socket's receive queue (SIOCINQ).
func inq(fd uintptr) int {
	var n int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno != 0 {
		return 0
	}
	return int(n)
}
