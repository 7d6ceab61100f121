// Package server assembles the single-process reference chat server: a gate,
// one or more connectors and the rooms in one process, plus the HTTP port
// with the chat page, /healthz, /metrics and /config.json.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/internal/httpserve"
	"github.com/chatbench/chatbench/server/chat"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/gate"
	"github.com/chatbench/chatbench/server/metrics"
	"github.com/chatbench/chatbench/server/room"
)

// Default addresses, as in pomelo's chat demo.
const (
	DefaultHost          = "127.0.0.1"
	DefaultGatePort      = 3014
	DefaultConnectorPort = 3050
	DefaultHTTPPort      = 3001
)

// Options configure a single-process server. Zero values mean defaults; for
// ports, 0 means the default port and -1 a random free port.
type Options struct {
	ID            string // server id for metrics and logs; default "chatbench"
	Host          string // listen host; default 127.0.0.1
	AdvertiseHost string // host that queryEntry hands out; default Host
	GatePort      int    // default 3014
	ConnectorPort int    // first connector's port, the others follow; default 3050
	Connectors    int    // connector listeners in this process; default 1
	HTTPPort      int    // page, /healthz, /metrics; default 3001

	Connector connector.Options // heartbeat, limits, queue caps (ID, Routes, Metrics, Logger are set here)
	Chat      chat.Limits
	Rooms     room.Limits
	Web       http.Handler // the chat page mounted at "/"; nil serves a plain notice
	Logger    *slog.Logger // nil: discard

	// DeliveryWork, for tests of the regression gate only, adds about this
	// much CPU work to every message delivered to a session (a fixed number
	// of loop iterations, calibrated once at Start): a known slowdown. 0: none.
	DeliveryWork time.Duration
}

// Server is a running single-process server.
type Server struct {
	GateAddr       string   // host:port of the gate websocket
	ConnectorAddrs []string // host:port of each connector websocket
	HTTPAddr       string   // host:port of the HTTP port

	opts       Options
	log        *slog.Logger
	metrics    *metrics.Set
	backend    *chat.Local
	gate       *connector.Frontend
	connectors []*connector.Frontend
	http       httpserve.Group
}

func port(p, def int) int {
	switch p {
	case 0:
		return def
	case -1:
		return 0
	}
	return p
}

// Start listens on every port and serves until Shutdown.
func Start(opts Options) (*Server, error) {
	if opts.ID == "" {
		opts.ID = "chatbench"
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if opts.AdvertiseHost == "" {
		opts.AdvertiseHost = opts.Host
	}
	if opts.Connectors == 0 {
		opts.Connectors = 1
	}
	if opts.Connectors < 0 {
		return nil, fmt.Errorf("connectors: %d is negative", opts.Connectors)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger}
	out := opts.Connector.Options // its Load and NoFanout steer the broadcasts' fan-out
	s.backend = chat.NewLocal(opts.Rooms, out.Fanout)
	if opts.DeliveryWork < 0 {
		return nil, fmt.Errorf("delivery work: %v is negative", opts.DeliveryWork)
	}
	if opts.DeliveryWork > 0 {
		w := NewWork(opts.DeliveryWork)
		deliver := s.backend.Rooms.Deliver
		s.backend.Rooms.Deliver = func(e *connector.Session, rid, target string, pkt []byte) {
			w.Do()
			deliver(e, rid, target, pkt)
		}
	}
	s.metrics = metrics.New(opts.ID,
		func() float64 { return float64(s.backend.Rooms.Registry.Len()) },
		func() float64 { return float64(s.backend.Rooms.Registry.Stats().Members) })

	fo := opts.Connector
	fo.Routes = chatproto.Routes()
	fo.Metrics = s.metrics
	fo.Logger = opts.Logger

	var listeners []net.Listener
	fail := func(err error) (*Server, error) {
		for _, l := range listeners {
			l.Close()
		}
		return nil, err
	}
	listen := func(what string, p int) (net.Listener, error) {
		l, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(p)))
		if err != nil {
			return nil, fmt.Errorf("listen for %s: %w", what, err)
		}
		listeners = append(listeners, l)
		return l, nil
	}

	gl, err := listen("the gate", port(opts.GatePort, DefaultGatePort))
	if err != nil {
		return fail(err)
	}
	s.GateAddr = gl.Addr().String()
	var entries []gate.Entry
	connLs := make([]net.Listener, 0, opts.Connectors)
	for i := range opts.Connectors {
		p := port(opts.ConnectorPort, DefaultConnectorPort)
		if p != 0 {
			p += i
		}
		l, err := listen(fmt.Sprintf("connector %d", i+1), p)
		if err != nil {
			return fail(err)
		}
		connLs = append(connLs, l)
		addr := l.Addr().(*net.TCPAddr)
		s.ConnectorAddrs = append(s.ConnectorAddrs, addr.String())
		entries = append(entries, gate.Entry{ID: fmt.Sprintf("connector-%d", i+1), Host: opts.AdvertiseHost, Port: addr.Port})
	}
	hl, err := listen("HTTP", port(opts.HTTPPort, DefaultHTTPPort))
	if err != nil {
		return fail(err)
	}
	s.HTTPAddr = hl.Addr().String()

	gateOpts := fo
	gateOpts.ID = opts.ID + "/gate"
	s.gate = connector.New(gateOpts, &gate.Handler{Connectors: func() []gate.Entry { return entries }})
	s.serve(gl, s.gate)
	handler := chat.NewHandler(s.backend, opts.Chat)
	for i, l := range connLs {
		co := fo
		co.ID = entries[i].ID
		f := connector.New(co, handler)
		s.connectors = append(s.connectors, f)
		s.serve(l, f)
	}
	s.serve(hl, s.httpHandler())
	s.log.Info("serving", "gate", s.GateAddr, "connectors", s.ConnectorAddrs, "http", s.HTTPAddr)
	return s, nil
}

func (s *Server) serve(l net.Listener, h http.Handler) { s.http.Serve(l, h, s.log) }

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","connections":%d,"rooms":%d}`+"\n",
			s.metrics.Connections.Load(), s.backend.Rooms.Registry.Len())
	})
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.Handle("GET /config.json", gate.ConfigHandler(s.GateAddr, s.opts.AdvertiseHost))
	if s.opts.Web != nil {
		mux.Handle("/", s.opts.Web)
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "chatbench reference chat server: gate websocket on %s\n", s.GateAddr)
		})
	}
	return mux
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *metrics.Set { return s.metrics }

// Rooms returns the in-process rooms (for tests and introspection).
func (s *Server) Rooms() *room.Registry[*connector.Session] { return s.backend.Rooms.Registry }

// Shutdown stops accepting, kicks every session ("server shutting down") so
// rooms drain with onLeave, and stops the HTTP servers, bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.http.Close() // closes listeners; hijacked websockets are ours to close
	var errs []error
	for _, f := range append([]*connector.Frontend{s.gate}, s.connectors...) {
		if err := f.Shutdown(ctx, "server shutting down"); err != nil {
			errs = append(errs, err)
		}
	}
	s.http.Wait()
	return errors.Join(errs...)
}

// Run starts the server and serves until ctx ends, then shuts down within 5 s.
func Run(ctx context.Context, opts Options) error {
	s, err := Start(opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}
