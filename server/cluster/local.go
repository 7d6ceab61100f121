package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// StartNATS starts an embedded NATS server on host:port (-1: a random
// port) and waits until it accepts connections. With a token, it refuses
// every client that does not present it.
func StartNATS(host string, port int, token string) (*natsserver.Server, error) {
	if port == 0 {
		port = -1
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: host, Port: port, NoLog: true, NoSigs: true, Authorization: token})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS: not ready within 10s")
	}
	return ns, nil
}

// Local is a whole split cluster in one process (every role a Node, over an
// embedded NATS server unless Topology.NATS is set): the same code as the
// child processes, for tests and benchmarks.
type Local struct {
	NATS     *natsserver.Server // nil when Topology.NATS was given
	Topology Topology           // resolved: real ports
	Gate     *Node
	Conns    []*Node
	Shards   []*Node
}

// StartLocal starts every server of o.Topology in this process, shards
// first, then connectors, then the gate (which needs the connectors'
// resolved ports). o.Role and o.ID are ignored.
func StartLocal(o NodeOptions) (*Local, error) {
	if o.Topology == nil {
		return nil, errors.New("no topology")
	}
	l := &Local{Topology: *o.Topology}
	t := &l.Topology
	t.Connector = append([]ServerSpec(nil), t.Connector...)
	if len(o.NATS) == 0 && len(t.NATS) == 0 {
		ns, err := StartNATS("127.0.0.1", -1, "")
		if err != nil {
			return nil, err
		}
		l.NATS = ns
		t.NATS = []string{ns.ClientURL()}
	} else if len(o.NATS) > 0 {
		t.NATS = o.NATS
	}
	o.NATS = t.NATS
	o.Topology = t
	base := o.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	start := func(role, id string) (*Node, error) {
		no := o
		no.Role, no.ID, no.Logger = role, id, base.With("server", id)
		n, err := StartNode(no)
		if err != nil {
			l.Shutdown(context.Background())
			return nil, err
		}
		return n, nil
	}
	for _, s := range t.Chat {
		n, err := start(RoleChat, s.ID)
		if err != nil {
			return nil, err
		}
		l.Shards = append(l.Shards, n)
	}
	for i, s := range t.Connector {
		n, err := start(RoleConnector, s.ID)
		if err != nil {
			return nil, err
		}
		l.Conns = append(l.Conns, n)
		t.Connector[i].ClientPort = portOf(n.ClientAddr)
	}
	g, err := start(RoleGate, t.Gate[0].ID)
	if err != nil {
		return nil, err
	}
	l.Gate = g
	return l, nil
}

// Shutdown stops the gate, the connectors (their sessions leave), the shards
// and the embedded NATS server.
func (l *Local) Shutdown(ctx context.Context) error {
	var errs []error
	if l.Gate != nil {
		errs = append(errs, l.Gate.Shutdown(ctx))
	}
	for _, n := range l.Conns {
		errs = append(errs, n.Shutdown(ctx))
	}
	for _, n := range l.Shards {
		errs = append(errs, n.Shutdown(ctx))
	}
	if l.NATS != nil {
		l.NATS.Shutdown()
		l.NATS.WaitForShutdown()
	}
	return errors.Join(errs...)
}
