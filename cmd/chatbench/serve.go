package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/chatbench/chatbench/internal/wsout"
	peer "github.com/chatbench/chatbench/peers/pomelo"
	"github.com/chatbench/chatbench/server"
)

func init() {
	register("serve", "run the reference chat server (gate, connectors, rooms)", runServe)
}

// serveFlags holds every serve flag; split-topology flags are added by cluster code.
type serveFlags struct {
	opts     server.Options
	logLevel string
	topology string
	split    splitFlags  // split topology (split.go)
	pomelo   pomeloFlags // stock pomelo (pomelo.go)
	maxProcs int
	// noFanout sets the writers' wsout.Options.NoFanout; machineLoad and
	// noLoadProbe their Load (machineLoadSignal).
	noFanout, noLoadProbe bool
	machineLoad           string
}

// machineLoadSignal is the writers' wsout.Options.Load for --machine-load:
// probe (default) follows the machine's CPU use; idle (or --no-load-probe)
// never says saturated; saturated always does, so the write path (flushers,
// no direct writes, no fan-out) does not change with whatever else runs on
// the machine: the regression gate compares versions with it.
func machineLoadSignal(mode string, noProbe bool) (*wsout.Load, error) {
	if noProbe && mode != "" && !strings.EqualFold(mode, "probe") && !strings.EqualFold(mode, "idle") {
		return nil, usageErr("--no-load-probe with --machine-load=%s: give one of them (--no-load-probe is --machine-load=idle)", mode)
	}
	switch strings.ToLower(mode) {
	case "", "probe":
		if noProbe {
			return nil, nil
		}
		return wsout.MachineLoad(), nil
	case "idle":
		return nil, nil
	case "saturated":
		l := new(wsout.Load)
		l.Set(true)
		return l, nil
	}
	return nil, usageErr("--machine-load %q: use probe, idle or saturated", mode)
}

func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve")
	var f serveFlags
	o := &f.opts
	fs.StringVar(&f.topology, "topology", "single", "single (one process), split (gate, connectors and chat shards as processes over NATS) or pomelo (stock pomelo "+peer.Version+" under node, to compare against; default 3 connectors x 3 chat servers)")
	fs.StringVar(&o.Host, "host", server.DefaultHost, "listen host")
	fs.StringVar(&o.AdvertiseHost, "advertise-host", "", "host that queryEntry hands to clients (default: --host)")
	fs.IntVar(&o.GatePort, "gate-port", server.DefaultGatePort, "gate websocket port (-1: random)")
	fs.IntVar(&o.ConnectorPort, "connector-port", server.DefaultConnectorPort, "first connector websocket port; the others follow (-1: random)")
	fs.IntVar(&o.Connectors, "connectors", 1, "connectors (in this process for --topology single)")
	fs.IntVar(&o.HTTPPort, "http-port", server.DefaultHTTPPort, "HTTP port: chat page, /healthz, /metrics (-1: random)")
	fs.DurationVar(&o.Connector.Heartbeat, "heartbeat", 0, "heartbeat interval announced to clients (default 3s; negative disables)")
	fs.DurationVar(&o.Connector.HeartbeatTimeout, "heartbeat-timeout", 0, "silence that closes a session (default 2 x heartbeat)")
	fs.IntVar(&o.Connector.MaxPackageBytes, "max-package", 0, "largest client frame in bytes (default 65536)")
	fs.DurationVar(&o.Connector.CoalesceMax, "coalesce-max", 0, "longest wait a busy session's writer takes to gather packages into one write (default 2ms; negative: write at once, never wait)")
	fs.DurationVar(&o.Connector.DirectWriteGap, "direct-write-gap", 0, "a push to a session idle this long is written at once on the sender's goroutine instead of by the session's writer (default 1ms; negative: never)")
	fs.DurationVar(&o.Connector.FlushWindow, "flush-window", 0, "on a saturated machine, pushes wait up to this long for a flusher goroutine that writes many sessions, instead of waking each session's writer (default 1ms; negative: never)")
	fs.IntVar(&o.Connector.MaxQueueBytes, "max-queue", 0, "outbound bytes queued per session before a slow-consumer kick (default 4 MiB)")
	fs.DurationVar(&o.Connector.WriteTimeout, "write-timeout", 0, "a session whose client takes no byte for this long while data waits for it is closed as a slow consumer (default 3s)")
	fs.BoolVar(&f.noFanout, "no-fanout", false, "run a broadcast's deliveries on the sender's goroutine only, never spread over the CPUs (for A/B runs)")
	fs.StringVar(&f.machineLoad, "machine-load", "probe", "what the writers take the machine's load to be: probe (a probe of the machine's CPU use turns direct writes and fan-out off above 90%), idle (always on) or saturated (always off: the write path does not change with other work on the machine)")
	fs.BoolVar(&f.noLoadProbe, "no-load-probe", false, "the same as --machine-load=idle")
	_ = fs.MarkDeprecated("no-load-probe", "use --machine-load=idle")
	fs.IntVar(&o.Connector.SendBufferBytes, "sndbuf", 0, "kernel send buffer per session socket in bytes (SO_SNDBUF, doubled by Linux) (default 131072; -1: the kernel's autotuning, 2-4 MB on loopback)")
	fs.Float64Var(&o.Connector.RequestRate, "max-request-rate", 0, "requests per second per connection (default 200; negative: unlimited)")
	fs.IntVar(&o.Chat.MaxContentBytes, "max-content", 0, "largest chat content in bytes (default 8192)")
	fs.IntVar(&o.Rooms.MaxRooms, "max-rooms", 0, "rooms that may exist at once (0: unlimited)")
	fs.IntVar(&o.Rooms.MaxMembers, "max-members", 0, "members per room (0: unlimited)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.IntVar(&f.maxProcs, "gomaxprocs", 0, "CPUs the server's Go code may use at once (0: all); e.g. 1 leaves the other core of a 2-core machine to the driver, so the server is the bottleneck")
	fs.DurationVar(&o.DeliveryWork, "test-delivery-work", 0, "tests of the regression gate only: add about this much CPU work (a fixed loop) to every delivered message")
	_ = fs.MarkHidden("test-delivery-work")
	addSplitFlags(fs, &f.split)
	addPomeloFlags(fs, &f.pomelo)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if strings.EqualFold(f.topology, "pomelo") {
		var level slog.Level
		if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
			return usageErr("--log-level %q: use debug, info, warn or error", f.logLevel)
		}
		f.opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		f.opts.Web = webHandler()
		return runPomelo(ctx, fs, &f)
	}
	if err := checkTopologyFlags(fs.Changed, &f); err != nil { // split.go
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageErr("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	if err := checkServeFlags(o); err != nil {
		return err
	}
	if f.maxProcs < 0 {
		return fmt.Errorf("%w: --gomaxprocs %d: use 0 (all CPUs) or a count of CPUs", errUsage, f.maxProcs)
	}
	if f.maxProcs > 0 {
		runtime.GOMAXPROCS(f.maxProcs)
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o.Web = webHandler()
	o.Connector.NoFanout = f.noFanout
	load, err := machineLoadSignal(f.machineLoad, f.noLoadProbe)
	if err != nil {
		return err
	}
	o.Connector.Load = load
	if f.split.role != "" {
		return runRole(ctx, &f)
	}
	switch strings.ToLower(f.topology) {
	case "single":
		return runSingle(ctx, f.opts)
	case "split":
		return runSplit(ctx, fs, &f)
	default:
		return usageErr("--topology %q: use single, split or pomelo", f.topology)
	}
}

// runSingle runs the one-process server and prints one machine-readable line
// to stdout once it serves (the split launcher prints the same keys first):
// READY gate=HOST:PORT http=HOST:PORT topology=single connectors=H:P,...
func runSingle(ctx context.Context, o server.Options) error {
	s, err := server.Start(o)
	if err != nil {
		return err
	}
	fmt.Printf("READY gate=%s http=%s topology=single connectors=%s\n", s.GateAddr, s.HTTPAddr, strings.Join(s.ConnectorAddrs, ","))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}
