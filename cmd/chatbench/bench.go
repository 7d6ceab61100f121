package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/internal/proc"
	peer "github.com/chatbench/chatbench/peers/pomelo"
	"github.com/chatbench/chatbench/reports"
)

func init() {
	register("bench", "run a load scenario against a pomelo chat server (by default a reference server it starts)", runBench)
}

// clientsPerSourceAddr is where the driver starts spreading sockets over
// several 127.0.0.x source addresses (~28k ephemeral ports per address).
const clientsPerSourceAddr = 25000

type benchFlags struct {
	scenario    string
	target      string
	topology    string
	connectors  int
	shards      int
	duration    time.Duration
	clients     int
	rooms       int
	rate        float64
	seed        int64
	out         string
	sourceAddrs int
	pollers     int // client.Options.Pollers
	drain       time.Duration
	late        time.Duration
	quiet       bool
	logLevel    string
	ceiling     string
	failOnBound bool
	serverNice  int // proc.Options.Nice
	pomeloDir   string
	serveFlags  []string
	// scenarioServeFlags are the scenario's serve_flags, for the server
	// bench starts.
	scenarioServeFlags []string
	split              workerFlags // split runs (bench_workers.go)
}

// Exit codes of chatbench bench (besides 0, and 2 for a usage error).
const (
	exitRunFailed   = 1  // the run could not run (target unreachable, server did not start, ...)
	exitDriverBound = 98 // --fail-on-driver-bound and the driver was the bottleneck
	exitThresholds  = 99 // a threshold of the scenario failed (as k6)
)

const benchExitCodes = `
Exit codes:
  0   the run ran and every threshold of the scenario passed (a driver-bound
      run prints a warning and still exits 0 unless --fail-on-driver-bound)
  1   the run could not run: target unreachable, the reference server did not
      start, results could not be written
  2   usage error (bad flag or scenario)
  98  --fail-on-driver-bound and the driver, not the server, was the bottleneck
  99  a threshold of the scenario failed (p99_delivery_max, loss_max,
      error_rate_max, min_deliveries_per_s, or an expression such as
      delivery.p99 < 50ms; misrouted deliveries fail loss_max); the message
      names each failed threshold with its limit and value
`

// addScenarioOverrides registers the flags that override the scenario's
// sizes: bench's own, and sweep's for every run (everyRun says so in the
// help).
func addScenarioOverrides(fs *pflag.FlagSet, f *benchFlags, everyRun bool) {
	help := func(what string) string {
		if everyRun {
			what = "every run's " + what
		}
		return what + " (default: the scenario's)"
	}
	fs.DurationVar(&f.duration, "duration", 0, help("total length of the timed phases, scaled proportionally"))
	fs.IntVar(&f.clients, "clients", 0, help("simulated clients"))
	fs.IntVar(&f.rooms, "rooms", 0, help("rooms"))
	fs.Float64Var(&f.rate, "rate", 0, help("messages per second per client in chat and hop phases"))
	fs.Int64Var(&f.seed, "seed", 0, help("random seed"))
}

func runBench(ctx context.Context, args []string) error { return bench(ctx, args, os.Stdout) }

// bench runs the command, writing the text summary to out.
func bench(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench")
	var f benchFlags
	fs.StringVar(&f.scenario, "scenario", "", "shipped scenario name ("+strings.Join(scenario.Names(), ", ")+") or path of a YAML file")
	fs.StringVar(&f.target, "target", "", "gate host:port of the server to drive (empty: start the reference server as a child process, stop it after)")
	fs.StringVar(&f.topology, "topology", "single", "topology of the started server: single, split, or pomelo (stock pomelo 2.2.7 under node, installed from npm on first use) (ignored with --target)")
	fs.IntVar(&f.connectors, "connectors", 0, "connectors of the started server (default: serve's)")
	fs.IntVar(&f.shards, "shards", 0, "chat shards (split) or chat servers (pomelo) of the started server (default: serve's)")
	addScenarioOverrides(fs, &f, false)
	fs.StringVar(&f.out, "out", "results", "results root: the run writes <out>/<scenario>-<time>/")
	fs.IntVar(&f.pollers, "pollers", 0, "epoll receive loops the driver's clients share (Linux; default GOMAXPROCS; -1: a reader goroutine per client, for A/B runs)")
	fs.IntVar(&f.sourceAddrs, "source-addrs", 0, "spread client sockets over 127.0.0.1..N (default: one per 25,000 clients on a loopback target)")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "longest wait for in-flight deliveries after a phase")
	fs.DurationVar(&f.late, "late", 10*time.Millisecond, "a send later than this after its scheduled time counts as late")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress line")
	fs.StringVar(&f.logLevel, "log-level", "warn", "driver log level: debug, info, warn or error")
	fs.StringVar(&f.pomeloDir, "pomelo-dir", "", "--topology pomelo: where pomelo is installed from npm (default: serve's)")
	fs.IntVar(&f.serverNice, "server-nice", defaultServerNice, "run the server this bench starts (and the bare calibration server) this many nice steps below the driver, so a saturated machine delays the server, not the measuring driver (0: same priority; ignored with --target)")
	f.addWorkerFlags(fs) // bench_workers.go
	fs.StringArrayVar(&f.serveFlags, "serve-flag", nil, "pass this flag to the server this bench starts, e.g. --serve-flag=--coalesce-max=1ms (repeatable; not with --target)")
	fs.BoolVar(&f.failOnBound, "fail-on-driver-bound", false, "exit 98 when the driver, not the server, was the bottleneck (default: warn, exit 0)")
	fs.StringVar(&f.ceiling, "ceiling", "auto", "compare with this machine's bare fan-out ceiling (chatbench calibrate): auto (cached, else measured after the run; loopback targets only), recalibrate, or off")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatbench bench --scenario NAME|PATH [flags]\n\nflags:\n%s%s", fs.FlagUsages(), benchExitCodes)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := f.load(fs.Changed("seed"))
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageErr("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	switch f.ceiling {
	case "auto", "off", "recalibrate":
	default:
		return usageErr("--ceiling %q: use auto, recalibrate or off", f.ceiling)
	}
	if f.drain <= 0 {
		return usageErr("--drain %v: must be > 0", f.drain)
	}
	if f.serverNice < 0 || f.serverNice > 19 {
		return usageErr("--server-nice %d: use 0 (same priority as the driver) to 19", f.serverNice)
	}
	if f.late <= 0 {
		return usageErr("--late %v: must be > 0", f.late)
	}
	if f.target != "" {
		if _, _, err := net.SplitHostPort(f.target); err != nil {
			return usageErr("--target %q: want host:port of the gate, e.g. 127.0.0.1:3014", f.target)
		}
	}
	if err := f.split.check(s); err != nil {
		return err
	}
	for _, sf := range f.serveFlags {
		if f.target != "" {
			return usageErr("--serve-flag %s: only for the server bench starts; drop it with --target", sf)
		}
		if !strings.HasPrefix(sf, "--") {
			return usageErr("--serve-flag %q: give a serve flag with its value, e.g. --serve-flag=--coalesce-max=1ms", sf)
		}
	}
	if len(s.ServeFlags) > 0 {
		if f.target != "" {
			fmt.Fprintf(os.Stderr, "chatbench bench: scenario %s asks the server for %s; the server at --target %s must be started with them\n",
				s.Name, strings.Join(s.ServeFlags, " "), f.target)
		} else {
			f.scenarioServeFlags = s.ServeFlags
			fmt.Fprintf(os.Stderr, "chatbench bench: scenario %s: the server runs with %s\n", s.Name, strings.Join(s.ServeFlags, " "))
		}
	}
	if err := f.checkSourceAddrs(f.clientsPerProcess(s.Clients)); err != nil {
		return err
	}
	if f.split.workers == 0 { // workers hold the sockets of a split run
		if err := raiseFileLimit(s.Clients); err != nil {
			return err
		}
	}

	topology, serverNice := "external", 0
	var srvPID int // the started server's process: its tree's CPU is reported
	if f.target == "" {
		switch f.topology {
		case "single", "split", "pomelo":
		default:
			return usageErr("--topology %q: use single, split or pomelo", f.topology)
		}
		if f.connectors < 0 || f.shards < 0 {
			return usageErr("--connectors and --shards must be >= 0")
		}
		srv, err := startServer(ctx, f)
		if err != nil {
			return err
		}
		defer srv.stop()
		f.target = srv.gate
		srvPID = srv.p.Pid()
		topology, serverNice = f.topology, f.serverNice
		if f.topology == "pomelo" {
			fmt.Fprintf(os.Stderr, "chatbench bench: started stock pomelo %s, gate %s\n", peer.Version, f.target)
		} else {
			fmt.Fprintf(os.Stderr, "chatbench bench: started the reference server (%s), gate %s\n", f.topology, f.target)
		}
	}

	opts := driver.Options{
		Scenario: s, Target: f.target, Topology: topology, ServerNice: serverNice, Commit: commitID(), Out: f.out,
		SourceAddrs: f.sourceAddrs, LateThreshold: f.late, DrainTimeout: f.drain, Logger: log,
		Client: client.Options{Pollers: f.pollers},
	}
	if !f.quiet {
		opts.Progress = os.Stderr
	}
	fmt.Fprintf(os.Stderr, "chatbench bench: scenario %s: %d clients, %d rooms, target %s\n", s.Name, s.Clients, s.Rooms.Count, f.target)
	cpu0, t0 := treeCPU(srvPID), time.Now()
	var res *driver.Result
	if f.split.workers > 0 {
		res, err = runWorkers(ctx, f, opts)
	} else {
		res, err = driver.Run(ctx, opts)
	}
	var cpu []procCPU
	wall := time.Since(t0)
	if srvPID != 0 {
		cpu = cpuDelta(cpu0, treeCPU(srvPID))
		recordCPU(res, cpu) // cpu.go
	}
	if f.ceiling == "recalibrate" || (f.ceiling == "auto" && err == nil && isLoopback(f.target)) {
		withCeiling(ctx, f.ceiling, f, s, res) // calibrate.go
	}
	if res != nil && res.Dir != "" {
		if runs, lerr := reports.Load(res.Dir); lerr == nil {
			if _, rerr := reports.Render(out, res.Dir, runs); rerr != nil {
				fmt.Fprintf(os.Stderr, "chatbench bench: report: %v\n", rerr)
			}
		} else {
			fmt.Fprintf(os.Stderr, "chatbench bench: report: %v\n", lerr)
		}
		writeCPU(out, res.Dir, cpu, wall)
		fmt.Fprintf(out, "results: %s\n", res.Dir)
		if res.Connected > 0 {
			fmt.Fprintf(out, "driver memory: %d bytes per connected client (%d clients)\n", res.MemoryPerClient, res.Connected)
		}
	}
	if err != nil {
		return err // exit 1: the run could not run (or was interrupted)
	}
	verr := verdict(res, f.failOnBound, out)
	if res.Dir != "" {
		fmt.Fprintf(out, "report: %s\n", filepath.Join(res.Dir, reports.HTMLFile))
	}
	return verr
}

// verdict turns a run that ran into its exit: 99 when a threshold failed,
// 98 when driver-bound with --fail-on-driver-bound (else a warning), 0.
func verdict(res *driver.Result, failOnBound bool, out io.Writer) error {
	if res == nil || res.Summary == nil {
		return &exitError{code: exitRunFailed, err: errors.New("the driver produced no summary")}
	}
	sum := res.Summary
	var failed []string
	for _, t := range sum.Thresholds {
		if !t.Pass {
			failed = append(failed, fmt.Sprintf("%s (limit %s, value %s)", t.Name, thresholdValue(t.Limit, t.Unit), thresholdValue(t.Actual, t.Unit)))
		}
	}
	if sum.Driver.DriverBound {
		fmt.Fprintf(out, "warning: the run was driver-bound (the driver, not the server, was the bottleneck): %s\n", sum.Driver.DriverBoundWhy)
	}
	if len(failed) > 0 {
		return &exitError{code: exitThresholds, err: errors.New("thresholds failed: " + strings.Join(failed, "; "))}
	}
	if sum.Driver.DriverBound && failOnBound {
		return &exitError{code: exitDriverBound, err: errors.New("driver-bound run (--fail-on-driver-bound)")}
	}
	return nil
}

// thresholdValue prints a threshold's limit or value in its unit.
func thresholdValue(v float64, unit string) string {
	switch unit {
	case "us":
		return (time.Duration(v) * time.Microsecond).String()
	case "ratio":
		return strconv.FormatFloat(100*v, 'g', 4, 64) + "%"
	case "1/s":
		return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// load loads the scenario and applies the overrides, naming the flag at fault.
func (f *benchFlags) load(seedSet bool) (*scenario.Scenario, error) {
	if f.scenario == "" {
		return nil, usageErr("--scenario is required: one of %s, or a path to a YAML file", strings.Join(scenario.Names(), ", "))
	}
	switch {
	case f.duration < 0:
		return nil, usageErr("--duration %v: must be > 0 (e.g. 10s)", f.duration)
	case f.clients < 0:
		return nil, usageErr("--clients %d: must be > 0", f.clients)
	case f.rooms < 0:
		return nil, usageErr("--rooms %d: must be > 0", f.rooms)
	case f.rate < 0:
		return nil, usageErr("--rate %g: must be > 0 (messages per second per client)", f.rate)
	}
	s, err := scenario.Load(f.scenario)
	if err != nil {
		// scenario.Load's error already names the shipped scenarios
		return nil, usageErr("--scenario %s: %v", f.scenario, err)
	}
	o := scenario.Overrides{Duration: f.duration, Clients: f.clients, Rooms: f.rooms, Rate: f.rate}
	if seedSet {
		o.Seed = &f.seed
	}
	if err := s.Apply(o); err != nil {
		return nil, usageErr("the overrides (--duration/--clients/--rooms/--rate/--seed) do not fit scenario %s: %v", s.Name, err)
	}
	return s, nil
}

func (f *benchFlags) checkSourceAddrs(clients int) error {
	loopback := true
	if f.target != "" {
		host, _, _ := net.SplitHostPort(f.target)
		ip := net.ParseIP(host)
		loopback = host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	switch {
	case f.sourceAddrs < 0 || f.sourceAddrs > 254:
		return usageErr("--source-addrs %d: must be 1..254 (127.0.0.1..127.0.0.N)", f.sourceAddrs)
	case f.sourceAddrs > 1 && !loopback:
		return usageErr("--source-addrs %d: only for a loopback --target (127.x.x.x); drop it for %s", f.sourceAddrs, f.target)
	case f.sourceAddrs == 0 && loopback && clients > clientsPerSourceAddr:
		f.sourceAddrs = (clients + clientsPerSourceAddr - 1) / clientsPerSourceAddr
		if f.sourceAddrs > 254 {
			return usageErr("--clients %d: more than 254 source addresses x %d clients", clients, clientsPerSourceAddr)
		}
	}
	return nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one when the
// clients need it, and explains when even that is not enough.
func raiseFileLimit(clients int) error {
	need := uint64(clients) + 256
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nil
	}
	if rl.Cur >= need {
		return nil
	}
	if rl.Max >= need {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
			return nil
		}
	}
	return usageErr("--clients %d needs about %d open files, but the limit is %d (hard %d): lower --clients or raise ulimit -n",
		clients, need, rl.Cur, rl.Max)
}

// commit is the chatbench commit, stamped at build time:
// go build -ldflags "-X main.commit=$(git rev-parse --short=12 HEAD)" (make build).
var commit string

// commitID is the commit of this binary: the build-time stamp, else the
// Go toolchain's vcs.revision, else "unknown"; never the repository of
// the working directory (that may be any repository).
func commitID() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "-dirty"
		}
		if rev != "" {
			return rev
		}
	}
	return "unknown"
}

// childServer is a `chatbench serve` started from this same binary.
type childServer struct {
	p     *proc.Process
	gate  string
	ready proc.Fields // every key of its READY line
}

// readyTimeout bounds the wait for the started server's READY line.
var readyTimeout = 30 * time.Second

// pomeloReadyTimeout bounds the start of stock pomelo, whose first start
// installs it from the npm registry.
var pomeloReadyTimeout = 3 * time.Minute

// startServer starts `chatbench serve` on random ports (-1: the server
// binds them itself, so parallel benches cannot collide) and reads the
// addresses from the READY line it prints on stdout:
// READY gate=H:P http=H:P topology=... connectors=H:P,...
func startServer(ctx context.Context, f benchFlags) (*childServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the reference server: %w", err)
	}
	args := []string{"serve", "--topology", f.topology, "--host", "127.0.0.1",
		"--gate-port", "-1", "--connector-port", "-1", "--http-port", "-1", "--log-level", "warn"}
	if f.connectors > 0 {
		args = append(args, "--connectors", strconv.Itoa(f.connectors))
	}
	if f.shards > 0 {
		args = append(args, "--shards", strconv.Itoa(f.shards))
	}
	if f.pomeloDir != "" {
		args = append(args, "--pomelo-dir", f.pomeloDir)
	}
	args = append(args, f.scenarioServeFlags...) // the scenario's first: --serve-flag wins
	args = append(args, f.serveFlags...)
	timeout := readyTimeout
	if f.topology == "pomelo" {
		timeout = pomeloReadyTimeout
	}
	return startChild(ctx, exe, args, f.serverNice, timeout)
}

// startChild runs exe args as role "serve", nice steps nicer than us, and
// waits for its READY line, which must name the gate; its other output goes
// to our stderr prefixed [serve].
func startChild(ctx context.Context, exe string, args []string, nice int, timeout time.Duration) (*childServer, error) {
	p, f, err := proc.StartReady(ctx, proc.Options{
		Role: "serve", Path: exe, Args: args, Nice: nice,
		ReadyTimeout: timeout, StopTimeout: 15 * time.Second,
		// a launcher child, if the bench dies, still stops its own children
		ParentDeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, fmt.Errorf("the started server: %w", err)
	}
	if f.Get("gate") == "" {
		_ = p.Stop()
		return nil, fmt.Errorf("the started server's READY line has no gate=: %v\n  command: %s %s", f, exe, strings.Join(args, " "))
	}
	return &childServer{p: p, gate: f.Get("gate"), ready: f}, nil
}

// stop asks the server to shut down (SIGTERM) and kills it after 15 s.
func (s *childServer) stop() { _ = s.p.Stop() }
