package pace

import (
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return hint{fd: -1}
	}
	// non-blocking, so that os.NewFile registers it with the netpoller
	return hint{f: os.NewFile(uintptr(fd), "pace-timerfd"), fd: fd}
}

// arm sets the timer to fire once after d. It is on the timer's hot path,
// so it is a raw system call (unix.TimerfdSettime would enter the scheduler
// for a call that never blocks).
func (h hint) arm(d time.Duration) {
	if h.fd < 0 {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(h.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

// armed is how long until the hint fires (0: disarmed); for tests.
func (h hint) armed() time.Duration {
	if h.fd < 0 {
		return 0
	}
	var spec unix.ItimerSpec
	if err := unix.TimerfdGettime(h.fd, &spec); err != nil {
		return 0
	}
	return time.Duration(spec.Value.Nano())
}

func (h hint) close() {
	if h.f != nil {
		h.f.Close()
	}
}
