package wsout

import (
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// rawWriter writes one frame with one non-blocking writev on the socket's
// file descriptor, through the runtime's fd lock (syscall.RawConn) so it
// cannot race with a close. Its buffers are reused: only the goroutine that
// owns the session's writing flag uses it.
type rawWriter struct {
	ok  bool
	rc  syscall.RawConn
	hdr [10]byte
	iov [2]unix.Iovec
	n   int
	err unix.Errno
	fn  func(fd uintptr) bool // allocated once: a closure per write would escape
}

func (w *rawWriter) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	w.rc, w.ok = rc, true
	w.fn = func(fd uintptr) bool {
		for {
			n, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
			if e == unix.EINTR {
				continue
			}
			w.n, w.err = int(n), e
			if e != 0 {
				w.n = 0
			}
			return true // never wait: what is left goes to the writer goroutine
		}
	}
}

// writeFrame writes pkt as one binary frame without blocking. It returns a
// copy of what the kernel did not take (nil when it took everything).
func (w *rawWriter) writeFrame(pkt []byte) (rest []byte, err error) {
	h := appendFrameHeader(w.hdr[:0], websocket.BinaryMessage, len(pkt))
	n, err := w.writev(h, pkt)
	if err != nil || n == len(h)+len(pkt) {
		return nil, err
	}
	rest = make([]byte, 0, len(h)+len(pkt)-n)
	if n < len(h) {
		rest = append(rest, h[n:]...)
		return append(rest, pkt...), nil
	}
	return append(rest, pkt[n-len(h):]...), nil
}

// write writes b (complete frames) without blocking. It returns a copy of
// what the kernel did not take (nil when it took everything).
func (w *rawWriter) write(b []byte) (rest []byte, err error) {
	n, err := w.writev(b, nil)
	if err != nil || n == len(b) {
		return nil, err
	}
	return append([]byte(nil), b[n:]...), nil
}

// writev is one non-blocking writev of a and b (b may be empty).
func (w *rawWriter) writev(a, b []byte) (int, error) {
	w.iov[0].Base = &a[0]
	w.iov[0].SetLen(len(a))
	if len(b) > 0 {
		w.iov[1].Base = &b[0]
		w.iov[1].SetLen(len(b))
	}
	err := w.rc.Write(w.fn)
	w.iov = [2]unix.Iovec{} // do not keep a or b alive
	if err == nil && w.err != 0 && w.err != unix.EAGAIN {
		err = w.err
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errWriteDirect, err)
	}
	return w.n, nil
}
