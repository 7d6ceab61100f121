package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

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
	bus               cluster.BusOptions
}

func addSplitFlags(fs *pflag.FlagSet, f *splitFlags) {
	fs.IntVar(&f.shards, "shards", 1, "chat shards (--topology split)")
	fs.StringVar(&f.nats, "nats", "", "NATS URLs nats://host:port[,...] of an existing cluster (--topology split; default: an embedded NATS server in the launcher)")
	fs.IntVar(&f.natsPort, "nats-port", -1, "port of the embedded NATS server (-1: random)")
	fs.IntVar(&f.connectorHTTPPort, "connector-http-port", -1, "first connector's /healthz + /metrics port, the others follow (-1: random)")
	fs.IntVar(&f.shardHTTPPort, "shard-http-port", -1, "first chat shard's /healthz + /metrics port, the others follow (-1: random)")
	fs.StringVar(&f.topologyFile, "topology-file", "", "servers.json-style topology (split): ids, roles, hosts, ports (default: generated from the flags)")
	fs.StringVar(&f.role, "role", "", "run one server of a split topology: gate, connector or chat (with --id)")
	fs.StringVar(&f.id, "id", "", "server id for --role, e.g. connector-2")
	fs.DurationVar(&f.bus.RequestTimeout, "request-timeout", 0, "connector -> chat shard request timeout (default 1.5s; a dead shard fails at once)")
	fs.DurationVar(&f.bus.ConnTimeout, "conn-timeout", 0, "a chat shard evicts a dead connector's members within about this (default 2s)")
}

// forwarded are the serve flags a launcher passes on to its children.
var forwarded = map[string]bool{
	"heartbeat": true, "heartbeat-timeout": true, "max-package": true, "max-queue": true,
	"max-request-rate": true, "max-content": true, "max-rooms": true, "max-members": true,
	"log-level": true, "request-timeout": true, "conn-timeout": true,
}

func (f *serveFlags) splitTopology() (*cluster.Topology, error) {
	if f.split.topologyFile != "" {
		return cluster.Load(f.split.topologyFile)
	}
	o := &f.opts
	t := cluster.Generate(cluster.GenerateOptions{
		Host: o.Host, AdvertiseHost: o.AdvertiseHost, Connectors: o.Connectors, Shards: f.split.shards,
		GatePort: o.GatePort, ConnectorPort: o.ConnectorPort, HTTPPort: o.HTTPPort,
		ConnectorHTTPPort: f.split.connectorHTTPPort, ShardHTTPPort: f.split.shardHTTPPort,
	})
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
		return fmt.Errorf("%w: --role %s needs --id", errUsage, f.split.role)
	}
	t, err := f.splitTopology()
	if err != nil {
		return err
	}
	o := &f.opts
	return cluster.RunNode(ctx, cluster.NodeOptions{
		Topology: t, Role: f.split.role, ID: f.split.id, NATS: natsURLs(f.split.nats),
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
	})
}
