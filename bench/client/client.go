// Package client is one simulated pomelo client, built to be cheap: a fleet of
// thousands of them shares one dialer, one write-buffer pool, one read-buffer
// pool, one heartbeat wheel and (on linux) a few epoll receive loops, and a
// connected client owns no goroutine and no timer. Elsewhere, or with
// Options.Pollers < 0, each client owns one reader goroutine instead.
//
// A client asks the gate for its connector (QueryEntry: connect, request,
// close), connects there, shakes hands (dictionary-compressed or string routes,
// protobuf pushes when the server sends protos), answers heartbeats from the
// shared wheel, sends requests with ids and notifies, and hands every push to
// a callback on its receive loop with bodies that alias a shared buffer, so
// the receive path allocates nothing.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// Errors reported to request callbacks and close handlers.
var (
	ErrClosed           = errors.New("client: connection closed")
	ErrTimeout          = errors.New("client: request timed out")
	ErrHeartbeatTimeout = errors.New("client: server silent past the heartbeat timeout")
	ErrKicked           = errors.New("client: kicked by the server")
)

// HandshakeError is a server handshake answered with a code other than 200.
type HandshakeError struct{ Code int }

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("client: handshake refused with code %d", e.Code)
}

// Options configure a Fleet. Zero values mean the documented defaults.
type Options struct {
	ReadBufferSize   int           // websocket read buffer per client; default 512 (larger frames are read straight into pooled buffers)
	WriteBufferSize  int           // pooled write buffer size; default 4096
	HandshakeTimeout time.Duration // websocket + pomelo handshake; default 10s
	WriteTimeout     time.Duration // per write; default 10s
	RequestTimeout   time.Duration // a request without a response fails after this; default 30s
	MaxMessage       int64         // largest websocket message accepted; default 16 MiB
	// SourceAddrs > 1 spreads connections round-robin over the local source
	// addresses 127.0.0.1 .. 127.0.0.N (each address has its own ~28k
	// ephemeral ports towards one server port). Only for loopback targets.
	SourceAddrs int
	// HandshakeBody replaces the default js-websocket handshake body.
	HandshakeBody []byte
	// Pollers is the number of epoll receive loops the fleet's clients share
	// (linux only; see poll_linux.go). 0 means GOMAXPROCS, or the value of
	// the environment variable CHATBENCH_POLLERS when it is set (an A/B
	// switch for measurements); a negative value gives every client its own
	// reader goroutine (gorilla's reader), as on other systems.
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
		if n, err := strconv.Atoi(os.Getenv("CHATBENCH_POLLERS")); err == nil {
			o.Pollers = n
		}
	}
	if o.Pollers == 0 {
		o.Pollers = runtime.GOMAXPROCS(0)
	}
}

// Push is one server push. Route and Body alias a pooled buffer and are valid
// only during the callback. Proto is true when Body is a protobuf body (the
// server declared the route in its protos); ChatFields reads both forms.
type Push struct {
	Client *Client
	Route  []byte
	Body   []byte
	Proto  bool
	At     int64 // Now() when the frame carrying the push was read
}

// Handlers are the callbacks of a client. They run on its receive loop: on
// linux (Options.Pollers >= 0) that is an epoll loop shared by every client of
// the fleet assigned to it, so a handler that takes long delays the receive of
// all those clients, and one that blocks on another client's traffic (a
// blocking Call, a wait for a push) can deadlock the loop. Handlers must not
// block: record, count, hand work to another goroutine. The same holds for
// request Callbacks. One Handlers value is usually shared by a whole fleet.
type Handlers struct {
	Push   func(p *Push)
	Kick   func(c *Client, reason []byte)
	Closed func(c *Client, err error) // once, after the reader stops; err nil on a local Close
}

// Callback receives a response body (aliasing a shared buffer, valid only
// during the call) or an error. It runs on the receive loop (see Handlers: it
// must not block), or on the heartbeat wheel for timeouts, or on the caller
// for write errors.
type Callback func(body []byte, at int64, err error)

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
	lastVer map[string][2]string    // addr -> dictVersion, protoVersion last seen
}

// NewFleet returns a fleet; Close it to stop its heartbeat wheel.
func NewFleet(opts Options) *Fleet {
	opts.defaults()
	f := &Fleet{
		opts:    opts,
		dicts:   map[string]*pomelo.Dict{},
		protos:  map[string]*protoSet{},
		lastVer: map[string][2]string{},
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
	if n := f.opts.SourceAddrs; n > 1 {
		i := f.src.Add(1) % uint32(n)
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
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

// Client is one pomelo connection.
type Client struct {
	f      *Fleet
	h      *Handlers
	conn   *websocket.Conn
	addr   string
	dict   *pomelo.Dict
	protos *protoSet
	hb     time.Duration // server heartbeat interval, 0 = none

	wmu sync.Mutex // serializes writes

	pmu     sync.Mutex
	nextID  uint32
	pending []pending

	lastRecv atomic.Int64
	closed   atomic.Bool
	cause    atomic.Pointer[error] // why the client aborted, if it did
	done     chan struct{}
	rx       *rxState // receive state on an epoll loop; nil with a reader goroutine

	// ID and Data are free for the caller (the driver keeps its index here).
	ID   int32
	Data any
}

type pending struct {
	id    uint32
	sent  int64
	cb    Callback
	route string // to decode a protobuf response
}

// Addr is the host:port the client is connected to.
func (c *Client) Addr() string { return c.addr }

// LocalAddr is the client's end of the socket (see Options.SourceAddrs).
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Heartbeat is the heartbeat interval the server asked for (0: none).
func (c *Client) Heartbeat() time.Duration { return c.hb }

// Done is closed when the receive path has stopped (and the Closed handler is about to run).
func (c *Client) Done() <-chan struct{} { return c.done }

// Pending is the number of requests awaiting a response.
func (c *Client) Pending() int {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return len(c.pending)
}

// Dial connects to a connector (or any pomelo frontend) at addr and shakes
// hands; on success the client receives (on an epoll loop, or its reader
// goroutine) and heartbeats are on the wheel.
func (f *Fleet) Dial(ctx context.Context, addr string, h *Handlers) (*Client, error) {
	c, _, err := f.DialTimed(ctx, addr, h)
	return c, err
}

// Timing splits the cost of a Dial: the websocket connect (TCP + HTTP
// upgrade) and the pomelo handshake (handshake, answer, ack).
type Timing struct {
	Connect, Handshake time.Duration
}

// DialTimed is Dial that also reports how long each step took. When the
// error is a *StepError it says which step failed.
func (f *Fleet) DialTimed(ctx context.Context, addr string, h *Handlers) (*Client, Timing, error) {
	return f.DialAs(ctx, addr, h, 0)
}

// DialAs is DialTimed that sets the client's ID before its receive path
// starts: a handler may run for a push as soon as the handshake is done, on
// another goroutine, so an ID set after Dial returns would race with it.
func (f *Fleet) DialAs(ctx context.Context, addr string, h *Handlers, id int32) (*Client, Timing, error) {
	c, t, err := f.connect(ctx, addr, h)
	if err != nil {
		return nil, t, err
	}
	c.ID = id
	c.lastRecv.Store(Now())
	// The handshake response was the last read through gorilla: the server
	// sends nothing before the ack, and gorilla reads only when asked, so its
	// buffer holds no byte of a later frame; the kernel keeps whatever arrives
	// after the ack for the epoll loop (epoll_ctl reports a socket that is
	// readable when it is added, so data that arrived before is not missed).
	polled, err := f.polls.attach(f, c)
	if err != nil {
		c.conn.Close()
		return nil, t, &StepError{"handshake", fmt.Errorf("%s: %w", addr, err)}
	}
	if !polled {
		go c.readLoop()
	}
	f.wheel.add(c)
	return c, t, nil
}

// StepError says whether a dial failed at "connect" or "handshake".
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// connect dials and shakes hands synchronously; no goroutine is started.
func (f *Fleet) connect(ctx context.Context, addr string, h *Handlers) (*Client, Timing, error) {
	var t Timing
	if h == nil {
		h = &Handlers{}
	}
	t0 := time.Now()
	conn, _, err := f.dialer.DialContext(ctx, "ws://"+addr+"/", nil)
	t.Connect = time.Since(t0)
	if err != nil {
		return nil, t, &StepError{"connect", fmt.Errorf("%s: %w", addr, err)}
	}
	conn.SetReadLimit(f.opts.MaxMessage)
	c := &Client{f: f, h: h, conn: conn, addr: addr, done: make(chan struct{})}
	t1 := time.Now()
	err = c.handshake(ctx)
	t.Handshake = time.Since(t1)
	if err != nil {
		conn.Close()
		return nil, t, &StepError{"handshake", fmt.Errorf("%s: %w", addr, err)}
	}
	return c, t, nil
}

func (c *Client) handshake(ctx context.Context) error {
	f := c.f
	body := f.opts.HandshakeBody
	f.mu.Lock()
	ver := f.lastVer[c.addr]
	f.mu.Unlock()
	if body == nil {
		body = pomelo.DefaultHandshakeRequest()
		if ver[0] != "" || ver[1] != "" {
			req := pomelo.HandshakeRequest{Sys: &pomelo.ClientSys{
				Type: pomelo.ClientTypeJSWS, Version: pomelo.ClientVersionJS, RSA: json.RawMessage(`{}`),
				DictVersion: ver[0],
			}, User: json.RawMessage(`{}`)}
			if ver[1] != "" {
				req.Sys.ProtoVersion = json.RawMessage(ver[1]) // as the server sent it
			}
			body, _ = json.Marshal(req)
		}
	}
	deadline := time.Now().Add(f.opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetReadDeadline(deadline)
	defer c.conn.SetReadDeadline(time.Time{})
	if err := c.writePackage(pomelo.Handshake, body); err != nil {
		return err
	}
	var resp pomelo.HandshakeResponse
	for got := false; !got; {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return err
		}
		err = pomelo.ForEachPackage(msg, 0, func(p pomelo.Package) error {
			if p.Type != pomelo.Handshake || got {
				return nil
			}
			got = true
			return json.Unmarshal(p.Body, &resp)
		})
		if err != nil {
			return err
		}
	}
	if resp.Code != pomelo.CodeOK {
		return &HandshakeError{Code: resp.Code}
	}
	if err := c.adopt(resp.Sys); err != nil {
		return err
	}
	return c.write(pomelo.HandshakeAckPackage)
}

// adopt takes the dictionary, protos and heartbeat of a server handshake,
// sharing one parsed dictionary and proto set per version across the fleet.
func (c *Client) adopt(sys *pomelo.ServerSys) error {
	if sys == nil {
		return nil
	}
	f := c.f
	c.hb = time.Duration(sys.Heartbeat) * time.Second
	f.mu.Lock()
	defer f.mu.Unlock()
	ver := f.lastVer[c.addr]
	if sys.UseDict {
		if len(sys.Dict) > 0 || len(sys.RouteToCode) > 0 {
			d := f.dicts[sys.DictVersion]
			if d == nil || sys.DictVersion == "" {
				d = pomelo.DictFromHandshake(sys)
				if sys.DictVersion != "" {
					f.dicts[sys.DictVersion] = d
				}
			}
			c.dict = d
		} else if d := f.dicts[sys.DictVersion]; d != nil {
			c.dict = d
		} else {
			return fmt.Errorf("server uses dictionary %q without sending it", sys.DictVersion)
		}
		ver[0] = sys.DictVersion
	}
	if sys.UseProto {
		ps, pv, err := f.adoptProtos(sys.Protos, ver[1])
		if err != nil {
			return err
		}
		c.protos = ps
		ver[1] = pv
	}
	f.lastVer[c.addr] = ver
	return nil
}

// QueryEntry asks the gate at gateAddr which connector serves uid (connect,
// handshake, gate.gateHandler.queryEntry, close) and returns its host:port.
func (f *Fleet) QueryEntry(ctx context.Context, gateAddr, uid string) (string, error) {
	c, _, err := f.connect(ctx, gateAddr, nil)
	if err != nil {
		return "", err
	}
	defer c.conn.Close()
	body, _ := json.Marshal(map[string]string{"uid": uid})
	resp, err := c.syncRequest(ctx, "gate.gateHandler.queryEntry", body)
	if err != nil {
		return "", fmt.Errorf("queryEntry at %s: %w", gateAddr, err)
	}
	var r struct {
		Code    int    `json:"code"`
		Host    string `json:"host"`
		Port    int    `json:"port"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return "", fmt.Errorf("queryEntry at %s: %w", gateAddr, err)
	}
	if r.Code != pomelo.CodeOK || r.Port == 0 {
		return "", &ResponseError{Route: "gate.gateHandler.queryEntry", Code: r.Code, Message: r.Message}
	}
	host := r.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host, _, _ = net.SplitHostPort(gateAddr)
	}
	c.writeClose()
	return net.JoinHostPort(host, strconv.Itoa(r.Port)), nil
}

// syncRequest sends one request and reads until its response, before the
// reader goroutine exists (used for the short-lived gate connection).
func (c *Client) syncRequest(ctx context.Context, route string, body []byte) ([]byte, error) {
	c.pmu.Lock()
	c.nextID++
	id := c.nextID
	c.pmu.Unlock()
	if err := c.send(pomelo.Request, id, route, body); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(c.f.opts.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetReadDeadline(deadline)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		var out []byte
		err = pomelo.ForEachPackage(msg, 0, func(p pomelo.Package) error {
			switch p.Type {
			case pomelo.Data:
				m, err := pomelo.ParseMessage(p.Body)
				if err != nil {
					return err
				}
				if m.Type == pomelo.Response && m.ID == id {
					out = m.Body
				}
			case pomelo.Kick:
				return fmt.Errorf("%w: %s", ErrKicked, p.Body)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if out != nil {
			return out, nil
		}
	}
}

// Request sends a request; cb gets the response (or an error) later without a
// goroutine of its own. It returns the write error, in which case cb is not called.
func (c *Client) Request(route string, body []byte, cb Callback) error {
	if c.closed.Load() {
		return ErrClosed
	}
	now := Now()
	c.pmu.Lock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	id := c.nextID
	c.pending = append(c.pending, pending{id: id, sent: now, cb: cb, route: route})
	c.pmu.Unlock()
	if err := c.send(pomelo.Request, id, route, body); err != nil {
		c.takePending(id)
		return err
	}
	return nil
}

// Call is a blocking Request for control-plane calls; it returns a copy of the body.
func (c *Client) Call(ctx context.Context, route string, body []byte) ([]byte, error) {
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	err := c.Request(route, body, func(b []byte, _ int64, err error) {
		ch <- result{append([]byte(nil), b...), err}
	})
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err == nil {
			if e := ParseError(route, r.body); e != nil {
				return r.body, e
			}
		}
		return r.body, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Notify sends a notify (no response).
func (c *Client) Notify(route string, body []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return c.send(pomelo.Notify, 0, route, body)
}

func (c *Client) send(t pomelo.MessageType, id uint32, route string, body []byte) error {
	if c.protos.hasClient(route) {
		pb, err := c.protos.p.EncodeClient(route, body)
		if err != nil {
			return err
		}
		body = pb
	}
	m := pomelo.Message{Type: t, ID: id, Route: route, Body: body}
	if code, ok := c.dict.Code(route); ok {
		m.Compressed, m.RouteCode, m.Route = true, code, ""
	}
	bp := c.f.getBuf()
	b, err := pomelo.AppendData((*bp)[:0], &m)
	if err == nil {
		err = c.write(b)
	}
	*bp = b
	c.f.putBuf(bp)
	return err
}

func (c *Client) writePackage(t pomelo.PackageType, body []byte) error {
	bp := c.f.getBuf()
	b := pomelo.AppendPackage((*bp)[:0], t, body)
	err := c.write(b)
	*bp = b
	c.f.putBuf(bp)
	return err
}

func (c *Client) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(c.f.opts.WriteTimeout))
	if err := c.conn.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		return fmt.Errorf("write to %s: %w", c.addr, err)
	}
	return nil
}

func (c *Client) writeClose() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// Close sends a websocket close frame and closes the socket (a pomelo server
// treats it as the member leaving). The Closed handler then runs with a nil error.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.writeClose()
	return c.stopReceive()
}

// abort closes the socket after an error seen outside the receive path.
func (c *Client) abort(err error) {
	if c.closed.CompareAndSwap(false, true) {
		c.cause.Store(&err)
		c.f.opts.Logger.Debug("client abort", "addr", c.addr, "err", err)
		c.stopReceive()
	}
}

// stopReceive makes the receive path stop after closed was set: a reader
// goroutine's read fails on the closed socket; an epoll loop, which alone
// closes the sockets it polls (so it never reads a reused descriptor), is
// woken by shutting the socket's read side and then finishes the client.
func (c *Client) stopReceive() error {
	if c.rx != nil {
		c.rx.wake()
		return nil
	}
	return c.conn.Close()
}

func (c *Client) takePending(id uint32) (pending, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for i := range c.pending {
		if c.pending[i].id == id {
			p := c.pending[i]
			last := len(c.pending) - 1
			c.pending[i] = c.pending[last]
			c.pending[last] = pending{}
			c.pending = c.pending[:last]
			if len(c.pending) == 0 && cap(c.pending) > 8 {
				c.pending = nil
			}
			return p, true
		}
	}
	return pending{}, false
}

// expire fails requests older than the request timeout (run by the wheel).
func (c *Client) expire(now int64) {
	limit := int64(c.f.opts.RequestTimeout)
	var dead []pending
	c.pmu.Lock()
	for i := 0; i < len(c.pending); {
		if now-c.pending[i].sent > limit {
			dead = append(dead, c.pending[i])
			last := len(c.pending) - 1
			c.pending[i] = c.pending[last]
			c.pending[last] = pending{}
			c.pending = c.pending[:last]
			continue
		}
		i++
	}
	c.pmu.Unlock()
	for _, p := range dead {
		p.cb(nil, now, ErrTimeout)
	}
}

func (c *Client) readLoop() {
	var err error
	push := Push{Client: c}
	for {
		var r io.Reader
		_, r, err = c.conn.NextReader()
		if err != nil {
			break
		}
		bp := c.f.getBuf()
		*bp, err = readAll(r, *bp)
		if err != nil {
			c.f.putBuf(bp)
			break
		}
		now := Now()
		c.lastRecv.Store(now)
		push.At = now
		err = pomelo.ForEachPackage(*bp, 0, func(p pomelo.Package) error {
			return c.handle(p, &push)
		})
		c.f.putBuf(bp)
		if err != nil {
			break
		}
	}
	c.finish(err)
}

// finish is the end of a receive path: the socket closed, pending requests
// failed, done closed and the Closed handler called, once. err is what
// stopped the receive: nil is reported for a local Close (unless the server
// kicked), the cause for an abort, ErrClosed otherwise.
func (c *Client) finish(err error) {
	local := c.closed.Swap(true)
	if cause := c.cause.Load(); cause != nil {
		err, local = *cause, false
	}
	c.conn.Close()
	c.f.wheel.remove(c)
	c.pmu.Lock()
	dead := c.pending
	c.pending = nil
	c.pmu.Unlock()
	for _, p := range dead {
		p.cb(nil, Now(), ErrClosed)
	}
	if local && !errors.Is(err, ErrKicked) {
		err = nil
	} else if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
		err = fmt.Errorf("%w by the server: code %d %q", ErrClosed, ce.Code, ce.Text)
	} else if err == nil {
		err = ErrClosed
	}
	close(c.done)
	if c.h.Closed != nil {
		c.h.Closed(c, err)
	}
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	b = b[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (c *Client) handle(p pomelo.Package, push *Push) error {
	switch p.Type {
	case pomelo.Data:
		return c.handleData(p.Body, push)
	case pomelo.Heartbeat, pomelo.Handshake:
		return nil
	case pomelo.Kick:
		if c.h.Kick != nil {
			c.h.Kick(c, p.Body)
		}
		return fmt.Errorf("%w: %s", ErrKicked, p.Body)
	}
	return nil
}

// handleData decodes a DATA message without allocating: string routes stay
// byte slices, compressed ones resolve to the dictionary's strings.
func (c *Client) handleData(b []byte, push *Push) error {
	if len(b) < 1 {
		return pomelo.ErrShort
	}
	flag := b[0]
	typ := pomelo.MessageType(flag >> 1 & 0x07)
	off := 1
	switch typ {
	case pomelo.Response:
		var id uint32
		for shift := 0; ; shift += 7 {
			if off >= len(b) || shift > 28 {
				return fmt.Errorf("%w: response id", pomelo.ErrMessage)
			}
			id |= uint32(b[off]&0x7f) << shift
			off++
			if b[off-1]&0x80 == 0 {
				break
			}
		}
		if p, ok := c.takePending(id); ok {
			body := b[off:]
			if c.protos != nil && c.protos.server[p.route] {
				js, err := c.protos.p.DecodeServer(p.route, body)
				if err != nil {
					p.cb(nil, push.At, err)
					return nil
				}
				body = js
			}
			p.cb(body, push.At, nil)
		}
		return nil
	case pomelo.Push:
		var route []byte
		if flag&0x01 != 0 {
			if len(b) < 3 {
				return pomelo.ErrShort
			}
			r, ok := c.dict.Route(uint16(b[1])<<8 | uint16(b[2]))
			if !ok {
				return nil // unknown push route: ignore, as the JS client would
			}
			route = unsafeBytes(r)
			off = 3
		} else {
			if len(b) < 2 || len(b) < 2+int(b[1]) {
				return pomelo.ErrShort
			}
			route = b[2 : 2+int(b[1])]
			off = 2 + int(b[1])
		}
		push.Route = route
		push.Body = b[off:]
		push.Proto = c.protos.hasServer(route)
		if c.h.Push != nil {
			c.h.Push(push)
		}
		return nil
	}
	return nil // requests and notifies from a server: ignore
}

// ResponseError is a pomelo error response: {"code":N,"error":true,...} or a
// code other than 200.
type ResponseError struct {
	Route   string
	Code    int
	Message string
}

func (e *ResponseError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: code %d: %s", e.Route, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: code %d", e.Route, e.Code)
}

// ParseError returns a *ResponseError when body is an error response.
func ParseError(route string, body []byte) error {
	code, ok := ResponseCode(body)
	if !ok || code == pomelo.CodeOK {
		return nil
	}
	var r struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &r)
	return &ResponseError{Route: route, Code: code, Message: r.Message}
}
