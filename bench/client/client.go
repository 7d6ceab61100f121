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
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

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

// Client is one pomelo connection.
type Client struct {
	f      *Fleet
	h      *Handlers
	conn   *websocket.Conn
	addr   string
	dict   *pomelo.Dict
	protos *protoSet
	hb     time.Duration // server heartbeat interval, 0 = none

	// the send path (outbox.go)
	w       tryWriter  // non-blocking writes once the receive path runs; nil before
	omu     sync.Mutex // guards backlog and werr, and orders the writes
	backlog *[]byte    // bytes the kernel did not take yet, written by flush; nil when empty
	werr    error      // the write error that failed the client

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

// Close sends a websocket close frame and closes the socket (a pomelo server
// treats it as the member leaving). The Closed handler then runs with a nil
// error. It never waits on the socket: behind a backlog the close frame
// queues, and closing the socket ends the backlog's write.
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
