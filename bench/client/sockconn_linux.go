package client

import (
	"context"
	"golang.org/x/sys/unix"
	"net"
	"os"
	"sync"
	"time"
)

// sockConn is the net.Conn under gorilla for a client of an epoll loop. Until
// detach it is the *net.TCPConn of the dial (the websocket upgrade and the
// pomelo handshake run on it as usual). detach then takes the socket away
// from Go's netpoller: it duplicates the descriptor and closes the TCPConn,
// which removes the socket from Go's epoll set. Otherwise Go keeps it
// registered (edge-triggered) and every frame the server sends also reaches
// Go's netpoll for a descriptor nobody waits on: in a first version that left
// it there, runtime.netpoll was 14% of the driver's CPU profile at 100k
// frames/s (5.5% without). After detach the client's send path writes through
// this type: tryWrite, a plain write(2) on the non-blocking socket that takes
// what the kernel takes, and Write (a backlog's flush), which waits in
// ppoll(2) until the write deadline when the socket buffer is full.
//
// The descriptor is closed exactly once, under mu held exclusively; every
// other use (write, shutdown) holds mu shared and checks closed, so no use
// can reach a descriptor number that was closed and reused. Close first shuts
// the socket down, which makes a writer blocked in ppoll return at once.
type sockConn struct {
	tcp      *net.TCPConn // nil after detach
	fd       int          // after detach
	detached bool
	laddr    net.Addr
	raddr    net.Addr
	wdl      time.Time  // write deadline; set and read by the one blocking writer (handshake, then flush)
	rw       *rawWriter // tryWrite before detach, under the client's omu

	mu     sync.RWMutex
	closed bool
}

func (f *Fleet) dialSock(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := f.dialTCP(ctx, network, addr)
	if err != nil || f.opts.Pollers < 0 {
		return c, err
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		return &sockConn{tcp: tcp, fd: -1}, nil
	}
	return c, nil
}

// detach moves the socket from the TCPConn to a descriptor of its own (see
// the type). On error the connection is unusable and closed.
func (s *sockConn) detach() error {
	rc, err := s.tcp.SyscallConn()
	if err != nil {
		s.tcp.Close()
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(sfd uintptr) {
		r, e := unix.FcntlInt(sfd, unix.F_DUPFD_CLOEXEC, 0)
		if e != nil {
			derr = os.NewSyscallError("fcntl", e)
			return
		}
		fd = r
	}); err != nil {
		derr = err
	}
	s.laddr, s.raddr = s.tcp.LocalAddr(), s.tcp.RemoteAddr()
	s.tcp.Close() // out of Go's netpoller; fd keeps the socket open
	s.tcp = nil
	if derr != nil {
		s.detached, s.closed = true, true
		return derr
	}
	s.fd, s.detached = fd, true
	return nil
}

func (s *sockConn) Read(b []byte) (int, error) {
	if !s.detached {
		return s.tcp.Read(b)
	}
	return 0, s.opError("read", net.ErrClosed) // the epoll loop reads
}

func (s *sockConn) Write(b []byte) (int, error) {
	if !s.detached {
		return s.tcp.Write(b)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for {
		k, err := s.writeNow(b[n:])
		n += k
		if err != nil || n == len(b) {
			return n, err
		}
		if err := s.waitWritable(); err != nil {
			return n, err
		}
	}
}

// tryWrite writes what the kernel takes of b now (the client's send path,
// outbox.go). Before detach it writes through the TCPConn's descriptor.
func (s *sockConn) tryWrite(b []byte) (int, error) {
	if !s.detached {
		if s.rw == nil {
			w, err := newRawWriter(s.tcp)
			if err != nil {
				return 0, err
			}
			s.rw = w
		}
		return s.rw.tryWrite(b)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.writeNow(b)
}

// writeNow writes b with write(2) until it is written or the socket buffer
// is full (n < len(b), no error). The caller holds mu shared.
func (s *sockConn) writeNow(b []byte) (int, error) {
	if s.closed {
		return 0, s.opError("write", net.ErrClosed)
	}
	n := 0
	for n < len(b) {
		k, err := unix.Write(s.fd, b[n:])
		if k > 0 {
			n += k
		}
		switch err {
		case nil, unix.EINTR:
		case unix.EAGAIN:
			return n, nil
		default:
			return n, s.opError("write", os.NewSyscallError("write", err))
		}
	}
	return n, nil
}

// waitWritable blocks in ppoll(2) until the socket is writable or the write
// deadline passes.
func (s *sockConn) waitWritable() error {
	for {
		var ts *unix.Timespec
		if !s.wdl.IsZero() {
			d := time.Until(s.wdl)
			if d <= 0 {
				return s.opError("write", os.ErrDeadlineExceeded)
			}
			t := unix.NsecToTimespec(int64(d))
			ts = &t
		}
		pfd := [1]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
		_, e := unix.Ppoll(pfd[:], ts, nil)
		if e != nil && e != unix.EINTR {
			return s.opError("write", os.NewSyscallError("ppoll", e))
		}
		if pfd[0].Revents != 0 {
			return nil // writable, or an error the next write reports
		}
	}
}

// shutdownRead makes the socket readable with EOF (the epoll loop then
// finishes the client), unless it is closed already.
func (s *sockConn) shutdownRead() {
	s.mu.RLock()
	if !s.closed {
		unix.Shutdown(s.fd, unix.SHUT_RD)
	}
	s.mu.RUnlock()
}

func (s *sockConn) Close() error {
	if !s.detached {
		if s.tcp == nil {
			return nil
		}
		return s.tcp.Close()
	}
	s.mu.RLock()
	if !s.closed {
		unix.Shutdown(s.fd, unix.SHUT_RDWR) // wakes a writer waiting in ppoll
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return os.NewSyscallError("close", unix.Close(s.fd))
}

func (s *sockConn) LocalAddr() net.Addr {
	if !s.detached {
		return s.tcp.LocalAddr()
	}
	return s.laddr
}

func (s *sockConn) RemoteAddr() net.Addr {
	if !s.detached {
		return s.tcp.RemoteAddr()
	}
	return s.raddr
}

func (s *sockConn) SetDeadline(t time.Time) error {
	if !s.detached {
		return s.tcp.SetDeadline(t)
	}
	s.wdl = t
	return nil
}

func (s *sockConn) SetReadDeadline(t time.Time) error {
	if !s.detached {
		return s.tcp.SetReadDeadline(t)
	}
	return nil
}

func (s *sockConn) SetWriteDeadline(t time.Time) error {
	if !s.detached {
		return s.tcp.SetWriteDeadline(t)
	}
	s.wdl = t
	return nil
}

func (s *sockConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.laddr, Addr: s.raddr, Err: err}
}
