package client

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// Options configure a Fleet. Zero values mean the documented defaults.
type Options struct {
	ReadBufferSize   int           // websocket read buffer per client; default 512 (larger frames are read straight into pooled buffers)
	WriteBufferSize  int           // gorilla's pooled write buffer, used only for the frames it writes itself (a close answering a protocol error); the client's own frames go through its send path; default 4096
	HandshakeTimeout time.Duration // websocket + pomelo handshake; default 10s
	WriteTimeout     time.Duration // a client whose server takes no byte of its send backlog for this long fails (ErrSendStalled); default 10s
	RequestTimeout   time.Duration // a request without a response fails after this; default 30s
	MaxMessage       int64         // largest websocket message accepted; default 16 MiB
	// SendBacklog bounds the bytes a client queues while the kernel's send
	// buffer is full (writes never wait on the socket): a memory guard, past
	// which the client fails with ErrSendStalled. Default 4 MiB.
	SendBacklog int
	// SourceAddrs > 1 spreads connections round-robin over the local source
	// addresses 127.0.0.1 .. 127.0.0.N (each address has its own ~28k
	// ephemeral ports towards one server port). Only for loopback targets.
	SourceAddrs int
	// FirstSourceAddr moves that range to 127.0.0.F .. 127.0.0.F+N-1 (0 or
	// 1: from 127.0.0.1), so that driver processes on one machine can each
	// bind their own addresses (and ephemeral ports).
	FirstSourceAddr int
	// HandshakeBody replaces the default js-websocket handshake body.
	HandshakeBody []byte
	// Pollers is the number of epoll receive loops the fleet's clients share
	// (linux only; see poll_linux.go). 0 means GOMAXPROCS; a negative value
	// gives every client its own reader goroutine (gorilla's reader), as on
	// other systems (chatbench bench --pollers -1, for A/B measurements).
	Pollers int
	Logger  *slog.Logger
}

func (o *Options) defaults() {
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 512
	}
	if o.WriteBufferSize <= 0 {
		o.WriteBufferSize = 4096
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.SendBacklog <= 0 {
		o.SendBacklog = 4 << 20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Pollers == 0 {
		o.Pollers = runtime.GOMAXPROCS(0)
	}
}

var epoch = time.Now()

// Now is the fleet clock: monotonic nanoseconds since the process started. All
// timestamps of this package (Push.At, callbacks) use it.
func Now() int64 { return int64(time.Since(epoch)) }

// Fleet holds what all clients share.
type Fleet struct {
	opts   Options
	dialer websocket.Dialer
	wheel  *wheel
	bufs   sync.Pool // *[]byte frame buffers for reads and writes
	src    atomic.Uint32
	polls  pollers // epoll receive loops (linux)

	mu      sync.Mutex
	dicts   map[string]*pomelo.Dict // by dictVersion
	protos  map[string]*protoSet    // by protoVersion
	lastVer map[string]versions     // addr -> dictVersion, protoVersion last seen
}

// NewFleet returns a fleet; Close it to stop its heartbeat wheel.
func NewFleet(opts Options) *Fleet {
	opts.defaults()
	f := &Fleet{
		opts:    opts,
		dicts:   map[string]*pomelo.Dict{},
		protos:  map[string]*protoSet{},
		lastVer: map[string]versions{},
	}
	f.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	f.dialer = websocket.Dialer{
		HandshakeTimeout: opts.HandshakeTimeout,
		ReadBufferSize:   opts.ReadBufferSize,
		WriteBufferSize:  opts.WriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
		NetDialContext:   f.dialSock,
	}
	f.wheel = newWheel(f)
	return f
}

// Close stops the heartbeat wheel. It does not close the clients; a receive
// loop stops when its last client has closed.
func (f *Fleet) Close() {
	f.wheel.stop()
	f.polls.stop()
}

func (f *Fleet) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{}
	if n := f.opts.SourceAddrs; n > 1 || f.opts.FirstSourceAddr > 1 {
		first := uint32(max(f.opts.FirstSourceAddr, 1))
		i := f.src.Add(1) % uint32(max(n, 1))
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(first+i))}
	}
	return d.DialContext(ctx, network, addr)
}

func (f *Fleet) getBuf() *[]byte { return f.bufs.Get().(*[]byte) }

func (f *Fleet) putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // let an outsized buffer go
	}
	*b = (*b)[:0]
	f.bufs.Put(b)
}
