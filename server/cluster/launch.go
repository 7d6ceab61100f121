package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/internal/proc"
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
	ReadyTimeout time.Duration // per server; default proc.DefaultReadyTimeout (30s)
	StopTimeout  time.Duration // SIGTERM to SIGKILL; default proc.DefaultStopTimeout (10s)

	// After every server is ready, a child that dies is reported on Stderr
	// and the others keep running (fault isolation: a dead shard's rooms
	// answer 504, the rest of the cluster works). ExitOnChildFailure
	// instead stops the rest and makes Launch return that child's error.
	ExitOnChildFailure bool
	// Restart starts a dead child again with the same id and ports after
	// RestartBackoff (doubling per failed attempt, at most 8s), at most
	// MaxRestarts times in a row; the count starts again once the child has
	// stayed up for RestartWindow. Defaults: 500ms, 5, 1 minute.
	Restart        bool
	RestartBackoff time.Duration
	MaxRestarts    int
	RestartWindow  time.Duration
}

// child is one server process.
type child struct {
	role, id string
	p        *proc.Process
	restarts int // restarts in a row that led to this process
}

// readyLine holds the addresses of a server's READY line
// ("READY role=.. id=.. client=H:P http=H:P", "-" for none).
type readyLine struct{ client, http string }

// Launch runs a split cluster as child processes of the same binary:
// embedded NATS (unless the topology names one), then the chat shards, the
// connectors and the gate, each started as "serve --role R --id ID
// --topology-file F --nats URL" and awaited until it prints its READY line.
// Then it prints one line to Stdout:
//
//	READY gate=HOST:PORT http=HOST:PORT topology=split connectors=H:P,... shards=N nats=URL https=H:P,...
//
// (https: every child's HTTP address, gate first, then connectors, shards)
//
// and runs until ctx ends (then it drains: SIGTERM to the gate, the
// connectors, the shards in turn, SIGKILL after StopTimeout). A child that
// fails to start makes Launch stop the rest and return its error. A child
// that dies later is reported and, with Restart, started again; the others
// keep running (with ExitOnChildFailure Launch stops them and returns the
// child's error instead).
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
	var env []string
	if len(t.NATS) == 0 {
		// The embedded server admits only our children: they get its
		// random token in the environment, never on a command line
		// (which ps shows to every local user).
		token, err := randomToken()
		if err != nil {
			return err
		}
		ns, err := StartNATS(o.NATSHost, o.NATSPort, token)
		if err != nil {
			return err
		}
		env = []string{natsopts.EnvToken + "=" + token}
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

	l := &launcher{o: o, file: file, nats: strings.Join(t.NATS, ","), env: env, log: log, out: proc.NewSyncWriter(o.Stderr)}
	defer func() {
		if serr := l.stopAll(); err == nil {
			err = serr
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil // interrupted while starting: a stop, not a failure
		}
	}()
	// Shards, then connectors (the gate needs their resolved ports), then the gate.
	shards, err := l.startGroup(ctx, RoleChat, t.Chat)
	if err != nil {
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
	// Pin every resolved port in the file, so a restarted child (same id)
	// listens where its predecessor did.
	t.Gate[0].ClientPort = portOf(g[0].client)
	if p := portOf(g[0].http); p > 0 {
		t.Gate[0].HTTPPort = p
	}
	t.Chat = append([]ServerSpec(nil), t.Chat...)
	for i, r := range shards {
		if p := portOf(r.http); p > 0 {
			t.Chat[i].HTTPPort = p
		}
	}
	if err := t.Save(file); err != nil {
		return fmt.Errorf("write topology: %w", err)
	}
	// Every child's /healthz + /metrics address, gate first (watchers such
	// as a soak read each process's gauges).
	https := []string{}
	for _, r := range append(append(append([]readyLine(nil), g...), readies...), shards...) {
		if r.http != "" {
			https = append(https, r.http)
		}
	}
	fmt.Fprintf(o.Stdout, "READY gate=%s http=%s topology=split connectors=%s shards=%d nats=%s https=%s\n",
		g[0].client, dash(g[0].http), strings.Join(conns, ","), len(t.Chat), l.nats, dash(strings.Join(https, ",")))
	log.Info("split cluster ready", "gate", g[0].client, "http", g[0].http, "connectors", len(conns), "shards", len(t.Chat))

	return l.supervise(ctx, &t)
}

// supervise runs once everything is ready, until ctx ends: it reports a
// child that dies, restarts it with Restart, and returns its error with
// ExitOnChildFailure.
func (l *launcher) supervise(ctx context.Context, t *Topology) error {
	done := make(chan struct{})
	defer close(done)
	died := make(chan *child)
	watch := func(c *child) {
		go func() {
			select {
			case <-c.p.Done():
				select {
				case died <- c:
				case <-done:
				}
			case <-done:
			}
		}()
	}
	l.mu.Lock()
	for _, c := range l.children {
		watch(c)
	}
	l.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			l.log.Info("stopping the split cluster")
			return nil
		case c := <-died:
			if l.o.ExitOnChildFailure {
				return c.p.Failure("exited")
			}
			what := fmt.Sprintf("[%s] exited: %s — %s", c.id, exitReason(c.p.Err()), consequence(c.role))
			if !l.o.Restart {
				what += "; the rest keep running (--restart restarts it, --exit-on-child-failure stops them all)"
			}
			l.out.WriteLine(what)
			l.log.Error("child exited", "id", c.id, "role", c.role, "err", c.p.Err())
			if !l.o.Restart {
				continue
			}
			spec, err := t.Find(c.role, c.id)
			if err != nil {
				return err
			}
			nc, err := l.restart(ctx, c, spec)
			if ctx.Err() != nil {
				l.log.Info("stopping the split cluster")
				return nil
			}
			if err != nil {
				l.out.WriteLine(fmt.Sprintf("[%s] %v — %s; the rest keep running", c.id, err, consequence(c.role)))
				l.log.Error("child not restarted", "id", c.id, "err", err)
				continue
			}
			watch(nc)
		}
	}
}

// restart starts server spec again (same id, same ports) after a backoff,
// retrying up to MaxRestarts times in a row.
func (l *launcher) restart(ctx context.Context, dead *child, spec ServerSpec) (*child, error) {
	n := dead.restarts
	if time.Since(dead.p.ReadyAt()) >= l.o.RestartWindow {
		n = 0 // it had been up for a while: a fresh series
	}
	for n < l.o.MaxRestarts {
		n++
		backoff := min(l.o.RestartBackoff<<(n-1), 8*time.Second)
		l.out.WriteLine(fmt.Sprintf("[%s] restarting in %v (attempt %d of %d)", spec.ID, backoff, n, l.o.MaxRestarts))
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		c, err := l.start(dead.role, spec.ID)
		if err == nil {
			var r readyLine
			if r, err = l.waitReady(ctx, c); err == nil {
				c.restarts = n
				l.out.WriteLine(fmt.Sprintf("[%s] restarted: client=%s http=%s", spec.ID, dash(r.client), dash(r.http)))
				l.log.Info("child restarted", "id", spec.ID, "pid", c.p.Pid())
				return c, nil
			}
			c.p.Kill() // not ready in time: do not leave it half up
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		l.out.WriteLine(fmt.Sprintf("[%s] restart failed: %v", spec.ID, err))
	}
	return nil, fmt.Errorf("not restarted: gave up after %d attempts in a row", l.o.MaxRestarts)
}

// exitReason says how a child ended: "signal: killed", "exit status 1".
func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// consequence says what a dead server of role means for clients.
func consequence(role string) string {
	switch role {
	case RoleChat:
		return "its rooms answer 504 until it is back"
	case RoleConnector:
		return "its clients were disconnected, and users the gate sends to it cannot connect until it is back"
	case RoleGate:
		return "new clients cannot get a connector until it is back (connected clients are not affected)"
	}
	return "it is gone"
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
		o.ReadyTimeout = proc.DefaultReadyTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = proc.DefaultStopTimeout
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = 500 * time.Millisecond
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = 5
	}
	if o.RestartWindow <= 0 {
		o.RestartWindow = time.Minute
	}
	return nil
}

type launcher struct {
	o    LaunchOptions
	file string
	nats string
	env  []string // added to the children's environment (the embedded NATS token)
	log  *slog.Logger
	out  *proc.SyncWriter // o.Stderr: the children's lines and ours

	mu       sync.Mutex
	children []*child // the current process of each server (a restart replaces it)
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
		r, err := l.waitReady(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// waitReady waits for c's READY line.
func (l *launcher) waitReady(ctx context.Context, c *child) (readyLine, error) {
	f, err := c.p.WaitReady(ctx)
	if err != nil {
		select {
		case <-c.p.Done():
			if ctx.Err() == nil {
				return readyLine{}, c.p.Failure("failed to start")
			}
		default:
		}
		return readyLine{}, err
	}
	return readyLine{client: f.Get("client"), http: f.Get("http")}, nil
}

func (l *launcher) start(role, id string) (*child, error) {
	var env []string
	if len(l.env) > 0 {
		env = append(os.Environ(), l.env...) // later entries win
	}
	p, err := proc.Start(proc.Options{
		Role: role, ID: id, Path: l.o.Binary,
		Args:         append([]string{"serve", "--role", role, "--id", id, "--topology-file", l.file, "--nats", l.nats}, l.o.ChildArgs...),
		Env:          env,
		Log:          l.out,
		ReadyTimeout: l.o.ReadyTimeout,
		StopTimeout:  l.o.StopTimeout,
	})
	if err != nil {
		return nil, err
	}
	c := &child{role: role, id: id, p: p}
	l.mu.Lock()
	replaced := false
	for i, old := range l.children {
		if old.id == id { // a restart: stopAll drains the new process
			l.children[i], replaced = c, true
		}
	}
	if !replaced {
		l.children = append(l.children, c)
	}
	l.mu.Unlock()
	l.log.Debug("started", "id", id, "pid", p.Pid())
	return c, nil
}

// stopAll drains the children in order: gate, connectors (their sessions
// leave their rooms on the shards), shards. SIGTERM, then SIGKILL after
// StopTimeout. It returns an error naming the children that had to be killed.
func (l *launcher) stopAll() error {
	l.mu.Lock()
	children := append([]*child(nil), l.children...)
	l.mu.Unlock()
	var errs []error
	for _, role := range []string{RoleGate, RoleConnector, RoleChat} {
		var group []*child
		for _, c := range children {
			if c.role == role {
				group = append(group, c)
			}
		}
		ps := make([]*proc.Process, len(group))
		for i, c := range group {
			ps[i] = c.p
		}
		if err := proc.Stop(l.o.StopTimeout, ps...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// randomToken returns 32 random bytes in hex: the embedded NATS server's token.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("embedded NATS token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
