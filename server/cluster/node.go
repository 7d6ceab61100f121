package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/internal/httpserve"
	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/server/bus"
	"github.com/chatbench/chatbench/server/chat"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/gate"
	"github.com/chatbench/chatbench/server/metrics"
	"github.com/chatbench/chatbench/server/room"
)

// BusOptions tune the bus between connectors and shards. Zero values mean
// the defaults of package bus.
type BusOptions struct {
	RequestTimeout time.Duration // connector -> shard request; default 1.5s
	Heartbeat      time.Duration // connector liveness interval; default 500ms
	ConnTimeout    time.Duration // shard evicts a silent connector after this; default 2s
	Workers        int           // request workers per shard; default 4
}

// NodeOptions configure one server of a split cluster.
type NodeOptions struct {
	Topology *Topology
	Role, ID string
	NATS     []string // NATS URLs; default Topology.NATS
	// NATSAuth is how to authenticate to NATS and whether to use TLS (its
	// URLs are ignored: see NATS); its Prefix, when set, replaces
	// Topology.SubjectPrefix. The zero value: no credentials, no TLS.
	NATSAuth natsopts.Options

	Connector connector.Options // heartbeat, limits, queue caps (ID, Routes, Metrics, Logger are set here)
	Chat      chat.Limits
	Rooms     room.Limits // per shard
	Bus       BusOptions
	Web       http.Handler // the chat page on the gate's HTTP port; nil serves a notice
	Logger    *slog.Logger // nil: discard
}

// Node is one running server of a split cluster: a gate, a connector or a
// chat shard.
type Node struct {
	Role, ID   string
	ClientAddr string // websocket host:port (gate, connector)
	HTTPAddr   string // host:port of /healthz and /metrics ("" if none)
	Metrics    *metrics.Set

	Frontend *connector.Frontend // gate, connector
	Remote   *bus.Remote         // connector
	Shard    *bus.Shard          // chat

	nc   *nats.Conn
	log  *slog.Logger
	spec ServerSpec
	http httpserve.Group
}

// Connect dials NATS with the credentials and TLS of auth (its URLs are
// replaced by urls) and options for a latency-sensitive bus: no request
// path flush delays (nats.go flushes as soon as its writer is idle),
// reconnect forever with a short wait, and pings that notice a dead server
// in seconds. While reconnecting nothing is buffered: a publish fails at
// once, so a request answers 504 promptly and a push that cannot go out is
// counted as dropped instead of being lost later without a trace.
func Connect(urls []string, auth natsopts.Options, name string, log *slog.Logger) (*nats.Conn, error) {
	if len(urls) == 0 {
		return nil, errors.New("no NATS URL: give --nats or a topology with \"nats\"")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	auth.URLs = urls
	return auth.Connect(
		nats.Name(name),
		nats.Timeout(2*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(200*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("NATS async error", "subject", subj, "err", err)
		}),
	)
}

// StartNode starts the server o.Role/o.ID of o.Topology.
func StartNode(o NodeOptions) (*Node, error) {
	if o.Topology == nil {
		return nil, errors.New("no topology")
	}
	spec, err := o.Topology.Find(o.Role, o.ID)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.NATS) == 0 {
		o.NATS = o.Topology.NATS
	}
	if o.NATSAuth.Prefix == "" {
		o.NATSAuth.Prefix = o.Topology.SubjectPrefix
	}
	n := &Node{Role: o.Role, ID: o.ID, spec: spec, log: o.Logger}
	switch o.Role {
	case RoleGate:
		err = n.startGate(o)
	case RoleConnector:
		err = n.startConnector(o)
	case RoleChat:
		err = n.startShard(o)
	}
	if err != nil {
		n.close()
		return nil, fmt.Errorf("%s %s: %w", o.Role, o.ID, err)
	}
	n.log.Info("ready", "role", n.Role, "id", n.ID, "client", n.ClientAddr, "http", n.HTTPAddr)
	return n, nil
}

func listen(host string, port int) (net.Listener, error) {
	if port < 0 {
		port = 0
	}
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

func (n *Node) frontendOptions(o NodeOptions) connector.Options {
	fo := o.Connector
	fo.ID = o.ID
	fo.Routes = chatproto.Routes()
	fo.Metrics = n.Metrics
	fo.Logger = o.Logger
	return fo
}

// listenBoth opens the client and HTTP listeners (HTTP port 0: none).
func (n *Node) listenBoth(withClient bool) (client, web net.Listener, err error) {
	if withClient {
		if client, err = listen(n.spec.Host, n.spec.ClientPort); err != nil {
			return nil, nil, fmt.Errorf("listen for clients: %w", err)
		}
		n.ClientAddr = client.Addr().String()
	}
	if n.spec.HTTPPort != 0 {
		if web, err = listen(n.spec.Host, n.spec.HTTPPort); err != nil {
			if client != nil {
				client.Close()
			}
			return nil, nil, fmt.Errorf("listen for HTTP: %w", err)
		}
		n.HTTPAddr = web.Addr().String()
	}
	return client, web, nil
}

func (n *Node) startGate(o NodeOptions) error {
	entries, err := o.Topology.Entries()
	if err != nil {
		return err
	}
	n.Metrics = metrics.New(o.ID, nil, nil)
	cl, hl, err := n.listenBoth(true)
	if err != nil {
		return err
	}
	n.Frontend = connector.New(n.frontendOptions(o), &gate.Handler{Connectors: func() []gate.Entry { return entries }})
	n.serve(cl, n.Frontend)
	if hl != nil {
		mux := n.baseMux(func() string { return fmt.Sprintf(`"connections":%d`, n.Metrics.Connections.Load()) })
		mux.Handle("GET /config.json", gate.ConfigHandler(n.ClientAddr, n.spec.AdvertiseHost))
		if o.Web != nil {
			mux.Handle("/", o.Web)
		} else {
			mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "chatbench split cluster: gate websocket on %s\n", n.ClientAddr)
			})
		}
		n.serve(hl, mux)
	}
	return nil
}

// closeHook forgets a session on the Remote once the chat handler has made
// it leave its room.
type closeHook struct {
	*chat.Handler
	remote *bus.Remote
}

func (h closeHook) Closed(s *connector.Session) {
	h.Handler.Closed(s)
	h.remote.Forget(s)
}

func (n *Node) startConnector(o NodeOptions) error {
	nc, err := Connect(o.NATS, o.NATSAuth, o.ID, o.Logger)
	if err != nil {
		return err
	}
	n.nc = nc
	n.Remote, err = bus.StartRemote(nc, bus.RemoteOptions{
		ConnID: o.ID, Shards: o.Topology.ShardIDs(), Subjects: bus.Subjects{Prefix: o.NATSAuth.Prefix},
		Timeout: o.Bus.RequestTimeout, Heartbeat: o.Bus.Heartbeat, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	remote := n.Remote
	nc.SetReconnectHandler(func(c *nats.Conn) {
		o.Logger.Info("NATS reconnected", "url", c.ConnectedUrl())
		remote.Reconnected()
	})
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		if err != nil { // nil: our own Close at shutdown
			o.Logger.Warn("NATS disconnected: requests answer 504 until it is back", "err", err)
		}
		remote.Disconnected()
	})
	local := n.Remote.Local()
	n.Metrics = metrics.New(o.ID,
		func() float64 { return float64(local.Len()) },
		func() float64 { return float64(local.Stats().Members) })
	r := n.Remote
	n.Metrics.Registry.MustRegister(
		busCounter(o.ID, "chatbench_bus_deliveries_total", "Bus messages (pushes, joins, leaves) received from chat shards.", r.Deliveries.Load),
		busCounter(o.ID, "chatbench_bus_unavailable_total", "Requests to chat shards that failed with 504 (bus down, no responder, timeout).", r.Unavailable.Load),
		busCounter(o.ID, "chatbench_bus_dropped_total", "Deliveries from chat shards that NATS lost on the way (gaps in their numbering), e.g. during a bus outage: one per push per connector.", r.Lost.Load),
		busCounter(o.ID, "chatbench_bus_syncs_total", "Room memberships sent to chat shards after a bus outage or when a shard asked.", r.Syncs.Load),
		busCounter(o.ID, "chatbench_bus_sync_lost_total", "Members a membership sync could not restore (kicked).", r.SyncLost.Load),
	)
	cl, hl, err := n.listenBoth(true)
	if err != nil {
		return err
	}
	n.Frontend = connector.New(n.frontendOptions(o), closeHook{chat.NewHandler(n.Remote, o.Chat), n.Remote})
	n.serve(cl, n.Frontend)
	if hl != nil {
		n.serve(hl, n.baseMux(func() string {
			return fmt.Sprintf(`"connections":%d,"rooms":%d`, n.Metrics.Connections.Load(), local.Len())
		}))
	}
	return nil
}

func (n *Node) startShard(o NodeOptions) error {
	nc, err := Connect(o.NATS, o.NATSAuth, o.ID, o.Logger)
	if err != nil {
		return err
	}
	n.nc = nc
	var rooms *room.Registry[string]
	n.Metrics = metrics.New(o.ID,
		func() float64 { return float64(rooms.Len()) },
		func() float64 { return float64(rooms.Stats().Members) })
	n.Shard, err = bus.StartShard(nc, bus.ShardOptions{
		ID: o.ID, Subjects: bus.Subjects{Prefix: o.NATSAuth.Prefix}, Rooms: o.Rooms,
		Workers: o.Bus.Workers, ConnTimeout: o.Bus.ConnTimeout, Metrics: n.Metrics, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	rooms = n.Shard.Rooms().Registry
	sh := n.Shard
	n.Metrics.Registry.MustRegister(
		busCounter(o.ID, "chatbench_bus_published_total", "Bus messages (pushes, joins, leaves) published to connectors: one per connector per push.", sh.Published.Load),
		busCounter(o.ID, "chatbench_bus_publish_errors_total", "Bus publishes that failed.", sh.PublishErrs.Load),
		busCounter(o.ID, "chatbench_bus_evictions_total", "Connectors evicted (dead, restarted or stopped): their members left.", sh.Evicted.Load),
		busCounter(o.ID, "chatbench_bus_dropped_total", "Pushes that could not be published because the bus was down: one per connector per push, as chatbench_bus_published_total.", sh.Dropped.Load),
		busCounter(o.ID, "chatbench_bus_skipped_total", "Requests not handled because the bus went down after they arrived (their clients got 504).", sh.Skipped.Load),
		busCounter(o.ID, "chatbench_bus_synced_total", "Members restored from a connector's membership after this shard had lost them.", sh.Synced.Load),
	)
	nc.SetReconnectHandler(func(c *nats.Conn) {
		o.Logger.Info("NATS reconnected", "url", c.ConnectedUrl())
		sh.Reconnected()
	})
	_, hl, err := n.listenBoth(false)
	if err != nil {
		return err
	}
	if hl != nil {
		n.serve(hl, n.baseMux(func() string { return fmt.Sprintf(`"rooms":%d`, rooms.Len()) }))
	}
	return nil
}

// baseMux serves /healthz (503 while the bus is down) and /metrics.
func (n *Node) baseMux(status func() string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		state := "ok"
		if n.nc != nil && !n.nc.IsConnected() {
			state = "bus disconnected"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, `{"status":%q,"role":%q,"id":%q,%s}`+"\n", state, n.Role, n.ID, status())
	})
	mux.Handle("GET /metrics", n.Metrics.Handler())
	return mux
}

func (n *Node) serve(l net.Listener, h http.Handler) { n.http.Serve(l, h, n.log) }

// ReadyLine is the line a child prints on stdout once it serves:
// "READY role=connector id=connector-1 client=127.0.0.1:3050 http=127.0.0.1:3101".
func (n *Node) ReadyLine() string {
	return fmt.Sprintf("READY role=%s id=%s client=%s http=%s", n.Role, n.ID, dash(n.ClientAddr), dash(n.HTTPAddr))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Shutdown drains the node: a gate or connector stops accepting and kicks
// its sessions (which leave their rooms on the shards), a connector then
// says goodbye on the bus; a shard stops serving. Bounded by ctx.
func (n *Node) Shutdown(ctx context.Context) error {
	n.http.Close()
	var err error
	if n.Frontend != nil {
		err = n.Frontend.Shutdown(ctx, "server shutting down")
	}
	n.close()
	n.http.Wait()
	return err
}

func (n *Node) close() {
	n.http.Close()
	if n.Remote != nil {
		n.Remote.Close()
	}
	if n.Shard != nil {
		n.Shard.Close()
	}
	if n.nc != nil {
		_ = n.nc.Flush()
		n.nc.Close()
	}
}

// RunNode starts a node, writes its ready line to ready, serves until ctx
// ends and then drains within 5 s.
func RunNode(ctx context.Context, o NodeOptions, ready io.Writer) error {
	n, err := StartNode(o)
	if err != nil {
		return err
	}
	if ready != nil {
		fmt.Fprintln(ready, n.ReadyLine())
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}

func busCounter(id, name, help string, v func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"server": id}},
		func() float64 { return float64(v()) })
}
