package cluster

// Tests with real processes: the chatbench binary (built once, lazily) runs
// each role, over a NATS server in this test process or an external
// nats-server process.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/server/cluster/clustertest"
	"github.com/chatbench/chatbench/server/room"
	"github.com/chatbench/chatbench/server/servertest"
)

func TestMain(m *testing.M) { os.Exit(clustertest.Main(m)) }

// chatbenchBinary builds cmd/chatbench once (without -race: the processes
// are the system under test, the race detector covers the in-process tests).
func chatbenchBinary(t *testing.T) string { return clustertest.Chatbench(t) }

// newLogWriter collects child logs; they are printed only when the test
// fails (or always with CHATBENCH_TEST_LOG set).
func newLogWriter(t *testing.T) *proc.Buffer {
	w := &proc.Buffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CHATBENCH_TEST_LOG") != "" {
			t.Logf("server logs:\n%s", w.String())
		}
	})
	return w
}

// procCluster is a split cluster of child processes driven by the
// launcher's own code, so a test can kill one server.
type procCluster struct {
	l     *launcher
	topo  Topology
	gate  string
	conns []string // connector client addresses, in topology order
	https []string // connector HTTP addresses, in topology order
}

func (p *procCluster) child(id string) *child {
	for _, c := range p.l.children {
		if c.id == id {
			return c
		}
	}
	return nil
}

// kill9 kills server id with SIGKILL and waits until it is gone.
func (p *procCluster) kill9(t *testing.T, id string) {
	t.Helper()
	c := p.child(id)
	if c == nil {
		t.Fatalf("no server %s", id)
	}
	if err := c.p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", id, err)
	}
	select {
	case <-c.p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die", id)
	}
}

// startProcs starts connectors x shards + a gate as processes of the
// chatbench binary over NATS at url (default: a NATS server in this process).
func startProcs(t *testing.T, connectors, shards int, url string, extra ...string) *procCluster {
	t.Helper()
	bin := chatbenchBinary(t)
	if url == "" {
		ns, err := StartNATS("127.0.0.1", -1, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		url = ns.ClientURL()
	}
	topo := Generate(GenerateOptions{Connectors: connectors, Shards: shards, GatePort: -1, ConnectorPort: -1, HTTPPort: -1})
	topo.NATS = []string{url}
	file := filepath.Join(t.TempDir(), "topology.json")
	if err := topo.Save(file); err != nil {
		t.Fatal(err)
	}
	lo := LaunchOptions{Binary: bin, Stderr: newLogWriter(t), ChildArgs: append([]string{"--log-level=info"}, extra...)}
	if err := lo.setDefaults(); err != nil {
		t.Fatal(err)
	}
	l := &launcher{o: lo, file: file, nats: url, log: lo.Logger, out: proc.NewSyncWriter(lo.Stderr)}
	t.Cleanup(func() {
		if err := l.stopAll(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	p := &procCluster{l: l, topo: topo}
	ctx := context.Background()
	if _, err := l.startGroup(ctx, RoleChat, topo.Chat); err != nil {
		t.Fatal(err)
	}
	readies, err := l.startGroup(ctx, RoleConnector, topo.Connector)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range readies {
		p.topo.Connector[i].ClientPort = portOf(r.client)
		p.conns = append(p.conns, r.client)
		p.https = append(p.https, r.http)
	}
	if err := p.topo.Save(file); err != nil {
		t.Fatal(err)
	}
	g, err := l.startGroup(ctx, RoleGate, topo.Gate)
	if err != nil {
		t.Fatal(err)
	}
	p.gate = g[0].client
	return p
}

// roomsOn returns n room names owned by shard index i of shards.
func roomsOn(i, shards, n int) []string {
	var out []string
	for k := 0; len(out) < n; k++ {
		if r := fmt.Sprintf("room%d", k); room.Dispatch(r, shards) == i {
			out = append(out, r)
		}
	}
	return out
}

// usersOn returns n user names that the gate sends to connector index i.
func usersOn(prefix string, i, connectors, n int) []string {
	var out []string
	for k := 0; len(out) < n; k++ {
		if u := fmt.Sprintf("%s%d", prefix, k); room.Dispatch(u, connectors) == i {
			out = append(out, u)
		}
	}
	return out
}

// enterAll enters each of names into rid and waits until everyone saw the
// onAdd of every later joiner (a newcomer gets none of itself).
func enterAll(t *testing.T, gate, rid string, names ...string) []*servertest.Client {
	t.Helper()
	var cs []*servertest.Client
	for _, n := range names {
		c, _ := servertest.Enter(t, gate, n, rid)
		cs = append(cs, c)
	}
	for i, c := range cs {
		for range len(names) - i - 1 {
			c.WaitPush("onAdd")
		}
	}
	return cs
}

func TestSuiteSplitProcesses(t *testing.T) {
	servertest.RunSuite(t, func(t *testing.T) servertest.Target {
		return servertest.Target{GateAddr: startProcs(t, 2, 2, "").gate}
	})
}

// TestShardCrash: kill -9 of a shard makes requests for its rooms fail with
// 504 within 2 s; rooms of the other shard keep working across connectors.
func TestShardCrash(t *testing.T) {
	p := startProcs(t, 2, 2, "")
	ids := p.topo.ShardIDs()
	deadRoom, liveRoom := roomsOn(0, 2, 1)[0], roomsOn(1, 2, 1)[0]
	a, b := usersOn("a", 0, 2, 1)[0], usersOn("b", 1, 2, 1)[0]
	dead := enterAll(t, p.gate, deadRoom, a, b)
	live := enterAll(t, p.gate, liveRoom, a, b)

	p.kill9(t, ids[0])
	for _, tc := range []struct {
		what  string
		c     *servertest.Client
		route string
		body  map[string]any
	}{
		{"send in a room of the dead shard", dead[0], "chat.chatHandler.send", map[string]any{"content": "x", "target": "*"}},
		{"send from the other connector", dead[1], "chat.chatHandler.send", map[string]any{"content": "x", "target": "*"}},
		{"switch into a room of the dead shard", live[0], "connector.entryHandler.switchRoom", map[string]any{"rid": roomsOn(0, 2, 2)[1]}},
	} {
		start := time.Now()
		r := tc.c.Request(tc.route, tc.body)
		if took := time.Since(start); r["code"] != float64(504) || took > 2*time.Second {
			t.Errorf("%s: %v after %v, want code 504 within 2s", tc.what, r, took)
		} else if msg, _ := r["message"].(string); !strings.Contains(msg, ids[0]) {
			t.Errorf("%s: message %q does not name the shard", tc.what, msg)
		}
	}
	c, _ := servertest.DialErr(t, p.conns[0])
	if r := c.Request("connector.entryHandler.enter", map[string]any{"username": "late", "rid": deadRoom}); r["code"] != float64(504) {
		t.Errorf("enter into a room of the dead shard = %v, want 504", r)
	}
	// The connectors count the failures; their /healthz stays ok (the bus is up).
	for i, h := range p.https {
		if code, body := httpBody(t, "http://"+h+"/healthz"); code != 200 || !strings.Contains(body, `"role":"connector"`) {
			t.Errorf("connector %d /healthz = %d %s", i+1, code, body)
		}
	}
	if _, body := httpBody(t, "http://"+p.https[0]+"/metrics"); !regexp.MustCompile(`chatbench_bus_unavailable_total\{server="connector-1"\} [1-9]`).MatchString(body) {
		t.Errorf("connector-1 /metrics has no 504 count:\n%s", grepLines(body, "chatbench_bus"))
	}
	// The other shard's room still works, across both connectors.
	live[0].Request("chat.chatHandler.send", map[string]any{"content": "still here", "target": "*"})
	for _, c := range live {
		if p := c.WaitPush("onChat"); p.Body["msg"] != "still here" {
			t.Fatalf("onChat in the live room = %v", p.Body)
		}
	}
	// A hung shard (SIGSTOP) has a live subscription but never answers: the
	// request timeout still answers 504 within 2 s.
	hung := p.child(ids[1]).p
	if err := hung.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer hung.Signal(syscall.SIGCONT)
	waitStopped(t, hung.Pid())
	// Enter and switch must not wait a second timeout for their rollback.
	hungRooms := roomsOn(1, 2, 3)
	fresh, err := servertest.DialErr(t, p.conns[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what  string
		c     *servertest.Client
		route string
		body  map[string]any
	}{
		{"send to a hung shard", live[1], "chat.chatHandler.send", map[string]any{"content": "x", "target": "*"}},
		{"enter into a hung shard", fresh, "connector.entryHandler.enter", map[string]any{"username": "frozen", "rid": hungRooms[1]}},
		{"switch into a hung shard", live[0], "connector.entryHandler.switchRoom", map[string]any{"rid": hungRooms[2]}},
	} {
		start := time.Now()
		r := tc.c.Request(tc.route, tc.body)
		if took := time.Since(start); r["code"] != float64(504) || took > 2*time.Second {
			t.Errorf("%s: %v after %v, want 504 within 2s", tc.what, r, took)
		} else {
			t.Logf("%s: 504 after %v", tc.what, took)
		}
	}
}

// TestConnectorCrash: kill -9 of a connector makes its members leave: the
// members on the other connector get onLeave within a bounded time, in rooms
// of both shards, and the rooms keep working.
func TestConnectorCrash(t *testing.T) {
	p := startProcs(t, 2, 2, "")
	doomed := usersOn("d", 0, 2, 2)
	keep := usersOn("k", 1, 2, 1)[0]
	var rooms []string
	for i := range 2 {
		rooms = append(rooms, roomsOn(i, 2, 1)[0])
	}
	var keepers []*servertest.Client
	for i, rid := range rooms {
		cs := enterAll(t, p.gate, rid, keep, doomed[i])
		keepers = append(keepers, cs[0])
	}
	start := time.Now()
	p.kill9(t, p.topo.Connector[0].ID)
	for i, c := range keepers {
		if got := c.WaitPush("onLeave"); got.Body["user"] != doomed[i] {
			t.Fatalf("onLeave in %s = %v, want %s", rooms[i], got.Body, doomed[i])
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("onLeave took %v after kill -9, want at most 3s", took)
	} else {
		t.Logf("onLeave %v after kill -9", took)
	}
	for i, c := range keepers {
		users := c.Request("connector.entryHandler.switchRoom", map[string]any{"rid": rooms[1-i] + "x"})
		if _, ok := users["users"]; !ok {
			t.Fatalf("switch after the crash = %v", users)
		}
	}
}

// TestLauncher runs `chatbench serve --topology split` as a process: the
// READY line, the gate's HTTP port, a message across connectors. Then a
// shard is killed under it: the launcher reports it loudly and keeps the
// rest running (the gate, the other shard's rooms, across connectors).
func TestLauncher(t *testing.T) {
	l := startLauncher(t, "--connectors", "2", "--shards", "2")
	rid := roomsOn(1, 2, 1)[0]
	cs := enterAll(t, l.ready["gate"], rid, usersOn("u", 0, 2, 1)[0], usersOn("u", 1, 2, 1)[0])
	cs[0].Request("chat.chatHandler.send", map[string]any{"content": "across", "target": "*"})
	for _, c := range cs {
		if p := c.WaitPush("onChat"); p.Body["msg"] != "across" {
			t.Fatalf("onChat = %v", p.Body)
		}
	}
	for _, path := range []string{"/healthz", "/metrics", "/config.json", "/"} {
		if code := httpGet(t, "http://"+l.ready["http"]+path); code != 200 {
			t.Errorf("gate HTTP %s = %d", path, code)
		}
	}
	kids := childPIDs(t, l.p.Pid())
	if len(kids) != 5 {
		t.Fatalf("launcher children = %v, want 5", kids)
	}
	if err := syscall.Kill(childWithID(t, kids, "chat-1"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l.waitLog(t, `[chat-1] exited: signal: killed — its rooms answer 504 until it is back`)
	// The rest keep running: the launcher, the gate, the other shard's rooms.
	select {
	case <-l.p.Done():
		t.Fatalf("launcher exited after a shard died: %v\n%s", l.p.Err(), l.stderr())
	default:
	}
	fresh := enterAll(t, l.ready["gate"], roomsOn(1, 2, 2)[1], usersOn("v", 0, 2, 1)[0], usersOn("v", 1, 2, 1)[0])
	for _, group := range [][]*servertest.Client{cs, fresh} {
		group[1].Request("chat.chatHandler.send", map[string]any{"content": "after", "target": "*"})
		for _, c := range group {
			if p := c.WaitPush("onChat"); p.Body["msg"] != "after" {
				t.Fatalf("onChat after the shard died = %v", p.Body)
			}
		}
	}
	c, _ := servertest.Enter(t, l.ready["gate"], "w", roomsOn(1, 2, 1)[0])
	if r := c.Request("connector.entryHandler.switchRoom", map[string]any{"rid": roomsOn(0, 2, 1)[0]}); r["code"] != float64(504) {
		t.Errorf("switch into a room of the dead shard = %v, want 504", r)
	}
	if got := len(childPIDs(t, l.p.Pid())); got != 4 {
		t.Errorf("launcher children after the crash = %d, want 4", got)
	}
}

// TestLauncherRestart: with --restart, a shard killed under the launcher
// comes back with the same id, and its rooms work again.
func TestLauncherRestart(t *testing.T) {
	l := startLauncher(t, "--connectors", "2", "--shards", "2", "--restart")
	rid := roomsOn(0, 2, 1)[0] // on chat-1
	kids := childPIDs(t, l.p.Pid())
	old := childWithID(t, kids, "chat-1")
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l.waitLog(t, "[chat-1] exited: signal: killed")
	l.waitLog(t, "[chat-1] restarted")
	if now := childWithID(t, childPIDs(t, l.p.Pid()), "chat-1"); now == old {
		t.Fatalf("chat-1 still has pid %d", old)
	}
	cs := enterAll(t, l.ready["gate"], rid, usersOn("r", 0, 2, 1)[0], usersOn("r", 1, 2, 1)[0])
	cs[0].Request("chat.chatHandler.send", map[string]any{"content": "back", "target": "*"})
	for _, c := range cs {
		if p := c.WaitPush("onChat"); p.Body["msg"] != "back" {
			t.Fatalf("onChat in %s after the restart = %v", rid, p.Body)
		}
	}
}

// TestLauncherExitOnChildFailure: with --exit-on-child-failure a child's
// death stops the rest and the launcher exits 1 naming it, with no orphans.
func TestLauncherExitOnChildFailure(t *testing.T) {
	l := startLauncher(t, "--connectors", "1", "--shards", "1", "--exit-on-child-failure")
	kids := childPIDs(t, l.p.Pid())
	if err := syscall.Kill(childWithID(t, kids, "chat-1"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := l.wait(t, 15*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !regexp.MustCompile(`chat chat-1 exited .*killed`).MatchString(l.stderr()) {
		t.Fatalf("launcher after a child's crash: %v; stderr:\n%s", err, l.stderr())
	}
	for pid := range kids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("child %d survived the launcher", pid)
		}
	}
}

// childWithID returns the pid of the child started with --id id.
func childWithID(t *testing.T, kids map[int]string, id string) int {
	t.Helper()
	for pid, args := range kids {
		if strings.Contains(args, "--id\x00"+id+"\x00") {
			return pid
		}
	}
	t.Fatalf("no child with --id %s in %v", id, kids)
	return 0
}

// TestLauncherStartFailure: a connector that cannot listen makes the
// launcher exit non-zero with the child's error.
func TestLauncherStartFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	cmd := clustertest.Command(chatbenchBinary(t), "serve", "--topology", "split", "--gate-port", "-1", "--http-port", "-1",
		"--connector-port", port, "--log-level", "warn")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "connector connector-1 failed to start") || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("launcher with a busy connector port: %v\n%s", err, out)
	}
}

// TestExternalNATS runs the launcher against a real nats-server process
// (from PATH, else built from the nats-server module in go.mod).
func TestExternalNATS(t *testing.T) {
	url := "nats://" + startNATSProc(t, "-a", "127.0.0.1", "-p", "-1").addr
	l := startLauncher(t, "--connectors", "2", "--shards", "2", "--nats", url)
	if l.ready["nats"] != url {
		t.Fatalf("READY nats=%s, want the external %s", l.ready["nats"], url)
	}
	for i := range 2 {
		rid := roomsOn(i, 2, 1)[0]
		cs := enterAll(t, l.ready["gate"], rid, usersOn("x", 0, 2, 1)[0], usersOn("x", 1, 2, 1)[0])
		cs[1].Request("chat.chatHandler.send", map[string]any{"content": rid, "target": "*"})
		for _, c := range cs {
			if p := c.WaitPush("onChat"); p.Body["msg"] != rid {
				t.Fatalf("onChat = %v", p.Body)
			}
		}
	}
}

type launched struct {
	p     *proc.Process
	ready proc.Fields
	logs  *proc.Buffer
}

func (l *launched) stderr() string {
	return l.logs.String()
}

// waitLog polls the launcher's stderr until it contains s.
func (l *launched) waitLog(t *testing.T, s string) {
	t.Helper()
	testwait.Until(t, 20*time.Second, func() error {
		if out := l.stderr(); !strings.Contains(out, s) {
			return fmt.Errorf("launcher stderr has no %q:\n%s", s, out)
		}
		return nil
	})
}

func (l *launched) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-l.p.Done():
		return l.p.Err()
	case <-time.After(d):
		t.Fatalf("launcher still running after %v", d)
		return nil
	}
}

// startLauncher runs `chatbench serve --topology split` with random ports
// and waits for its READY line; t.Cleanup stops it with SIGTERM.
func startLauncher(t *testing.T, args ...string) *launched {
	t.Helper()
	args = append([]string{"serve", "--topology", "split", "--gate-port", "-1", "--http-port", "-1", "--connector-port", "-1", "--log-level", "info"}, args...)
	l := &launched{logs: newLogWriter(t)}
	p, err := proc.Start(proc.Options{Role: "launcher", Path: chatbenchBinary(t), Args: args,
		Log: l.logs, NoPrefix: true, ReadyTimeout: 60 * time.Second, StopTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l.p = p
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("launcher: %v", err)
		}
	})
	if l.ready, err = p.WaitReady(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, l.stderr())
	}
	return l
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	code, _ := httpBody(t, url)
	return code
}

func httpBody(t *testing.T, url string) (int, string) {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// childPIDs returns the children of pid with their NUL-separated command lines.
func childPIDs(t *testing.T, pid int) map[int]string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil || len(tasks) == 0 {
		t.Skipf("no /proc children lists here: %v", err)
	}
	out := map[int]string{}
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			k, _ := strconv.Atoi(s)
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
			out[k] = string(cmdline)
		}
	}
	return out
}

// waitStopped polls /proc until pid is in the stopped state (kill returns
// before the kernel has stopped every thread).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	testwait.Until(t, 5*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// pid (comm) S ...: the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); err != nil || i <= 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return fmt.Errorf("process %d not stopped: %q %v", pid, b, err)
		}
		return nil
	})
}

// TestShardRestart: a shard killed and started again (same id, empty rooms)
// makes the connectors kick the members of the rooms it lost, so they never
// share a room with members of the new incarnation; the other shard's
// rooms are untouched.
func TestShardRestart(t *testing.T) {
	p := startProcs(t, 2, 2, "")
	id := p.topo.ShardIDs()[0]
	lost, kept := roomsOn(0, 2, 1)[0], roomsOn(1, 2, 1)[0]
	old := enterAll(t, p.gate, lost, usersOn("o", 0, 2, 1)[0], usersOn("o", 1, 2, 1)[0])
	stay := enterAll(t, p.gate, kept, usersOn("s", 0, 2, 1)[0], usersOn("s", 1, 2, 1)[0])

	p.kill9(t, id)
	spec, _ := p.topo.Find(RoleChat, id)
	if _, err := p.l.startGroup(context.Background(), RoleChat, []ServerSpec{spec}); err != nil {
		t.Fatal(err)
	}
	for i, c := range old {
		err, kicks := c.WaitClosed()
		if len(kicks) != 1 || !strings.Contains(kicks[0], id+" restarted") {
			t.Errorf("old member %d of %s: closed with %v, kicks %v; want a kick naming the restart", i, lost, err, kicks)
		}
	}
	fresh, users := servertest.Enter(t, p.gate, usersOn("n", 0, 2, 1)[0], lost)
	if len(users) != 1 {
		t.Fatalf("users of %s after the restart = %v, want only the new member", lost, users)
	}
	fresh.Request("chat.chatHandler.send", map[string]any{"content": "new era", "target": "*"})
	if got := fresh.WaitPush("onChat"); got.Body["msg"] != "new era" {
		t.Fatalf("onChat = %v", got.Body)
	}
	stay[1].Request("chat.chatHandler.send", map[string]any{"content": "unaffected", "target": "*"})
	for _, c := range stay {
		if got := c.WaitPush("onChat"); got.Body["msg"] != "unaffected" {
			t.Fatalf("onChat in %s = %v", kept, got.Body)
		}
	}
}

// TestLauncherDrain: SIGTERM to the launcher drains the cluster (sessions
// are kicked "server shutting down"), exits 0 and leaves no children.
func TestLauncherDrain(t *testing.T) {
	l := startLauncher(t, "--connectors", "2", "--shards", "1")
	kids := childPIDs(t, l.p.Pid())
	cs := enterAll(t, l.ready["gate"], "r", usersOn("u", 0, 2, 1)[0], usersOn("u", 1, 2, 1)[0])
	if err := l.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := l.wait(t, 15*time.Second); err != nil {
		t.Fatalf("launcher after SIGTERM: %v\n%s", err, l.stderr())
	}
	for i, c := range cs {
		if _, kicks := c.WaitClosed(); len(kicks) != 1 || !strings.Contains(kicks[0], "server shutting down") {
			t.Errorf("client %d kicks = %v, want [server shutting down]", i, kicks)
		}
	}
	for pid := range kids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("child %d outlived the launcher", pid)
		}
	}
}
