package main

import (
	"context"

	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	peer "github.com/chatbench/chatbench/peers/pomelo"
	"github.com/chatbench/chatbench/server/gate"
)

// pomeloFlags are the serve flags of --topology pomelo (stock pomelo 2.2.7).
type pomeloFlags struct {
	dir   string
	nagle bool
}

func addPomeloFlags(fs *pflag.FlagSet, f *pomeloFlags) {
	fs.StringVar(&f.dir, "pomelo-dir", "", "where pomelo "+peer.Version+" is installed from npm (node_modules; --topology pomelo; default: peers/pomelo of the checkout in the working directory, else the user cache)")
	fs.BoolVar(&f.nagle, "pomelo-nagle", false, "leave Nagle's algorithm on in the pomelo cluster, as stock pomelo does (--topology pomelo; default: TCP_NODELAY on every socket)")
}

// pomeloAllowed are the serve flags --topology pomelo uses; every other one
// configures the reference server only.
var pomeloAllowed = map[string]bool{
	"topology": true, "host": true, "gate-port": true, "connector-port": true, "connectors": true,
	"http-port": true, "shards": true, "log-level": true, "pomelo-dir": true, "pomelo-nagle": true, "advertise-host": true,
}

func checkPomeloFlags(fs *pflag.FlagSet) error {
	var bad []string
	fs.Visit(func(fl *pflag.Flag) {
		if !pomeloAllowed[fl.Name] {
			bad = append(bad, "--"+fl.Name)
		}
	})
	if len(bad) > 0 {
		return usageErr("%s: reference server flags, not for stock pomelo (--topology pomelo): drop them", strings.Join(bad, ", "))
	}
	for _, name := range []string{"connectors", "shards"} {
		if v, _ := fs.GetInt(name); fs.Changed(name) && v < 1 {
			return usageErr("--%s %d: stock pomelo needs at least 1", name, v)
		}
	}
	return nil
}

// runPomelo runs stock pomelo 2.2.7 (peers/pomelo: node, pomelo from npm)
// with N connectors and M chat servers (default 3x3, the stock demo's), and
// the chat page on --http-port pointing at its gate. It prints the same
// READY line as the other topologies and stops every node process on exit.
func runPomelo(ctx context.Context, fs *pflag.FlagSet, f *serveFlags) error {
	if err := checkPomeloFlags(fs); err != nil {
		return err
	}
	o := &f.opts
	opts := peer.Options{Connectors: 3, ChatServers: 3, Host: o.Host, Dir: f.pomelo.dir, Nagle: f.pomelo.nagle, Log: os.Stderr}
	if fs.Changed("connectors") {
		opts.Connectors = o.Connectors
	}
	if fs.Changed("shards") {
		opts.ChatServers = f.split.shards
	}
	if o.GatePort > 0 {
		opts.GatePort = o.GatePort
	}
	if o.ConnectorPort > 0 {
		opts.ConnectorPort = o.ConnectorPort
	}
	start := time.Now()
	c, err := peer.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Stop()
	httpPort := o.HTTPPort
	if httpPort < 0 {
		httpPort = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(httpPort)))
	if err != nil {
		return fmt.Errorf("chat page: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /config.json", gate.ConfigHandler(c.Gate, o.AdvertiseHost))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := c.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/", o.Web)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	o.Logger.Info("stock pomelo up", "version", peer.Version, "connectors", opts.Connectors, "chat_servers", opts.ChatServers,
		"processes", len(c.Processes()), "took", time.Since(start).Round(time.Millisecond))
	fmt.Printf("READY gate=%s http=%s topology=pomelo connectors=%s\n", c.Gate, ln.Addr(), strings.Join(c.Connectors, ","))
	select {
	case <-ctx.Done():
		return nil
	case <-c.Done():
		return c.Err()
	}
}
