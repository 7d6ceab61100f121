package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
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
	drain       time.Duration
	late        time.Duration
	quiet       bool
	logLevel    string
	ceiling     string
}

func runBench(ctx context.Context, args []string) error { return bench(ctx, args, os.Stdout) }

// bench runs the command, writing the text summary to out.
func bench(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench")
	var f benchFlags
	fs.StringVar(&f.scenario, "scenario", "", "shipped scenario name ("+strings.Join(scenario.Names(), ", ")+") or path of a YAML file")
	fs.StringVar(&f.target, "target", "", "gate host:port of the server to drive (empty: start the reference server as a child process, stop it after)")
	fs.StringVar(&f.topology, "topology", "single", "topology of the started server: single or split (ignored with --target)")
	fs.IntVar(&f.connectors, "connectors", 0, "connectors of the started server (default: serve's)")
	fs.IntVar(&f.shards, "shards", 0, "chat shards of the started split server (default: serve's)")
	fs.DurationVar(&f.duration, "duration", 0, "total length of the timed phases, scaled proportionally (default: the scenario's)")
	fs.IntVar(&f.clients, "clients", 0, "simulated clients (default: the scenario's)")
	fs.IntVar(&f.rooms, "rooms", 0, "rooms (default: the scenario's)")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second per client in chat and hop phases (default: the scenario's)")
	fs.Int64Var(&f.seed, "seed", 0, "random seed (default: the scenario's)")
	fs.StringVar(&f.out, "out", "results", "results root: the run writes <out>/<scenario>-<time>/")
	fs.IntVar(&f.sourceAddrs, "source-addrs", 0, "spread client sockets over 127.0.0.1..N (default: one per 25,000 clients on a loopback target)")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "longest wait for in-flight deliveries after a phase")
	fs.DurationVar(&f.late, "late", 10*time.Millisecond, "a send later than this after its scheduled time counts as late")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress line")
	fs.StringVar(&f.logLevel, "log-level", "warn", "driver log level: debug, info, warn or error")
	fs.StringVar(&f.ceiling, "ceiling", "auto", "compare with this machine's bare fan-out ceiling (chatbench calibrate): auto (cached, else measured after the run; loopback targets only), recalibrate, or off")
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
	if f.late <= 0 {
		return usageErr("--late %v: must be > 0", f.late)
	}
	if f.target != "" {
		if _, _, err := net.SplitHostPort(f.target); err != nil {
			return usageErr("--target %q: want host:port of the gate, e.g. 127.0.0.1:3014", f.target)
		}
	}
	if err := f.checkSourceAddrs(s.Clients); err != nil {
		return err
	}
	if err := raiseFileLimit(s.Clients); err != nil {
		return err
	}

	topology := "external"
	if f.target == "" {
		switch f.topology {
		case "single", "split":
		default:
			return usageErr("--topology %q: use single or split", f.topology)
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
		topology = f.topology
		fmt.Fprintf(os.Stderr, "chatbench bench: started the reference server (%s), gate %s\n", f.topology, f.target)
	}

	opts := driver.Options{
		Scenario: s, Target: f.target, Topology: topology, Commit: commit(), Out: f.out,
		SourceAddrs: f.sourceAddrs, LateThreshold: f.late, DrainTimeout: f.drain, Logger: log,
	}
	if !f.quiet {
		opts.Progress = os.Stderr
	}
	fmt.Fprintf(os.Stderr, "chatbench bench: scenario %s: %d clients, %d rooms, target %s\n", s.Name, s.Clients, s.Rooms.Count, f.target)
	res, err := driver.Run(ctx, opts)
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
		fmt.Fprintf(out, "results: %s\n", res.Dir)
		if res.Connected > 0 {
			fmt.Fprintf(out, "driver memory: %d bytes per connected client (%d clients)\n", res.MemoryPerClient, res.Connected)
		}
	}
	return err
}

func usageErr(format string, args ...any) error {
	fmt.Fprintf(os.Stderr, "chatbench bench: "+format+"\n", args...)
	return errUsage
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
		if !scenario.IsPath(f.scenario) {
			return nil, usageErr("--scenario %q: %v (shipped: %s; or give a path to a YAML file)", f.scenario, err, strings.Join(scenario.Names(), ", "))
		}
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

func commit() string {
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
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}

// childServer is a `chatbench serve` started from this same binary.
type childServer struct {
	cmd  *exec.Cmd
	gate string
	done chan error
}

// freePorts finds n consecutive free loopback ports.
func freePorts(n int) (int, error) {
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := l.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{l}
		ok := true
		for i := 1; i < n; i++ {
			li, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, li)
		}
		for _, li := range ls {
			li.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports on 127.0.0.1", n)
}

func startServer(ctx context.Context, f benchFlags) (*childServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the reference server: %w", err)
	}
	ncon := max(f.connectors, 1)
	gate, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	httpPort, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	conn, err := freePorts(ncon)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--topology", f.topology, "--host", "127.0.0.1",
		"--gate-port", strconv.Itoa(gate), "--connector-port", strconv.Itoa(conn),
		"--http-port", strconv.Itoa(httpPort), "--log-level", "warn"}
	if f.connectors > 0 {
		args = append(args, "--connectors", strconv.Itoa(f.connectors))
	}
	if f.shards > 0 {
		args = append(args, "--shards", strconv.Itoa(f.shards))
	}
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", exe, err)
	}
	s := &childServer{cmd: cmd, done: make(chan error, 1)}
	tail := &lastLines{}
	go prefixLines(os.Stderr, "[serve] ", stderr, tail)
	go func() { s.done <- cmd.Wait() }()

	health := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("the reference server exited before it was ready (%v): %s\n  command: %s %s",
				err, tail.String(), exe, strings.Join(args, " "))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := hc.Get(health + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the reference server did not answer %s/healthz within 30s", health)
		}
	}
	s.gate = net.JoinHostPort("127.0.0.1", strconv.Itoa(gate))
	if resp, err := hc.Get(health + "/config.json"); err == nil {
		var cfg struct {
			Gate struct {
				Host string `json:"host"`
				Port int    `json:"port"`
			} `json:"gate"`
		}
		if json.NewDecoder(resp.Body).Decode(&cfg) == nil && cfg.Gate.Port > 0 {
			host := cfg.Gate.Host
			if host == "" || host == "0.0.0.0" {
				host = "127.0.0.1"
			}
			s.gate = net.JoinHostPort(host, strconv.Itoa(cfg.Gate.Port))
		}
		resp.Body.Close()
	}
	return s, nil
}

// stop asks the server to shut down (SIGTERM) and kills it after 15 s.
func (s *childServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

type lastLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lastLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 5 {
		l.lines = l.lines[1:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, " | ")
}

func prefixLines(w io.Writer, prefix string, r io.Reader, tail *lastLines) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fmt.Fprintln(w, prefix+sc.Text())
		tail.add(sc.Text())
	}
}
