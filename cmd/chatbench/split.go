package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/server/cluster"
)

// splitFlags are the serve flags of the split topology.
type splitFlags struct {
	shards            int
	role, id          string
	topologyFile      string
	nats              string
	natsPort          int
	connectorHTTPPort int
	shardHTTPPort     int
	restart           bool
	exitOnFailure     bool
	bus               cluster.BusOptions
	natsAuth          natsopts.Options // credentials, TLS, subject prefix (URLs: nats)
}

func addSplitFlags(fs *pflag.FlagSet, f *splitFlags) {
	fs.IntVar(&f.shards, "shards", 1, "chat shards (--topology split)")
	fs.StringVar(&f.nats, "nats", "", "NATS URLs nats://host:port[,...] of an existing cluster (--topology split; default: an embedded NATS server in the launcher)")
	fs.IntVar(&f.natsPort, "nats-port", -1, "port of the embedded NATS server (-1: random); it admits only this launcher's children (a random token, passed in their environment)")
	f.natsAuth.AddFlags(fs)
	fs.IntVar(&f.connectorHTTPPort, "connector-http-port", -1, "first connector's /healthz + /metrics port, the others follow (-1: random)")
	fs.IntVar(&f.shardHTTPPort, "shard-http-port", -1, "first chat shard's /healthz + /metrics port, the others follow (-1: random)")
	fs.StringVar(&f.topologyFile, "topology-file", "", "servers.json-style topology (split): ids, roles, hosts, ports (default: generated from the flags)")
	fs.StringVar(&f.role, "role", "", "run one server of a split topology: gate, connector or chat (with --id)")
	fs.StringVar(&f.id, "id", "", "server id for --role, e.g. connector-2")
	fs.BoolVar(&f.restart, "restart", false, "restart a child that dies (same id and ports) after a short backoff, at most 5 times in a row (--topology split)")
	fs.BoolVar(&f.exitOnFailure, "exit-on-child-failure", false, "stop the whole cluster and exit 1 when a child dies (default: report it, keep the rest running) (--topology split)")
	fs.DurationVar(&f.bus.RequestTimeout, "request-timeout", 0, "connector -> chat shard request timeout (default 1.5s; a dead shard fails at once)")
	fs.DurationVar(&f.bus.ConnTimeout, "conn-timeout", 0, "a chat shard evicts a dead connector's members within about this (default 2s)")
}

// splitOnly are the serve flags that mean something only for --topology split.
var splitOnly = append([]string{"shards", "nats", "nats-port", "connector-http-port", "shard-http-port", "topology-file",
	"role", "id", "restart", "exit-on-child-failure", "request-timeout", "conn-timeout"}, natsopts.FlagNames...)

// checkTopologyFlags rejects serve flags that would otherwise be ignored or
// silently replaced: split-only flags with --topology single, counts below
// 1, counts next to a topology file, launcher flags on one server.
func checkTopologyFlags(changed func(name string) bool, f *serveFlags) error {
	if err := f.topologyFlagsError(changed); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

func (f *serveFlags) topologyFlagsError(changed func(name string) bool) error {
	sf := &f.split
	sf.natsAuth.FromEnv()
	if err := sf.natsAuth.Validate(); err != nil {
		return err
	}
	if sf.role != "" {
		for _, name := range []string{"restart", "exit-on-child-failure", "shards", "connectors"} {
			if changed(name) {
				return fmt.Errorf("--%s applies to the launcher (--topology split), not to one server (--role %s): drop --%s", name, sf.role, name)
			}
		}
		if changed("topology") && !strings.EqualFold(f.topology, "split") {
			return fmt.Errorf("--role %s runs one server of a split topology: drop --topology %s", sf.role, f.topology)
		}
		return nil
	}
	if changed("id") {
		return fmt.Errorf("--id %s needs --role (gate, connector or chat) to run one server", sf.id)
	}
	switch strings.ToLower(f.topology) {
	case "single":
		for _, name := range splitOnly {
			if changed(name) {
				return fmt.Errorf("--%s applies only to --topology split (this is --topology %s): add --topology split or drop --%s", name, f.topology, name)
			}
		}
		return nil
	case "split":
	default:
		return fmt.Errorf("--topology %q: use single, split or pomelo", f.topology)
	}
	if sf.nats == "" {
		for _, name := range natsopts.FlagNames {
			if changed(name) && name != "nats-prefix" {
				return fmt.Errorf("--%s applies to an external NATS server (--nats URL): the embedded one admits the launcher's children by a random token of its own; add --nats or drop --%s", name, name)
			}
		}
	}
	if sf.restart && sf.exitOnFailure {
		return errors.New("--restart and --exit-on-child-failure contradict each other: use one")
	}
	if sf.topologyFile != "" {
		for _, name := range []string{"connectors", "shards"} {
			if changed(name) {
				return fmt.Errorf("--%s conflicts with --topology-file %s, which lists the servers: drop --%s or edit the file", name, sf.topologyFile, name)
			}
		}
		return nil
	}
	if n := f.opts.Connectors; n < 1 {
		return fmt.Errorf("--connectors %d: a split topology needs at least 1 connector (use --connectors 1 or more)", n)
	}
	if n := sf.shards; n < 1 {
		return fmt.Errorf("--shards %d: a split topology needs at least 1 chat shard (use --shards 1 or more)", n)
	}
	return nil
}

// forwarded are the serve flags a launcher passes on to its children.
var forwarded = map[string]bool{
	"heartbeat": true, "heartbeat-timeout": true, "max-package": true, "max-queue": true, "sndbuf": true, "write-timeout": true,
	"max-request-rate": true, "max-content": true, "max-rooms": true, "max-members": true,
	"log-level": true, "request-timeout": true, "conn-timeout": true, "coalesce-max": true, "direct-write-gap": true, "flush-window": true,
	"no-fanout": true, "no-load-probe": true, "machine-load": true,
}

func init() {
	for _, name := range natsopts.FlagNames { // file names and names, never secrets
		forwarded[name] = true
	}
}

func (f *serveFlags) splitTopology() (*cluster.Topology, error) {
	if f.split.topologyFile != "" {
		t, err := cluster.Load(f.split.topologyFile)
		if err == nil && f.split.natsAuth.Prefix != "" {
			t.SubjectPrefix = f.split.natsAuth.Prefix
		}
		return t, err
	}
	o := &f.opts
	t := cluster.Generate(cluster.GenerateOptions{
		Host: o.Host, AdvertiseHost: o.AdvertiseHost, Connectors: o.Connectors, Shards: f.split.shards,
		GatePort: o.GatePort, ConnectorPort: o.ConnectorPort, HTTPPort: o.HTTPPort,
		ConnectorHTTPPort: f.split.connectorHTTPPort, ShardHTTPPort: f.split.shardHTTPPort,
	})
	t.SubjectPrefix = f.split.natsAuth.Prefix
	return &t, t.Validate()
}

func natsURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// runRole runs one server of a split topology (what the launcher starts,
// or by hand on several machines).
func runRole(ctx context.Context, f *serveFlags) error {
	if f.split.id == "" {
		return usageErr("--role %s needs --id (e.g. --id connector-2, as in the topology file)", f.split.role)
	}
	t, err := f.splitTopology()
	if err != nil {
		return err
	}
	o := &f.opts
	return cluster.RunNode(ctx, cluster.NodeOptions{
		Topology: t, Role: f.split.role, ID: f.split.id, NATS: natsURLs(f.split.nats), NATSAuth: f.split.natsAuth,
		Connector: o.Connector, Chat: o.Chat, Rooms: o.Rooms, Bus: f.split.bus,
		Web: o.Web, Logger: o.Logger.With("server", f.split.id),
	}, os.Stdout)
}

// runSplit launches a split topology as child processes of this binary.
func runSplit(ctx context.Context, fs *pflag.FlagSet, f *serveFlags) error {
	t, err := f.splitTopology()
	if err != nil {
		return err
	}
	if urls := natsURLs(f.split.nats); len(urls) > 0 {
		t.NATS = urls
	}
	var child []string
	fs.Visit(func(fl *pflag.Flag) {
		if forwarded[fl.Name] {
			child = append(child, "--"+fl.Name+"="+fl.Value.String())
		}
	})
	return cluster.Launch(ctx, cluster.LaunchOptions{
		Topology: *t, NATSHost: f.opts.Host, NATSPort: f.split.natsPort, ChildArgs: child,
		Logger: f.opts.Logger.With("server", "launcher"), StopTimeout: 10 * time.Second,
		Restart: f.split.restart, ExitOnChildFailure: f.split.exitOnFailure,
	})
}
