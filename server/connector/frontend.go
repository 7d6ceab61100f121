// Package connector owns client websocket sessions of a pomelo front-end
// server: the handshake with the route dictionary, heartbeats and their
// timeout, request/notify decoding and per-connection limits; the outbound
// side of each session is an internal/wsout Writer. What a route does is not its
// business: a Handler (the gate, or the chat front-end) answers requests.
package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/internal/wsout"
	"github.com/chatbench/chatbench/pomelo"
	"github.com/chatbench/chatbench/server/metrics"
)

// Error is a request failure answered on the wire with a pomelo code.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("code %d: %s", e.Code, e.Message) }

// Errorf builds an *Error.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Handler answers the requests and notifies of sessions. Request runs on the
// session's reader goroutine and must not retain body after it returns (the
// read buffer is recycled); it returns the JSON response body, or an error
// (an *Error gives its code on the wire, any other error code 500). Closed
// runs once, on the same goroutine, after the session ended.
type Handler interface {
	Request(s *Session, route string, body []byte) ([]byte, error)
	Closed(s *Session)
}

// Options configure a Frontend. Zero values mean the documented defaults.
type Options struct {
	ID               string        // server id, for logs and metrics
	Heartbeat        time.Duration // interval announced in the handshake; default 3s; negative disables
	HeartbeatTimeout time.Duration // silence that closes a session; default 2 x Heartbeat
	HandshakeTimeout time.Duration // time to finish the handshake; default 10s
	MaxPackageBytes  int           // largest client frame/package; default 64 KiB
	// SendBufferBytes is each session socket's kernel send buffer
	// (SO_SNDBUF; Linux doubles it for bookkeeping). It bounds what a client
	// that stops reading pins in the kernel, and makes its queue, hence the
	// slow-consumer kick, start filling at once. Default DefaultSendBuffer;
	// negative: the kernel's autotuning (on loopback it grows to 2-4 MB).
	SendBufferBytes int
	RequestRate     float64      // requests+notifies per second per connection; default 200; negative: unlimited
	RequestBurst    int          // bucket size; default 2 x RequestRate (at least 20)
	Routes          []string     // server routes for the dictionary (the handler's routes)
	Metrics         *metrics.Set // nil: a private set
	Logger          *slog.Logger // nil: discard

	// Options configure every session's outbound writer, with wsout's
	// defaults: WriteTimeout (3s), MaxQueueBytes (4 MiB), MaxFrameBytes,
	// CoalesceMax, DirectWriteGap, FlushWindow, CloseTimeout, and Load (nil:
	// never saturated; the chatbench server sets wsout.MachineLoad).
	// SlowConsumerKick and Counters are set by New.
	wsout.Options
}

func (o *Options) setDefaults() {
	if o.Heartbeat == 0 {
		o.Heartbeat = 3 * time.Second
	}
	if o.HeartbeatTimeout == 0 && o.Heartbeat > 0 {
		o.HeartbeatTimeout = 2 * o.Heartbeat
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxPackageBytes == 0 {
		o.MaxPackageBytes = 64 << 10
	}
	if o.SendBufferBytes == 0 {
		o.SendBufferBytes = DefaultSendBuffer
	}
	if o.RequestRate == 0 {
		o.RequestRate = 200
	}
	if o.RequestBurst == 0 {
		o.RequestBurst = max(20, int(2*o.RequestRate))
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(o.ID, nil, nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultSendBuffer is the default SendBufferBytes: 128 KiB (256 KiB of
// kernel memory). The overload storm measured with it, 64 KiB, 256 KiB and
// the kernel's autotuning is in docs/benchmarks.md: 64 KiB costs
// throughput; 128 KiB is within the shared machine's spread of autotuning.
const DefaultSendBuffer = 128 << 10

// Frontend accepts websocket sessions and speaks pomelo on them.
type Frontend struct {
	opts      Options
	handler   Handler
	dict      *pomelo.Dict
	handshake []byte // full HANDSHAKE package with the dictionary
	hsNoDict  []byte // same, for clients that already hold our dictionary version
	metrics   *metrics.Set
	log       *slog.Logger
	upgrader  websocket.Upgrader
	out       wsout.Options // every session's writer

	nextID   atomic.Uint64
	mu       sync.Mutex
	sessions map[uint64]*Session
	draining bool
	wg       sync.WaitGroup
	stop     chan struct{} // ends the sweeper
	stopOnce sync.Once
}

var writeBufferPool sync.Pool

// New returns a Frontend serving h.
func New(opts Options, h Handler) *Frontend {
	opts.setDefaults()
	f := &Frontend{
		opts: opts, handler: h, dict: pomelo.NewDict(opts.Routes),
		metrics: opts.Metrics, log: opts.Logger, sessions: make(map[uint64]*Session),
		stop: make(chan struct{}),
	}
	go f.sweep()
	m := opts.Metrics
	out := opts.Options
	out.SlowConsumerKick = pomelo.AppendPackage(nil, pomelo.Kick, kickBody(wsout.SlowConsumerReason))
	out.Counters = &wsout.Counters{
		Frames: &m.FramesOut, Packages: &m.PackagesOut, Pushes: &m.PushesDelivered,
		Dropped: &m.PushesDropped, SlowConsumers: &m.SlowConsumers,
	}
	f.out = out.WithDefaults()
	f.opts.Options = f.out
	f.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 16 << 10,
		WriteBufferPool: &writeBufferPool,
		CheckOrigin:     func(*http.Request) bool { return true }, // pomelo clients come from any page
	}
	heartbeat := int(opts.Heartbeat / time.Second)
	if opts.Heartbeat < 0 {
		heartbeat = 0
	}
	sys := &pomelo.ServerSys{Heartbeat: heartbeat}
	f.dict.FillSys(sys)
	f.handshake = mustHandshake(sys)
	f.hsNoDict = mustHandshake(&pomelo.ServerSys{Heartbeat: heartbeat, UseDict: true, DictVersion: f.dict.Version()})
	return f
}

func mustHandshake(sys *pomelo.ServerSys) []byte {
	body, err := json.Marshal(pomelo.HandshakeResponse{Code: pomelo.CodeOK, Sys: sys})
	if err != nil {
		panic(err)
	}
	return pomelo.AppendPackage(nil, pomelo.Handshake, body)
}

// Dict is the route dictionary announced in handshakes.
func (f *Frontend) Dict() *pomelo.Dict { return f.dict }

// Options returns the effective options (defaults filled in).
func (f *Frontend) Options() Options { return f.opts }

// Sessions returns how many sessions are open.
func (f *Frontend) Sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

// ServeHTTP upgrades to a websocket and runs the session until it ends.
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := f.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered with an HTTP error
	}
	if f.opts.SendBufferBytes > 0 {
		if tc, ok := c.NetConn().(*net.TCPConn); ok {
			if err := tc.SetWriteBuffer(f.opts.SendBufferBytes); err != nil {
				f.log.Debug("SO_SNDBUF", "err", err)
			}
		}
	}
	s := newSession(f, f.nextID.Add(1), c)
	f.mu.Lock()
	if f.draining {
		f.mu.Unlock()
		s.Close(websocket.CloseGoingAway, "server shutting down")
		<-s.out.Done()
		return
	}
	f.sessions[s.ID] = s
	f.wg.Add(1)
	f.mu.Unlock()
	f.metrics.Connections.Add(1)
	defer func() {
		f.mu.Lock()
		delete(f.sessions, s.ID)
		f.mu.Unlock()
		f.metrics.Connections.Add(-1)
		f.wg.Done()
	}()
	s.readLoop()
	s.Close(websocket.CloseNormalClosure, "")
	<-s.out.Done()
	f.handler.Closed(s)
}

// Shutdown stops new sessions, kicks every open one with reason and waits for
// them to end (their Closed handlers to run) or for ctx.
func (f *Frontend) Shutdown(ctx context.Context, reason string) error {
	f.mu.Lock()
	f.draining = true
	f.stopOnce.Do(func() { close(f.stop) })
	open := make([]*Session, 0, len(f.sessions))
	for _, s := range f.sessions {
		open = append(open, s)
	}
	f.mu.Unlock()
	for _, s := range open {
		s.Kick(reason)
	}
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errClose ends the read loop; the session closes with code and reason.
type errClose struct {
	code   int
	reason string
}

func (e *errClose) Error() string { return e.reason }

func (s *Session) readLoop() {
	f := s.Frontend
	opts := &f.opts
	s.conn.SetReadLimit(int64(opts.MaxPackageBytes) + pomelo.HeaderLen)
	st := readState{tokens: float64(opts.RequestBurst), last: time.Now()}
	// No read deadlines: the frontend's sweeper closes silent sessions (see
	// sweep), which spares a timer re-arm per frame and does not mistake a
	// starved reader for a silent client.
	for {
		kind, frame, buf, err := s.readFrame()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				f.metrics.MalformedClosed.Add(1)
				s.Close(websocket.CloseMessageTooBig, fmt.Sprintf("frame larger than %d bytes", opts.MaxPackageBytes))
			}
			return
		}
		if kind != websocket.BinaryMessage {
			framePool.Put(buf)
			f.metrics.MalformedClosed.Add(1)
			s.Close(websocket.CloseUnsupportedData, "pomelo frames are binary")
			return
		}
		err = pomelo.ForEachPackage(frame, opts.MaxPackageBytes, func(p pomelo.Package) error {
			return s.handlePackage(&st, p)
		})
		framePool.Put(buf)
		if err != nil {
			var ec *errClose
			if !errors.As(err, &ec) {
				ec = &errClose{code: websocket.CloseProtocolError, reason: "malformed package: " + err.Error()}
			}
			if ec.code == websocket.CloseProtocolError {
				f.metrics.MalformedClosed.Add(1)
			}
			s.Close(ec.code, ec.reason)
			return
		}
		s.lastRead.Store(time.Now().UnixNano())
	}
}

// framePool recycles read buffers: an idle session holds none, and a busy
// one does not allocate a frame per read. Handlers never retain request
// bodies (see Handler), so a buffer is reusable once its frame is handled.
var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readFrame reads the next websocket message into a pooled buffer; the
// caller returns buf to framePool after handling frame.
func (s *Session) readFrame() (kind int, frame []byte, buf *bytes.Buffer, err error) {
	kind, r, err := s.conn.NextReader()
	if err != nil {
		return 0, nil, nil, err
	}
	s.lastRead.Store(time.Now().UnixNano()) // a frame has begun: the client is not silent
	buf = framePool.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		framePool.Put(buf)
		return 0, nil, nil, err
	}
	return kind, buf.Bytes(), buf, nil
}

type readState struct {
	handshook bool // client sent a valid HANDSHAKE
	acked     bool // client sent HANDSHAKE_ACK
	tokens    float64
	last      time.Time
	resp      []byte
}

func (s *Session) handlePackage(st *readState, p pomelo.Package) error {
	f := s.Frontend
	switch p.Type {
	case pomelo.Handshake:
		req, err := pomelo.ParseHandshakeRequest(p.Body)
		if err != nil {
			s.Enqueue(pomelo.AppendPackage(nil, pomelo.Handshake, []byte(`{"code":500}`)))
			return &errClose{code: websocket.CloseProtocolError, reason: err.Error()}
		}
		if st.handshook {
			return &errClose{code: websocket.CloseProtocolError, reason: "second handshake"}
		}
		st.handshook = true
		s.handshook.Store(true)
		if req.Sys.DictVersion != "" && req.Sys.DictVersion == f.dict.Version() {
			s.Enqueue(f.hsNoDict)
		} else {
			s.Enqueue(f.handshake)
		}
	case pomelo.HandshakeAck:
		if !st.handshook {
			return &errClose{code: websocket.CloseProtocolError, reason: "handshake ack before handshake"}
		}
		if !st.acked {
			st.acked = true
			if f.opts.Heartbeat > 0 {
				s.Enqueue(pomelo.HeartbeatPackage)
			}
		}
	case pomelo.Heartbeat:
		if st.acked && f.opts.Heartbeat > 0 {
			s.Enqueue(pomelo.HeartbeatPackage)
		}
	case pomelo.Data:
		if !st.acked {
			return nil // as pomelo: data before the handshake is ignored
		}
		return s.handleData(st, p.Body)
	default: // KICK from a client
		return &errClose{code: websocket.CloseProtocolError, reason: fmt.Sprintf("unexpected %s package from a client", p.Type)}
	}
	return nil
}

func (s *Session) handleData(st *readState, body []byte) error {
	f := s.Frontend
	msg, err := pomelo.ParseMessage(body)
	if err != nil {
		return err
	}
	if msg.Type != pomelo.Request && msg.Type != pomelo.Notify {
		return &errClose{code: websocket.CloseProtocolError, reason: fmt.Sprintf("unexpected %s message from a client", msg.Type)}
	}
	f.metrics.MessagesIn.Add(1)
	start := time.Now()
	route := msg.Route
	var out []byte
	var herr error
	if msg.Compressed {
		if r, ok := f.dict.Route(msg.RouteCode); ok {
			route = r
		} else {
			route = ""
			herr = Errorf(chatproto.CodeNoRoute, "unknown route code %d", msg.RouteCode)
		}
	}
	if herr == nil && !st.allow(start, &f.opts) {
		herr = Errorf(chatproto.CodeRateLimited, "more than %g requests per second on this connection", f.opts.RequestRate)
	}
	if herr == nil {
		out, herr = f.handler.Request(s, route, msg.Body)
	}
	code := 0
	if herr != nil {
		var e *Error
		if !errors.As(herr, &e) {
			e = &Error{Code: chatproto.CodeFailed, Message: herr.Error()}
		}
		code = e.Code
		out = errorBody(e)
	}
	metricRoute := route
	if _, known := f.dict.Code(route); !known {
		metricRoute = "unknown"
	}
	f.metrics.ObserveRequest(metricRoute, time.Since(start), code)
	if msg.Type == pomelo.Notify {
		return nil
	}
	resp := pomelo.Message{Type: pomelo.Response, ID: msg.ID, Body: out}
	pkt, err := pomelo.AppendData(make([]byte, 0, pomelo.HeaderLen+pomelo.MessageLen(&resp)), &resp)
	if err != nil {
		return err
	}
	s.Enqueue(pkt)
	return nil
}

// allow takes one token from the connection's request bucket.
func (st *readState) allow(now time.Time, o *Options) bool {
	if o.RequestRate < 0 {
		return true
	}
	st.tokens += now.Sub(st.last).Seconds() * o.RequestRate
	st.last = now
	if burst := float64(o.RequestBurst); st.tokens > burst {
		st.tokens = burst
	}
	if st.tokens < 1 {
		return false
	}
	st.tokens--
	return true
}

func errorBody(e *Error) []byte {
	return chatproto.AppendError(make([]byte, 0, 40+len(e.Message)), e.Code, e.Message)
}
