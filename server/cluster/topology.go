// Package cluster owns the split topology: topology files in the style of
// pomelo's config/servers.json, the three roles (gate, connector, chat
// shard) as runnable nodes over NATS (server/bus), the embedded NATS server,
// and the launcher that starts every role as a child process of the same
// binary, prefixes their logs, waits until each is ready and stops them all.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/chatbench/chatbench/server/gate"
)

// Roles of a split cluster (the keys of a topology file).
const (
	RoleGate      = "gate"
	RoleConnector = "connector"
	RoleChat      = "chat"
)

// ServerSpec is one server of a topology, as in pomelo's servers.json. For
// ports, -1 means a random free port (the launcher resolves it from the
// child's ready line) and 0 means none (HTTP only).
type ServerSpec struct {
	ID            string `json:"id"`
	Host          string `json:"host"`                    // listen host
	AdvertiseHost string `json:"advertiseHost,omitempty"` // host the gate hands out (default Host)
	ClientPort    int    `json:"clientPort,omitempty"`    // websocket port (gate, connectors)
	HTTPPort      int    `json:"httpPort,omitempty"`      // /healthz, /metrics (and the chat page on the gate)
	Frontend      bool   `json:"frontend,omitempty"`      // pomelo's flag: holds client sockets
}

// Topology is a split cluster: which servers exist and where the bus is.
type Topology struct {
	NATS          []string     `json:"nats,omitempty"`          // NATS URLs every role connects to
	SubjectPrefix string       `json:"subjectPrefix,omitempty"` // bus subject prefix (default "chatbench")
	Gate          []ServerSpec `json:"gate"`
	Connector     []ServerSpec `json:"connector"`
	Chat          []ServerSpec `json:"chat"`
}

// GenerateOptions describe a generated topology. Ports follow
// server.Options: 0 means the default, -1 random.
type GenerateOptions struct {
	Host          string // default 127.0.0.1
	AdvertiseHost string
	Connectors    int // default 1
	Shards        int // default 1
	GatePort      int // default 3014
	ConnectorPort int // first connector's port, the others follow; default 3050
	HTTPPort      int // the gate's HTTP port (chat page, /healthz, /metrics); default 3001
	// ConnectorHTTPPort and ShardHTTPPort are the first connector's and
	// shard's /healthz + /metrics port, the others follow; 0 or -1: random
	// (reported in each server's READY line and log).
	ConnectorHTTPPort int
	ShardHTTPPort     int
}

func defPort(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

// Generate builds a topology of one gate, n connectors (connector-1..) and m
// chat shards (chat-1..).
func Generate(o GenerateOptions) Topology {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Connectors <= 0 {
		o.Connectors = 1
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	http := defPort(o.HTTPPort, 3001)
	offset := func(base, i int) int {
		if base <= 0 {
			return -1
		}
		return base + i
	}
	t := Topology{Gate: []ServerSpec{{
		ID: "gate", Host: o.Host, AdvertiseHost: o.AdvertiseHost,
		ClientPort: defPort(o.GatePort, 3014), HTTPPort: http, Frontend: true,
	}}}
	cport := defPort(o.ConnectorPort, 3050)
	for i := range o.Connectors {
		t.Connector = append(t.Connector, ServerSpec{
			ID: fmt.Sprintf("connector-%d", i+1), Host: o.Host, AdvertiseHost: o.AdvertiseHost,
			ClientPort: offset(cport, i), HTTPPort: offset(o.ConnectorHTTPPort, i), Frontend: true,
		})
	}
	for i := range o.Shards {
		t.Chat = append(t.Chat, ServerSpec{ID: fmt.Sprintf("chat-%d", i+1), Host: o.Host, HTTPPort: offset(o.ShardHTTPPort, i)})
	}
	return t
}

// Validate checks ids (present, unique) and counts.
func (t *Topology) Validate() error {
	if len(t.Gate) == 0 || len(t.Connector) == 0 || len(t.Chat) == 0 {
		return fmt.Errorf("topology: needs at least one gate, connector and chat server (has %d, %d, %d)",
			len(t.Gate), len(t.Connector), len(t.Chat))
	}
	seen := map[string]bool{}
	for _, role := range []string{RoleGate, RoleConnector, RoleChat} {
		for i, s := range t.servers(role) {
			switch {
			case s.ID == "":
				return fmt.Errorf("topology: %s[%d] has no id", role, i)
			case seen[s.ID]:
				return fmt.Errorf("topology: server id %q appears twice", s.ID)
			case role != RoleChat && s.ClientPort == 0:
				return fmt.Errorf("topology: %s %q has no clientPort", role, s.ID)
			}
			seen[s.ID] = true
		}
	}
	return nil
}

func (t *Topology) servers(role string) []ServerSpec {
	switch role {
	case RoleGate:
		return t.Gate
	case RoleConnector:
		return t.Connector
	case RoleChat:
		return t.Chat
	}
	return nil
}

// Find returns the server of role with id.
func (t *Topology) Find(role, id string) (ServerSpec, error) {
	list := t.servers(role)
	if list == nil && role != RoleGate && role != RoleConnector && role != RoleChat {
		return ServerSpec{}, fmt.Errorf("unknown role %q: use %s, %s or %s", role, RoleGate, RoleConnector, RoleChat)
	}
	for _, s := range list {
		if s.ID == id {
			return s, nil
		}
	}
	return ServerSpec{}, fmt.Errorf("topology has no %s with id %q", role, id)
}

// ShardIDs returns the chat shard ids sorted: the order rooms dispatch over.
func (t *Topology) ShardIDs() []string {
	ids := make([]string, 0, len(t.Chat))
	for _, s := range t.Chat {
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	return ids
}

// Entries returns the connectors as the gate hands them out. Their client
// ports must be resolved (not -1).
func (t *Topology) Entries() ([]gate.Entry, error) {
	var out []gate.Entry
	for _, s := range t.Connector {
		if s.ClientPort <= 0 {
			return nil, fmt.Errorf("topology: connector %q has no resolved clientPort (%d)", s.ID, s.ClientPort)
		}
		host := s.AdvertiseHost
		if host == "" {
			host = s.Host
		}
		out = append(out, gate.Entry{ID: s.ID, Host: host, Port: s.ClientPort})
	}
	return gate.Sorted(out), nil
}

// Load reads a topology file.
func Load(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Topology
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	if err := checkKeys(b); err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &t, nil
}

// jsonKeys returns the JSON keys of struct v's fields, in field order.
func jsonKeys(v any) []string {
	var keys []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

var (
	topologyKeys = jsonKeys(Topology{})
	serverKeys   = jsonKeys(ServerSpec{})
)

// checkKeys rejects keys that encoding/json would ignore (a typo such as
// "gatez" or "clientport", or a pomelo key such as "port"), naming the key,
// where it is and the valid keys. b is a well-formed topology.
func checkKeys(b []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	if err := unknownKey(top, topologyKeys, ""); err != nil {
		return err
	}
	for _, role := range []string{RoleGate, RoleConnector, RoleChat} {
		raw, ok := top[role]
		if !ok {
			continue
		}
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
		for i, m := range list {
			where := fmt.Sprintf("%s[%d]", role, i)
			var id string
			if json.Unmarshal(m["id"], &id) == nil && id != "" {
				where += fmt.Sprintf(" (%q)", id)
			}
			if err := unknownKey(m, serverKeys, where+": "); err != nil {
				return err
			}
		}
	}
	return nil
}

func unknownKey(m map[string]json.RawMessage, valid []string, where string) error {
	var bad []string
	for k := range m {
		if !slices.Contains(valid, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%sunknown key %q (valid keys: %s)", where, bad[0], strings.Join(valid, ", "))
}

// Save writes the topology atomically (a reader never sees half a file).
func (t *Topology) Save(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".topology-*.json")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// portOf returns the port of a host:port address (0 if there is none).
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
