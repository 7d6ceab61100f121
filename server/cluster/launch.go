package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LaunchOptions configure Launch. Zero values mean the documented defaults.
type LaunchOptions struct {
	Binary   string   // the chatbench binary; default os.Executable()
	Topology Topology // servers to start; ports may be -1 (random, resolved from ready lines)
	// NATSHost and NATSPort place the embedded NATS server started when
	// Topology.NATS is empty. Default 127.0.0.1 and a random port.
	NATSHost string
	NATSPort int
	// ChildArgs are appended to every child's "serve --role ..." command line
	// (heartbeat, limits, log level).
	ChildArgs    []string
	Dir          string        // where the topology file is written; default a temporary directory
	Stdout       io.Writer     // the launcher's READY line; default os.Stdout
	Stderr       io.Writer     // children's log lines, prefixed "[id] "; default os.Stderr
	Logger       *slog.Logger  // the launcher's own log; nil: discard
	ReadyTimeout time.Duration // per server; default 30s
	StopTimeout  time.Duration // SIGTERM to SIGKILL; default 10s
}

// child is one server process.
type child struct {
	role, id string
	cmd      *exec.Cmd
	ready    chan readyLine // the child's READY line, once
	exited   chan struct{}  // closed after Wait
	err      error          // Wait's error, valid after exited

	mu   sync.Mutex
	tail []string // last log lines, for error messages
}

type readyLine struct{ client, http string }

// Launch runs a split cluster as child processes of the same binary:
// embedded NATS (unless the topology names one), then the chat shards, the
// connectors and the gate, each started as "serve --role R --id ID
// --topology-file F --nats URL" and awaited until it prints its READY line.
// Then it prints one line to Stdout:
//
//	READY gate=HOST:PORT http=HOST:PORT topology=split connectors=H:P,... shards=N nats=URL
//
// and runs until ctx ends (then it drains: SIGTERM to the gate, the
// connectors, the shards in turn, SIGKILL after StopTimeout) or a child dies
// (then it stops the rest and returns that child's error).
func Launch(ctx context.Context, o LaunchOptions) (err error) {
	if err := o.setDefaults(); err != nil {
		return err
	}
	t := o.Topology
	t.Connector = append([]ServerSpec(nil), t.Connector...)
	t.Gate = append([]ServerSpec(nil), t.Gate...)
	if err := t.Validate(); err != nil {
		return err
	}
	log := o.Logger
	if len(t.NATS) == 0 {
		ns, err := StartNATS(o.NATSHost, o.NATSPort)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		t.NATS = []string{ns.ClientURL()}
		log.Info("embedded NATS", "url", ns.ClientURL())
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "chatbench-split-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	file := filepath.Join(dir, "topology.json")
	if err := t.Save(file); err != nil {
		return fmt.Errorf("write topology: %w", err)
	}

	l := &launcher{o: o, file: file, nats: strings.Join(t.NATS, ","), log: log, out: &lockedWriter{w: o.Stderr}}
	defer func() {
		if serr := l.stopAll(); err == nil {
			err = serr
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil // interrupted while starting: a stop, not a failure
		}
	}()
	// Shards, then connectors (the gate needs their resolved ports), then the gate.
	if _, err := l.startGroup(ctx, RoleChat, t.Chat); err != nil {
		return err
	}
	readies, err := l.startGroup(ctx, RoleConnector, t.Connector)
	if err != nil {
		return err
	}
	var conns []string
	for i, r := range readies {
		t.Connector[i].ClientPort = portOf(r.client)
		if p := portOf(r.http); p > 0 {
			t.Connector[i].HTTPPort = p
		}
		conns = append(conns, r.client)
	}
	if err := t.Save(file); err != nil {
		return fmt.Errorf("write topology: %w", err)
	}
	g, err := l.startGroup(ctx, RoleGate, t.Gate[:1])
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Stdout, "READY gate=%s http=%s topology=split connectors=%s shards=%d nats=%s\n",
		g[0].client, dash(g[0].http), strings.Join(conns, ","), len(t.Chat), l.nats)
	log.Info("split cluster ready", "gate", g[0].client, "http", g[0].http, "connectors", len(conns), "shards", len(t.Chat))

	died := make(chan *child, len(l.children))
	for _, c := range l.children {
		go func() { <-c.exited; died <- c }()
	}
	select {
	case <-ctx.Done():
		log.Info("stopping the split cluster")
		return nil
	case c := <-died:
		if l.stopping() {
			return nil
		}
		return c.failure("exited")
	}
}

func (o *LaunchOptions) setDefaults() error {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the chatbench binary: %w", err)
		}
		o.Binary = exe
	}
	if o.NATSHost == "" {
		o.NATSHost = "127.0.0.1"
	}
	if o.NATSPort == 0 {
		o.NATSPort = -1
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	return nil
}

type launcher struct {
	o        LaunchOptions
	file     string
	nats     string
	log      *slog.Logger
	out      *lockedWriter
	children []*child

	mu   sync.Mutex
	stop bool
}

func (l *launcher) stopping() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stop
}

// startGroup starts every server of role at once and waits for all of them
// to be ready, in order.
func (l *launcher) startGroup(ctx context.Context, role string, specs []ServerSpec) ([]readyLine, error) {
	group := make([]*child, 0, len(specs))
	for _, s := range specs {
		c, err := l.start(role, s.ID)
		if err != nil {
			return nil, err
		}
		group = append(group, c)
	}
	out := make([]readyLine, 0, len(group))
	for _, c := range group {
		timer := time.NewTimer(l.o.ReadyTimeout)
		select {
		case r := <-c.ready:
			timer.Stop()
			out = append(out, r)
		case <-c.exited:
			timer.Stop()
			return nil, c.failure("failed to start")
		case <-timer.C:
			return nil, fmt.Errorf("%s %s: not ready within %v", role, c.id, l.o.ReadyTimeout)
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func (l *launcher) start(role, id string) (*child, error) {
	args := append([]string{"serve", "--role", role, "--id", id, "--topology-file", l.file, "--nats", l.nats}, l.o.ChildArgs...)
	cmd := exec.Command(l.o.Binary, args...)
	setParentDeathSignal(cmd)
	c := &child{role: role, id: id, cmd: cmd, ready: make(chan readyLine, 1), exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", role, id, err)
	}
	l.children = append(l.children, c)
	l.log.Debug("started", "id", id, "pid", cmd.Process.Pid)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(c, stdout, true) }()
	go func() { defer wg.Done(); l.pump(c, stderr, false) }()
	go func() {
		wg.Wait()
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// pump copies a child's output lines to the launcher's stderr with the
// child's id as prefix; a READY line on stdout marks the child ready.
func (l *launcher) pump(c *child, r io.Reader, stdout bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		if stdout && !sent && strings.HasPrefix(line, "READY ") {
			sent = true
			c.ready <- parseReady(line)
			continue
		}
		c.mu.Lock()
		if c.tail = append(c.tail, line); len(c.tail) > 5 {
			c.tail = c.tail[1:]
		}
		c.mu.Unlock()
		l.out.line("[" + c.id + "] " + line)
	}
}

// parseReady reads "READY role=.. id=.. client=H:P http=H:P".
func parseReady(line string) readyLine {
	var r readyLine
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		if v == "-" {
			v = ""
		}
		switch k {
		case "client":
			r.client = v
		case "http":
			r.http = v
		}
	}
	return r
}

func (c *child) failure(what string) error {
	c.mu.Lock()
	tail := strings.Join(c.tail, " | ")
	c.mu.Unlock()
	if tail != "" {
		return fmt.Errorf("%s %s %s (%v): %s", c.role, c.id, what, c.err, tail)
	}
	return fmt.Errorf("%s %s %s (%v)", c.role, c.id, what, c.err)
}

// stopAll drains the children in order: gate, connectors (their sessions
// leave their rooms on the shards), shards. SIGTERM, then SIGKILL after
// StopTimeout. It returns an error naming the children that had to be killed.
func (l *launcher) stopAll() error {
	l.mu.Lock()
	l.stop = true
	l.mu.Unlock()
	var errs []error
	for _, role := range []string{RoleGate, RoleConnector, RoleChat} {
		var group []*child
		for _, c := range l.children {
			if c.role == role {
				group = append(group, c)
			}
		}
		for _, c := range group {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
		deadline := time.NewTimer(l.o.StopTimeout)
		for _, c := range group {
			select {
			case <-c.exited:
			case <-deadline.C:
				for _, k := range group {
					_ = k.cmd.Process.Kill()
				}
				errs = append(errs, fmt.Errorf("%s %s did not stop within %v: killed", c.role, c.id, l.o.StopTimeout))
				<-c.exited
			}
		}
		deadline.Stop()
		for _, c := range group {
			<-c.exited
		}
	}
	return errors.Join(errs...)
}

// lockedWriter writes whole lines from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) line(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.w, s+"\n")
}
