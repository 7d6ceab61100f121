package pomelo

import (
	"encoding/json"
	"fmt"
	"net"
)

// Server is one entry of servers.json.
type Server struct {
	ID         string `json:"id"`
	Host       string `json:"host"`
	Port       int    `json:"port,omitempty"`       // RPC (not the gate's, as in the stock file)
	ClientPort int    `json:"clientPort,omitempty"` // frontends: the websocket port
	Frontend   bool   `json:"frontend,omitempty"`
}

// Spec is a cluster's layout: what servers.json and master.json say.
type Spec struct {
	Host       string
	MasterPort int
	Gate       Server
	Connectors []Server
	Chats      []Server
}

// NewSpec lays out a cluster for o (defaults applied): the gate and
// connectors on o's ports or free ones, the master's and RPC ports free.
func NewSpec(o Options) (Spec, error) {
	o.defaults()
	if o.Connectors > 1000 || o.ChatServers > 1000 {
		return Spec{}, fmt.Errorf("stock pomelo: %d connectors and %d chat servers: at most 1000 each", o.Connectors, o.ChatServers)
	}
	if o.GatePort < 0 || o.GatePort > 65535 {
		return Spec{}, fmt.Errorf("stock pomelo: gate port %d: use 1-65535, or 0 for a free one", o.GatePort)
	}
	if o.ConnectorPort < 0 || o.ConnectorPort+o.Connectors-1 > 65535 {
		return Spec{}, fmt.Errorf("stock pomelo: connector ports %d..%d: use 1-65535, or 0 for free ones", o.ConnectorPort, o.ConnectorPort+o.Connectors-1)
	}
	free := 2 + 2*o.Connectors + o.ChatServers // master, gate, connectors (client + RPC), chats
	ports, err := freePorts(o.Host, free)
	if err != nil {
		return Spec{}, fmt.Errorf("stock pomelo: free ports: %w", err)
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	s := Spec{Host: o.Host, MasterPort: next()}
	s.Gate = Server{ID: GateID, Host: o.Host, ClientPort: next(), Frontend: true}
	if o.GatePort > 0 {
		s.Gate.ClientPort = o.GatePort
	}
	for i := range o.Connectors {
		c := Server{ID: fmt.Sprintf("connector-server-%d", i+1), Host: o.Host, Port: next(), ClientPort: next(), Frontend: true}
		if o.ConnectorPort > 0 {
			c.ClientPort = o.ConnectorPort + i
		}
		s.Connectors = append(s.Connectors, c)
	}
	for i := range o.ChatServers {
		s.Chats = append(s.Chats, Server{ID: fmt.Sprintf("chat-server-%d", i+1), Host: o.Host, Port: next()})
	}
	return s, nil
}

// ServersJSON is config/servers.json for the development environment, in
// the stock demo's shape.
func (s Spec) ServersJSON() ([]byte, error) {
	v := map[string]map[string][]Server{"development": {
		"connector": s.Connectors,
		"chat":      s.Chats,
		"gate":      {s.Gate},
	}}
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// MasterJSON is config/master.json for the development environment.
func (s Spec) MasterJSON() ([]byte, error) {
	v := map[string]map[string]any{"development": {"id": MasterID, "host": s.Host, "port": s.MasterPort}}
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// freePorts returns n distinct ports free on host right now (all listeners
// open at once, so no port comes twice, then closed for pomelo to bind).
func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
