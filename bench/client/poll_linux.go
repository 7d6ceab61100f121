package client

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The epoll receive path. A reader goroutine per client costs, per frame, a
// netpoll wake-up, a goroutine switch and a read that ends in EAGAIN; here K
// loops per fleet (Options.Pollers) each own an epoll instance and a 64 KiB
// buffer, and a client is a registration plus an rxState.
//
// After the pomelo handshake a client's socket is registered (edge-triggered
// EPOLLIN) with one loop, round robin. The loop waits through the Go
// netpoller: its epoll descriptor is itself pollable, so the loop goroutine
// parks only when no socket of its own is ready (one park per batch of
// events, not per frame) and holds no OS thread while it waits. For each ready
// socket it does non-blocking read(2)s into the shared buffer until one is
// shorter than the space offered (the socket is drained, so there is no read
// that ends in EAGAIN); edge triggering spares epoll_wait re-polling every
// socket it reported (level triggering re-queues each one and tcp_poll()s it
// again on the next wait). Frames are parsed in place (parseFrames); an
// incomplete frame is carried in a pooled buffer until the rest arrives.
//
// Writes (requests, heartbeats, pongs, close) still go through gorilla, on a
// net.Conn of our own (sockConn) that takes the socket out of Go's netpoller
// at registration; see sockconn_linux.go for why.
//
// Descriptor lifetime: only the loop closes a socket it polls (finish, after
// EPOLL_CTL_DEL), and it reads only sockets it has not closed, so it can never
// read a reused descriptor number. Close and abort on other goroutines set
// closed and shut the socket's read side (under the sockConn's lock, which
// the close takes exclusively), which makes the socket readable with EOF;
// the loop then finishes the client.

const (
	pollBufSize = 64 << 10
	pollEvents  = 256
	wakeSlot    = -1 // event data of the loop's wake pipe
)

// pollers is the fleet's set of receive loops, started at the first attach.
type pollers struct {
	once    sync.Once
	loops   []*poller
	err     error
	next    atomic.Uint32
	stopped atomic.Bool
}

type poller struct {
	f      *Fleet
	epfd   int
	file   *os.File // epfd as a pollable file
	rc     syscall.RawConn
	wakeR  int // pipe: Fleet.Close wakes the loop
	wakeW  int
	events []unix.EpollEvent
	nev    int
	ready  []*Client
	hup    []bool // of ready: the event reported the end of the stream or an error
	buf    []byte
	push   Push
	waitFn func(fd uintptr) bool

	mu       sync.Mutex
	slots    []*Client
	gens     []int32
	free     []int32
	n        int  // clients registered
	stopping bool // the fleet closed: exit when n is 0
	exited   bool
}

// attach registers c's socket with a receive loop. It returns false (and no
// error) when c should use a reader goroutine instead.
func (ps *pollers) attach(f *Fleet, c *Client) (bool, error) {
	if f.opts.Pollers < 0 || ps.stopped.Load() {
		return false, nil
	}
	sc, ok := c.conn.NetConn().(*sockConn)
	if !ok {
		return false, nil
	}
	ps.once.Do(func() { ps.start(f) })
	if ps.err != nil {
		f.opts.Logger.Warn("epoll receive loops unavailable, using reader goroutines", "err", ps.err)
		return false, nil
	}
	if len(ps.loops) == 0 {
		return false, nil // the fleet closed before any loop started
	}
	p := ps.loops[int(ps.next.Add(1))%len(ps.loops)]
	return p.add(c, sc)
}

func (ps *pollers) start(f *Fleet) {
	for range f.opts.Pollers {
		p, err := newPoller(f)
		if err != nil {
			for _, p := range ps.loops {
				p.stop()
			}
			ps.loops, ps.err = nil, err
			return
		}
		ps.loops = append(ps.loops, p)
	}
	for _, p := range ps.loops {
		go p.run()
	}
}

// stop makes every loop exit once its last client has finished.
func (ps *pollers) stop() {
	if ps.stopped.Swap(true) {
		return
	}
	ps.once.Do(func() {}) // no loops after this
	for _, p := range ps.loops {
		p.stop()
	}
}

func newPoller(f *Fleet) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("pipe2", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		unix.Close(epfd)
		unix.Close(pipe[0])
		unix.Close(pipe[1])
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// non-blocking, so that os.NewFile registers it with the Go netpoller
	unix.SetNonblock(epfd, true)
	p := &poller{
		f: f, epfd: epfd, wakeR: pipe[0], wakeW: pipe[1],
		file:   os.NewFile(uintptr(epfd), "epoll"),
		events: make([]unix.EpollEvent, pollEvents),
		ready:  make([]*Client, pollEvents),
		hup:    make([]bool, pollEvents),
		buf:    make([]byte, pollBufSize),
	}
	p.rc, err = p.file.SyscallConn()
	if err != nil {
		p.close()
		return nil, err
	}
	p.waitFn = func(fd uintptr) bool {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd,
			uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
		if e != 0 || int(n) <= 0 {
			return false // EINTR included: wait again
		}
		p.nev = int(n)
		return true
	}
	return p, nil
}

func (p *poller) add(c *Client, sc *sockConn) (bool, error) {
	p.mu.Lock()
	if p.exited || p.stopping {
		p.mu.Unlock()
		return false, nil // still on the TCPConn: a reader goroutine takes it
	}
	var slot int32
	if k := len(p.free); k > 0 {
		slot, p.free = p.free[k-1], p.free[:k-1]
	} else {
		slot = int32(len(p.slots))
		p.slots = append(p.slots, nil)
		p.gens = append(p.gens, 0)
	}
	p.gens[slot]++
	rx := &rxState{p: p, sc: sc, fd: -1, slot: slot, gen: p.gens[slot]}
	p.n++ // the slot stays empty (no events) until the registration
	p.mu.Unlock()
	c.rx = rx
	err := sc.detach()
	if err == nil {
		fd := sc.fd
		rx.fd = fd
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: slot, Pad: rx.gen}
		p.mu.Lock()
		p.slots[slot] = c // the loop sees rx through this lock; rx is its own from here
		p.mu.Unlock()
		if err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			err = os.NewSyscallError("epoll_ctl", err)
		}
	}
	if err != nil {
		p.release(c)
		c.rx = nil
		return false, err // the caller closes the connection
	}
	return true, nil
}

// release frees c's slot; the loop exits after its last client when stopping.
func (p *poller) release(c *Client) {
	p.mu.Lock()
	p.slots[c.rx.slot] = nil
	p.free = append(p.free, c.rx.slot)
	p.n--
	if p.n == 0 && p.stopping {
		p.wake()
	}
	p.mu.Unlock()
}

// running is the number of loops that have not exited.
func (ps *pollers) running() int {
	if !ps.started() {
		return 0
	}
	n := 0
	for _, p := range ps.loops {
		p.mu.Lock()
		if !p.exited {
			n++
		}
		p.mu.Unlock()
	}
	return n
}

func (ps *pollers) started() bool {
	done := false
	ps.once.Do(func() { done = true }) // consumes the once when not started: no loop after this
	return !done
}

func (p *poller) stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.wake()
}

func (p *poller) wake() {
	var b = [1]byte{1}
	unix.Write(p.wakeW, b[:]) // EAGAIN: a wake is pending already
}

func (p *poller) close() {
	unix.Close(p.wakeR)
	unix.Close(p.wakeW)
	p.file.Close()
}

func (p *poller) run() {
	lastYield := Now()
	for {
		if err := p.rc.Read(p.waitFn); err != nil {
			p.f.opts.Logger.Error("epoll receive loop stopped", "err", err)
			return
		}
		if p.serve(p.nev) {
			p.close()
			return
		}
		// A loop that always finds events never parks, and with a loop
		// per P the driver's timers and senders would wait for the
		// runtime's 10 ms preemption: give way at least every yieldEvery.
		if now := Now(); now-lastYield >= int64(yieldEvery) {
			runtime.Gosched()
			lastYield = now
		}
	}
}

// yieldEvery bounds how long a busy receive loop keeps its P from the
// driver's timers and senders (a yield per batch cost about 8% more CPU).
const yieldEvery = time.Millisecond

// serve handles one batch of events; it returns true when the loop should exit.
func (p *poller) serve(n int) (exit bool) {
	woken := false
	p.mu.Lock()
	for i := range n {
		ev := &p.events[i]
		p.ready[i] = nil
		if ev.Fd == wakeSlot {
			woken = true
			continue
		}
		if c := p.slots[ev.Fd]; c != nil && p.gens[ev.Fd] == ev.Pad {
			p.ready[i] = c
			p.hup[i] = ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
		}
	}
	p.mu.Unlock()
	for i := range n {
		if c := p.ready[i]; c != nil {
			p.ready[i] = nil
			p.service(c, p.hup[i])
		}
	}
	if woken {
		var b [16]byte
		for {
			if k, _ := unix.Read(p.wakeR, b[:]); k <= 0 {
				break
			}
		}
		p.mu.Lock()
		exit = p.stopping && p.n == 0
		p.exited = exit
		p.mu.Unlock()
	}
	return exit
}

// service reads a ready socket until it is drained and consumes its complete
// frames. Edge-triggered: a read shorter than the space offered drained the
// socket (data arriving later is a new edge), unless the event also reported
// the end of the stream (hup), which a read of the last data does not return.
func (p *poller) service(c *Client, hup bool) {
	for p.readOnce(c, hup) {
	}
}

// readOnce does one read and returns whether to read again.
func (p *poller) readOnce(c *Client, hup bool) bool {
	rx := c.rx
	if c.closed.Load() {
		p.finish(c, nil)
		return false
	}
	var data []byte
	var n, want int
	var errno unix.Errno
	inCarry := false
	if rx.carry != nil && rx.need > len(p.buf)/2 {
		// a large frame: read straight into its own buffer
		cb := *rx.carry
		if cap(cb) < rx.need {
			nb := make([]byte, len(cb), rx.need)
			copy(nb, cb)
			cb = nb
		}
		want = cap(cb) - len(cb)
		n, errno = read(rx.fd, cb[len(cb):cap(cb)])
		data, inCarry = cb[:len(cb)+max(n, 0)], true
		*rx.carry = cb
	} else {
		k := 0
		if rx.carry != nil { // less than half the buffer
			k = copy(p.buf, *rx.carry)
		}
		want = len(p.buf) - k
		n, errno = read(rx.fd, p.buf[k:])
		data = p.buf[:k+max(n, 0)]
	}
	switch {
	case n == 0:
		p.finish(c, errEOF)
		return false
	case n < 0:
		switch errno {
		case unix.EAGAIN:
			return false // drained
		case unix.EINTR:
			return true
		}
		p.finish(c, &net.OpError{Op: "read", Net: "tcp", Source: c.conn.LocalAddr(), Addr: c.conn.RemoteAddr(),
			Err: os.NewSyscallError("read", errno)})
		return false
	}
	now := Now()
	c.lastRecv.Store(now)
	p.push.Client, p.push.At = c, now
	used, need, err := c.parseFrames(data, &p.push)
	p.push = Push{}
	rest := data[used:]
	switch {
	case len(rest) == 0:
		if rx.carry != nil {
			p.f.putBuf(rx.carry)
			rx.carry = nil
		}
	case inCarry: // move the rest to the front (data is *rx.carry grown by n)
		*rx.carry = data[:copy(data, rest)]
	default:
		if rx.carry == nil {
			rx.carry = p.f.getBuf()
		}
		*rx.carry = append((*rx.carry)[:0], rest...)
	}
	rx.need = need
	if err != nil {
		p.finish(c, err)
		return false
	}
	return n == want || hup
}

// finish deregisters and closes c's socket and runs the end of its receive
// path (Client.finish: pending requests, done, Closed).
func (p *poller) finish(c *Client, err error) {
	rx := c.rx
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, rx.fd, nil)
	if rx.carry != nil {
		p.f.putBuf(rx.carry)
		rx.carry = nil
	}
	if rx.msg != nil {
		p.f.putBuf(rx.msg)
		rx.msg = nil
	}
	if errors.Is(err, errLocalClose) {
		err = nil
	}
	p.release(c)
	rx.fd = -1
	c.finish(err) // closes the socket
}

// wake makes the loop notice that the client was closed locally: shutting the
// read side makes the socket readable (EOF). Under the sockConn's lock, so a
// socket the loop has closed meanwhile is not touched.
func (rx *rxState) wake() { rx.sc.shutdownRead() }

// read is a non-blocking read(2) without the allocation-free but heavier
// os/syscall wrappers: n < 0 with errno on error, 0 at EOF.
//
// It and the loop's epoll_wait (timeout 0) never block, so they are raw
// system calls: entersyscall would wake sysmon from its idle sleep after
// every quiet spell (back to its 20 µs tick) and let it hand the loop's P
// to another thread during a long read; both cost more than the calls.
func read(fd int, b []byte) (int, unix.Errno) {
	if len(b) == 0 {
		return -1, unix.EAGAIN
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}
