// Package calibrate measures what this machine can do at all: a bare
// websocket fan-out server (Server) that speaks just enough pomelo for the
// chatbench driver, with no chat logic beyond delivering, driven by the same
// driver and scenario shape as a real run; and the per-machine cache of those
// ceilings (Record, Cache) that every bench report compares itself with.
//
// The bare server uses the best technique we know for fan-out on loopback
// websockets, package wsout, the same as the reference server's: each push
// is encoded once and the same bytes go to every recipient; a push to an idle
// connection is written at once with one non-blocking writev, and a busy
// connection's writer goroutine swaps its whole queue out and writes it as
// one websocket message (many pomelo packages in one frame, one write
// syscall) with load-only coalescing. It keeps no statistics, checks no
// limits and has no timeouts beyond the writer's: what is left is the cost of
// the sockets themselves.
package calibrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/internal/wsout"
	"github.com/chatbench/chatbench/pomelo"
)

// Server is the bare fan-out server. One listener serves both the gate
// (queryEntry answers its own address) and the connector.
type Server struct {
	ln       net.Listener
	http     *http.Server
	host     string
	port     int
	dict     *pomelo.Dict
	hs       []byte // HANDSHAKE package with the dictionary
	hsNoDict []byte
	upgrader websocket.Upgrader
	out      wsout.Options // every connection's writer options (no counters, no kick)

	mu    sync.RWMutex
	rooms map[string]*room

	wg sync.WaitGroup
}

type room struct {
	mu      sync.Mutex
	members []*conn          // join order
	byName  map[string]*conn // name -> member
}

var writeBufferPool sync.Pool

// Listen starts a bare server on addr ("127.0.0.1:0" for a free port). Its
// writers take the reference server's defaults and never see the machine
// as saturated (Serve, the calibration process, probes the machine's load
// as the reference server does).
func Listen(addr string) (*Server, error) { return listen(addr, nil) }

func listen(addr string, load *wsout.Load) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	a := ln.Addr().(*net.TCPAddr)
	s := &Server{ln: ln, host: a.IP.String(), port: a.Port, dict: pomelo.NewDict(chatproto.Routes()), rooms: map[string]*room{}}
	s.out = wsout.Options{Load: load}.WithDefaults()
	s.upgrader = websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 16 << 10, WriteBufferPool: &writeBufferPool,
		CheckOrigin: func(*http.Request) bool { return true },
	}
	sys := &pomelo.ServerSys{Heartbeat: 3}
	s.dict.FillSys(sys)
	s.hs = handshake(sys)
	s.hsNoDict = handshake(&pomelo.ServerSys{Heartbeat: 3, UseDict: true, DictVersion: s.dict.Version()})
	s.http = &http.Server{Handler: http.HandlerFunc(s.serveWS), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

func handshake(sys *pomelo.ServerSys) []byte {
	body, _ := json.Marshal(pomelo.HandshakeResponse{Code: pomelo.CodeOK, Sys: sys})
	return pomelo.AppendPackage(nil, pomelo.Handshake, body)
}

// Addr is the host:port of the server (gate and connector).
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// Close stops the listener and closes every connection.
func (s *Server) Close() error {
	err := s.http.Close()
	s.mu.RLock()
	var all []*conn
	for _, r := range s.rooms {
		r.mu.Lock()
		all = append(all, r.members...)
		r.mu.Unlock()
	}
	s.mu.RUnlock()
	for _, c := range all {
		c.ws.Close()
	}
	s.wg.Wait()
	return err
}

// Serve runs a bare server on addr until ctx ends; ready gets its address.
// Like the reference server, its writers follow the machine's load
// (wsout.MachineLoad).
func Serve(ctx context.Context, addr string, ready func(addr string)) error {
	s, err := listen(addr, wsout.MachineLoad())
	if err != nil {
		return err
	}
	if ready != nil {
		ready(s.Addr())
	}
	<-ctx.Done()
	return s.Close()
}

// conn is one client connection.
type conn struct {
	s  *Server
	ws *websocket.Conn

	// reader goroutine only (name and qname: set before the first join,
	// read by other members under the room's lock)
	name  string
	qname []byte
	room  *room
	rid   string

	out wsout.Writer
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	c := &conn{s: s, ws: ws}
	c.out.Start(ws, &s.out)
	c.readLoop()
	c.out.Close(websocket.CloseNormalClosure, "")
	<-c.out.Done()
	if c.room != nil {
		s.leave(c)
	}
}

// enqueue hands a complete package (shared, read-only) to the writer.
func (c *conn) enqueue(pkt []byte) { _ = c.out.Enqueue(pkt) }

// framePool recycles read buffers (bytes.Buffer.ReadFrom reads a whole
// message into one, reusing its capacity).
var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (c *conn) readLoop() {
	handshook := false
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		buf := framePool.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		b := buf.Bytes()
		if err == nil {
			err = pomelo.ForEachPackage(b, 0, func(p pomelo.Package) error {
				switch p.Type {
				case pomelo.Handshake:
					handshook = true
					req, err := pomelo.ParseHandshakeRequest(p.Body)
					if err == nil && req.Sys.DictVersion == c.s.dict.Version() {
						c.enqueue(c.s.hsNoDict)
					} else {
						c.enqueue(c.s.hs)
					}
				case pomelo.HandshakeAck, pomelo.Heartbeat:
					if handshook {
						c.enqueue(pomelo.HeartbeatPackage)
					}
				case pomelo.Data:
					return c.data(p.Body)
				}
				return nil
			})
		}
		if buf.Cap() <= 64<<10 {
			framePool.Put(buf)
		}
		if err != nil {
			return
		}
	}
}

var errMessage = errors.New("calibrate: not a request")

func (c *conn) data(body []byte) error {
	m, rb, err := pomelo.ParseMessageRoute(body)
	if err != nil {
		return err
	}
	if m.Type != pomelo.Request && m.Type != pomelo.Notify {
		return errMessage
	}
	route := string(rb) // no allocation for the comparisons below
	if m.Compressed {
		route, _ = c.s.dict.Route(m.RouteCode)
	}
	var resp []byte
	switch route {
	case chatproto.RouteSend:
		resp = c.send(m.Body)
	case chatproto.RouteEnter:
		resp = c.enter(m.Body)
	case chatproto.RouteSwitch:
		resp = c.switchRoom(m.Body)
	case chatproto.RouteQueryEntry:
		resp = chatproto.AppendEntry(nil, c.s.host, c.s.port)
	default:
		resp = noRouteBody
	}
	if m.Type == pomelo.Request {
		out := pomelo.Message{Type: pomelo.Response, ID: m.ID, Body: resp}
		pkt, _ := pomelo.AppendData(make([]byte, 0, pomelo.HeaderLen+pomelo.MessageLen(&out)), &out)
		c.enqueue(pkt)
	}
	return nil
}

// The answers are constant: the driver reads only their codes.
var (
	okBody         = []byte(`{}`)
	failBody       = chatproto.AppendError(nil, chatproto.CodeFailed, "")
	badRequestBody = chatproto.AppendError(nil, chatproto.CodeBadRequest, "")
	notInRoomBody  = chatproto.AppendError(nil, chatproto.CodeNotInRoom, "")
	noRouteBody    = chatproto.AppendError(nil, chatproto.CodeNoRoute, "")
)

// send: onChat {msg, from, target} encoded once, to the room or the target.
func (c *conn) send(body []byte) []byte {
	r := c.room
	if r == nil {
		return notInRoomBody
	}
	var content, target []byte
	topFields(body, func(k, v []byte) {
		switch string(k) {
		case "content":
			content = v
		case "target":
			target = v
		}
	})
	if len(content) == 0 || content[0] != '"' {
		return badRequestBody
	}
	all := len(target) == 0 || string(target) == `"*"` || string(target) == `""`
	if all {
		target = []byte(`"*"`)
	}
	n := len(`{"msg":,"from":,"target":}`) + len(content) + len(c.qname) + len(target)
	size := 2 + len(chatproto.PushChat) + n // flag, route length, route, body
	pkt := make([]byte, 0, pomelo.HeaderLen+size)
	pkt = pomelo.AppendPackageHeader(pkt, pomelo.Data, size)
	pkt = append(pkt, byte(pomelo.Push)<<1, byte(len(chatproto.PushChat)))
	pkt = append(pkt, chatproto.PushChat...)
	pkt = append(pkt, `{"msg":`...)
	pkt = append(pkt, content...)
	pkt = append(pkt, `,"from":`...)
	pkt = append(pkt, c.qname...)
	pkt = append(pkt, `,"target":`...)
	pkt = append(pkt, target...)
	pkt = append(pkt, '}')
	if all {
		r.mu.Lock()
		ms := r.members
		c.s.out.Fanout(len(ms), func(lo, hi int) { // the reference server's fan-out
			for _, x := range ms[lo:hi] {
				x.enqueue(pkt)
			}
		})
		r.mu.Unlock()
		return okBody
	}
	name, _ := unquote(target)
	r.mu.Lock()
	x := r.byName[name]
	if x != nil {
		x.enqueue(pkt)
	}
	r.mu.Unlock()
	if x == nil {
		return failBody
	}
	return okBody
}

func (c *conn) enter(body []byte) []byte {
	var req struct {
		Username string `json:"username"`
		RID      string `json:"rid"`
	}
	if json.Unmarshal(body, &req) != nil || req.Username == "" || req.RID == "" || c.room != nil {
		return badRequestBody
	}
	users, ok := c.s.join(c, req.RID, req.Username)
	if !ok {
		c.name, c.qname = "", nil // never visible: the join failed
		return failBody
	}
	return users
}

func (c *conn) switchRoom(body []byte) []byte {
	var req struct {
		RID string `json:"rid"`
	}
	if json.Unmarshal(body, &req) != nil || req.RID == "" || c.room == nil || req.RID == c.rid {
		return badRequestBody
	}
	old, oldRID := c.room, c.rid
	users, ok := c.s.join(c, req.RID, c.name)
	if !ok {
		return failBody
	}
	newRoom, newRID := c.room, c.rid
	c.room, c.rid = old, oldRID
	c.s.leave(c)
	c.room, c.rid = newRoom, newRID
	return users
}

// join adds c as name to room rid, pushes onAdd to the members already in
// (not to c: stock pomelo tells the newcomer nothing of itself) and
// returns the {"users":[...]} body. It sets c.room and c.rid.
func (s *Server) join(c *conn, rid, name string) ([]byte, bool) {
	if c.name == "" {
		c.name = name // before c is visible in any room; never changes after
		c.qname = pomelo.AppendJSONString(nil, name)
	}
	for {
		r := s.roomOf(rid)
		if r == nil {
			s.mu.Lock()
			if r = s.rooms[rid]; r == nil {
				r = &room{byName: map[string]*conn{}}
				s.rooms[rid] = r
			}
			s.mu.Unlock()
		}
		r.mu.Lock()
		if s.roomOf(rid) != r { // emptied and removed meanwhile
			r.mu.Unlock()
			continue
		}
		if r.byName[name] != nil {
			r.mu.Unlock()
			return nil, false
		}
		r.byName[name] = c
		r.members = append(r.members, c)
		c.room, c.rid = r, rid
		pkt := userPush(chatproto.PushAdd, name)
		users := []byte(`{"users":[`)
		for i, x := range r.members {
			if x != c {
				x.enqueue(pkt)
			}
			if i > 0 {
				users = append(users, ',')
			}
			users = pomelo.AppendJSONString(users, x.name)
		}
		r.mu.Unlock()
		return append(users, "]}"...), true
	}
}

func (s *Server) roomOf(rid string) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[rid]
}

// leave removes c from its room and pushes onLeave to the rest.
func (s *Server) leave(c *conn) {
	r, rid := c.room, c.rid
	c.room, c.rid = nil, ""
	r.mu.Lock()
	delete(r.byName, c.name)
	for i, x := range r.members {
		if x == c {
			r.members = append(r.members[:i], r.members[i+1:]...)
			break
		}
	}
	if len(r.members) > 0 {
		pkt := userPush(chatproto.PushLeave, c.name)
		for _, x := range r.members {
			x.enqueue(pkt)
		}
	} else {
		s.mu.Lock()
		if s.rooms[rid] == r {
			delete(s.rooms, rid)
		}
		s.mu.Unlock()
	}
	r.mu.Unlock()
}

func userPush(route, name string) []byte {
	body := chatproto.AppendUserPush(nil, route, name)
	pkt, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Push, Route: route, Body: body})
	return pkt
}
