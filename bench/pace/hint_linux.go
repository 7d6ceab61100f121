package pace

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// hint is a timerfd in the Go netpoller. Nothing reads it: an expiry wakes
// epoll_wait (the netpoller registers descriptors edge-triggered, and every
// expiry is a new wake-up), which is all it is for. Arming it again resets
// its count. A hint whose timerfd could not be made is inert, and the Timer
// falls back to the runtime's millisecond.
type hint struct {
	f  *os.File
	fd int
}

func newHint() hint {
	fd, _, e := syscall.RawSyscall(syscall.SYS_TIMERFD_CREATE, 1 /* CLOCK_MONOTONIC */, syscall.O_NONBLOCK|syscall.O_CLOEXEC /* TFD_NONBLOCK|TFD_CLOEXEC */, 0)
	if e != 0 {
		return hint{fd: -1}
	}
	// non-blocking, so that os.NewFile registers it with the netpoller
	return hint{f: os.NewFile(fd, "pace-timerfd"), fd: int(fd)}
}

// itimerspec of timerfd_settime(2)
type itimerspec struct {
	interval, value syscall.Timespec
}

func (h hint) arm(d time.Duration) {
	if h.fd < 0 {
		return
	}
	spec := itimerspec{value: syscall.NsecToTimespec(int64(d))}
	syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(h.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

// armed is how long until the hint fires (0: disarmed); for tests.
func (h hint) armed() time.Duration {
	if h.fd < 0 {
		return 0
	}
	var spec itimerspec
	syscall.RawSyscall(syscall.SYS_TIMERFD_GETTIME, uintptr(h.fd), uintptr(unsafe.Pointer(&spec)), 0)
	return time.Duration(spec.value.Nano())
}

func (h hint) close() {
	if h.f != nil {
		h.f.Close()
	}
}
