package wsout

import (
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkLoopbackFloor measures what every delivery costs the kernel here
// before any server or driver logic: one non-blocking writev of a 100-byte
// frame to each of 200 loopback TCP sockets, then one read of each, on one
// thread (no wake-ups, no epoll). It reports write-ns and read-ns per
// delivery: the floor under a delivery's CPU on this machine (docs/perf.md).
func BenchmarkLoopbackFloor(b *testing.B) {
	const conns = 200
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var ws, rs []int
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ws = append(ws, rawFD(b, s))
		rs = append(rs, rawFD(b, c))
	}
	frame := make([]byte, 100)
	rbuf := make([]byte, 64<<10)
	iov := [2]unix.Iovec{{Base: &frame[0]}}
	iov[0].SetLen(len(frame))
	var wt, rt time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, fd := range ws {
			if _, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2); e != 0 {
				b.Fatal(e)
			}
		}
		t1 := time.Now()
		for _, fd := range rs {
			if n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&rbuf[0])), uintptr(len(rbuf))); e != 0 || n != uintptr(len(frame)) {
				b.Fatalf("read %d bytes, errno %v", n, e)
			}
		}
		wt += t1.Sub(t0)
		rt += time.Since(t1)
	}
	n := float64(b.N * conns)
	b.ReportMetric(float64(wt.Nanoseconds())/n, "write-ns/delivery")
	b.ReportMetric(float64(rt.Nanoseconds())/n, "read-ns/delivery")
	b.ReportMetric(0, "ns/op")
}

// rawFD returns c's descriptor. The sockets stay non-blocking and in Go's
// netpoller; the raw calls simply do not go through it.
func rawFD(b *testing.B, c net.Conn) int {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	fd := -1
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}
