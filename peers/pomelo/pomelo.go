// Package pomelo runs stock pomelo 2.2.7 as a chat cluster, the third
// topology next to the reference server's single and split ones.
//
// The application in game-server/ is written here to behave as NetEase's
// chatofpomelo-websocket demo: a gate that hands each user a connector by
// crc32 of the name, connectors holding the websockets (heartbeat 3 s, route
// dictionary, onChat pushed as pomelo-protobuf), chat servers owning rooms by
// crc32 of the room id, onAdd told to the members already in a room and
// onLeave when a member's socket closes. One route is beyond the stock demo:
// connector.entryHandler.switchRoom, as the reference server has it, so the
// hop scenario runs here too. Pomelo itself (and crc) come from the
// npm registry by name and version (Install), into a folder that is not
// tracked; node comes from the system (Debian: nodejs and npm).
//
// Start writes the application, a servers.json for N connectors and M chat
// servers, and master.json into a fresh folder, starts pomelo's master with
// node (which spawns every server) through internal/proc (a custom readiness
// check: every server reported in, and the gate and connectors answer a
// handshake), and Stop ends every node process (the master's process group). A preloaded module (preload/loopback.js) binds every listening
// socket to the loopback host, sets TCP_NODELAY (unless Options.Nagle) and
// makes each node process exit when its parent is gone; it changes no
// pomelo code.
package pomelo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatbench/chatbench/internal/proc"
)

// The versions installed from the npm registry (as the stock demo pins them).
const (
	Version    = "2.2.7" // pomelo
	CRCVersion = "0.2.0" // crc, for the dispatch
)

// Server ids of the generated servers.json.
const (
	MasterID = "master-server-1"
	GateID   = "gate-server-1"
)

//go:embed game-server preload
var files embed.FS

// Options configure a cluster. The zero value is a stock-shaped 3x3 cluster
// on free loopback ports.
type Options struct {
	Connectors  int    // default 3
	ChatServers int    // default 3
	Host        string // listen and advertised host; default 127.0.0.1
	// GatePort and ConnectorPort (the first; the others follow) are the
	// client-facing ports; 0 picks free ports. The master's and the servers'
	// RPC ports are always free ports.
	GatePort      int
	ConnectorPort int
	// Dir holds node_modules with pomelo (Install); default DefaultDir().
	Dir string
	// Nagle leaves Nagle's algorithm on, as stock pomelo does (default: every
	// socket gets TCP_NODELAY; see the package doc).
	Nagle bool
	// Log receives the cluster's output, one line at a time, prefixed
	// "[pomelo] "; nil discards it.
	Log io.Writer
	// ReadyTimeout bounds the start; default 60s.
	ReadyTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Connectors <= 0 {
		o.Connectors = 3
	}
	if o.ChatServers <= 0 {
		o.ChatServers = 3
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Cluster is a running pomelo chat cluster.
type Cluster struct {
	Gate       string   // host:port of the gate
	Connectors []string // host:port of each connector, in servers.json order
	Spec       Spec     // what servers.json and master.json say

	p      *proc.Process // the master
	runDir string
	stop   sync.Once

	mu      sync.Mutex
	waiting string // what the readiness check still waits for
}

func (c *Cluster) setWaiting(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiting = fmt.Sprintf(format, args...)
}

// DefaultDir is where Install puts node_modules: peers/pomelo of the
// chatbench checkout in the working directory when there is one (the
// folder is not tracked), else chatbench/pomelo-2.2.7 in the user's cache.
func DefaultDir() string {
	if st, err := os.Stat(filepath.Join("peers", "pomelo", "game-server")); err == nil && st.IsDir() {
		return filepath.Join("peers", "pomelo")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "chatbench", "pomelo-"+Version)
	}
	return filepath.Join(os.TempDir(), "chatbench-pomelo-"+Version)
}

// ErrNoNode is returned when node or npm is not on PATH.
var ErrNoNode = errors.New("stock pomelo needs Node.js: install node and npm (Debian: apt-get install -y nodejs npm)")

// Installed reports whether dir/node_modules holds pomelo and crc at the
// versions this package runs.
func Installed(dir string) bool {
	return moduleVersion(dir, "pomelo") == Version && moduleVersion(dir, "crc") == CRCVersion
}

func moduleVersion(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
	if err != nil {
		return ""
	}
	var p struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Version
}

// Install puts pomelo and crc, by name and version from the npm registry,
// into dir/node_modules unless they are there already. Concurrent installs
// into one dir (parallel tests) wait for each other. npm's output goes to log.
func Install(ctx context.Context, dir string, log io.Writer) error {
	if Installed(dir) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("install pomelo %s: npm not found: %w", Version, ErrNoNode)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install pomelo %s: %w", Version, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("install pomelo %s: %w", Version, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("install pomelo %s: lock %s: %w", Version, lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if Installed(dir) { // another process installed it while we waited
		return nil
	}
	if log == nil {
		log = io.Discard
	}
	cmd := exec.CommandContext(ctx, npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
		"--loglevel=error", "--prefix", dir, "pomelo@"+Version, "crc@"+CRCVersion)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install pomelo %s: %s: %w", Version, strings.Join(cmd.Args, " "), err)
	}
	if !Installed(dir) {
		return fmt.Errorf("install pomelo %s: npm finished but %s holds pomelo %q and crc %q",
			Version, filepath.Join(dir, "node_modules"), moduleVersion(dir, "pomelo"), moduleVersion(dir, "crc"))
	}
	return nil
}

// Start installs pomelo if needed, starts the cluster and waits until it
// serves. Stop it when done (also after an error: Start cleans up itself).
func Start(ctx context.Context, o Options) (*Cluster, error) {
	o.defaults()
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("start stock pomelo: node not found: %w", ErrNoNode)
	}
	if err := Install(ctx, o.Dir, o.Log); err != nil {
		return nil, err
	}
	modules, err := filepath.Abs(filepath.Join(o.Dir, "node_modules"))
	if err != nil {
		return nil, err
	}
	spec, err := NewSpec(o)
	if err != nil {
		return nil, err
	}
	runDir, err := os.MkdirTemp("", "chatbench-pomelo-")
	if err != nil {
		return nil, fmt.Errorf("start stock pomelo: %w", err)
	}
	if err := writeApp(runDir, modules, spec); err != nil {
		os.RemoveAll(runDir)
		return nil, fmt.Errorf("start stock pomelo: %w", err)
	}
	c := &Cluster{Spec: spec, runDir: runDir}
	c.Gate = net.JoinHostPort(spec.Host, strconv.Itoa(spec.Gate.ClientPort))
	for _, s := range spec.Connectors {
		c.Connectors = append(c.Connectors, net.JoinHostPort(spec.Host, strconv.Itoa(s.ClientPort)))
	}
	nagle := "0"
	if o.Nagle {
		nagle = "1"
	}
	reported := make(chan string, 2*(2+len(spec.Connectors)+len(spec.Chats)))
	p, err := proc.Start(proc.Options{
		Role: "pomelo", Path: node, Args: []string{"app.js", "env=development"}, Dir: runDir,
		Env: append(os.Environ(),
			"NODE_OPTIONS="+strings.TrimSpace(os.Getenv("NODE_OPTIONS")+` -r "`+filepath.Join(runDir, "preload", "loopback.js")+`"`),
			"CHATBENCH_POMELO_HOST="+spec.Host, "CHATBENCH_POMELO_NAGLE="+nagle, "CHATBENCH_POMELO_ORPHAN_EXIT=1"),
		Log: o.Log, Prefix: "[pomelo] ",
		// every server prints "READY <server id>" once the master has seen
		// them all (app.js); the master relays its servers' output
		OnLine: func(_ proc.Stream, line string) {
			if id, ok := strings.CutPrefix(line, "READY "); ok {
				select {
				case reported <- strings.TrimSpace(id):
				default:
				}
			}
		},
		ReadyCheck:   func(ctx context.Context, _ *proc.Process) (proc.Fields, error) { return c.waitReady(ctx, reported) },
		ReadyTimeout: o.ReadyTimeout,
		StopTimeout:  5 * time.Second,
		SignalGroup:  true, // the master and the servers it spawned
		TailLines:    8,
	})
	if err != nil {
		os.RemoveAll(runDir)
		return nil, fmt.Errorf("start stock pomelo: %w", err)
	}
	c.p = p
	if _, err := p.WaitReady(ctx); err != nil {
		c.Stop()
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, fmt.Errorf("stock pomelo (still waiting: %s): %w", c.waiting, err)
	}
	return c, nil
}

// waitReady is the cluster's readiness check: every server in servers.json
// reported in, and the gate and each connector answer a pomelo handshake.
func (c *Cluster) waitReady(ctx context.Context, reported <-chan string) (proc.Fields, error) {
	want := map[string]bool{GateID: true}
	for _, s := range append(append([]Server(nil), c.Spec.Connectors...), c.Spec.Chats...) {
		want[s.ID] = true
	}
	for len(want) > 0 {
		c.setWaiting("servers %v did not report in", keys(want))
		select {
		case id := <-reported:
			delete(want, id)
		case <-ctx.Done():
			return nil, fmt.Errorf("servers %v did not report in: %w", keys(want), ctx.Err())
		}
	}
	for _, addr := range append([]string{c.Gate}, c.Connectors...) {
		for {
			err := probe(ctx, addr, time.Second)
			if err == nil {
				break
			}
			c.setWaiting("%s does not answer a pomelo handshake: %v", addr, err)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%s does not answer a pomelo handshake (%v): %w", addr, err, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return proc.Fields{"gate": c.Gate, "connectors": strings.Join(c.Connectors, ",")}, nil
}

// Done is closed when the cluster's master has exited.
func (c *Cluster) Done() <-chan struct{} { return c.p.Done() }

// Err says how the master exited, once Done is closed; nil before.
func (c *Cluster) Err() error {
	select {
	case <-c.p.Done():
		return c.p.Failure("exited")
	default:
		return nil
	}
}

// PID is the master's process id; every server is its child, in its process group.
func (c *Cluster) PID() int { return c.p.Pid() }

// Processes lists the cluster's live processes (the master and its
// servers: its process group, zombies left out; empty once stopped).
func (c *Cluster) Processes() []int { return groupMembers(c.p.Pid()) }

// Stop ends every process of the cluster: SIGTERM to its process group,
// SIGKILL after 5 s (to the group again if a server outlived the master);
// then it removes the run folder.
func (c *Cluster) Stop() {
	c.stop.Do(func() {
		_ = c.p.Stop()
		pgid := c.p.Pid()
		deadline := time.Now().Add(2 * time.Second)
		for groupAlive(pgid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if groupAlive(pgid) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		os.RemoveAll(c.runDir)
	})
}

// groupAlive reports whether process group pgid has a live process.
func groupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil && len(groupMembers(pgid)) > 0
}

// groupMembers lists the processes of process group pgid that are not
// zombies (from /proc).
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // state ppid pgrp ...
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// writeApp writes the application, its generated configuration and the
// preload module into dir, and links dir/node_modules to modules.
func writeApp(dir, modules string, spec Spec) error {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(strings.TrimPrefix(p, "game-server"), "/"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return err
	}
	servers, err := spec.ServersJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "servers.json"), servers, 0o644); err != nil {
		return err
	}
	master, err := spec.MasterJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "master.json"), master, 0o644); err != nil {
		return err
	}
	return os.Symlink(modules, filepath.Join(dir, "node_modules"))
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
