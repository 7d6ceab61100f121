package web_test

// The browser smoke test: headless Chromium (Debian's chromium package) driven
// by chromedp against a real reference server. Run just this test with
// `make smoke` (go test -run TestSmoke ./web/).
//
// Without /usr/bin/chromium the test skips, except with CI=true where it
// fails: CI installs the browser. Screenshots go to results/smoke/.
// It runs once per row of topologies: the single-process server, the split
// topology as real processes (gate, 2 connectors, 2 chat shards over NATS)
// with alice and bob on different connectors, and stock pomelo 2.2.7 (2x2).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatbench/chatbench/internal/browsertest"
	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/cluster"
	"github.com/chatbench/chatbench/server/cluster/clustertest"
	"github.com/chatbench/chatbench/server/room"
	"github.com/chatbench/chatbench/server/servertest"
	"github.com/chatbench/chatbench/web"
)

// TestMain removes the chatbench binary the split topology builds.
func TestMain(m *testing.M) { os.Exit(clustertest.Main(m)) }

// serverUnderTest is one way of running the reference server for the page.
type serverUnderTest struct {
	url string // the chat page, http://host:port/
	// connectors are the connectors' websocket addresses (host:port); every
	// page must be on one of them. apart: alice and bob must be on
	// different ones.
	connectors func() []string
	apart      bool
	// checkRoom, if set, checks where room rid lives with members in it.
	checkRoom func(t *testing.T, rid string, members int)
	// stop takes every server process down (the pages see their sockets
	// close); start brings it back on the same ports. Both nil: the
	// topology has no restart step.
	stop, start func(t *testing.T)
}

// topologies are the servers the smoke test runs against.
var topologies = []struct {
	name  string
	start func(t *testing.T) *serverUnderTest
}{
	{"single", startSingle},
	{"split", startSplit},
	{"pomelo", startPomelo}, // pomelo_smoke_test.go
}

// startSingle runs the single-process server (gate, one connector, rooms and
// the HTTP port with the page) on random ports.
func startSingle(t *testing.T) *serverUnderTest {
	t.Helper()
	opts := server.Options{Web: web.Handler()}
	// A 1 s heartbeat (2 s timeout) so the pages' heartbeats are exercised
	// several times during the test.
	opts.Connector.Heartbeat = time.Second
	s := servertest.Start(t, opts)
	gatePort, connPort, httpPort := portOf(t, s.GateAddr), portOf(t, s.ConnectorAddrs[0]), portOf(t, s.HTTPAddr)
	cur := s
	return &serverUnderTest{
		url:        "http://" + s.HTTPAddr + "/",
		connectors: func() []string { return cur.ConnectorAddrs },
		stop: func(t *testing.T) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cur.Shutdown(ctx); err != nil {
				t.Fatalf("stop server: %v", err)
			}
		},
		start: func(t *testing.T) {
			t.Helper()
			again := opts
			again.GatePort, again.ConnectorPort, again.HTTPPort = gatePort, connPort, httpPort
			cur = servertest.Start(t, again)
		},
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	var p int
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &p); i < 0 || err != nil {
		t.Fatalf("no port in %q", addr)
	}
	return p
}

// The split topology as real processes: the chatbench binary (built once by
// clustertest) runs `serve --topology split`, the launcher, which starts an
// embedded NATS server and then the chat shards, the connectors and the gate
// as its child processes. The test reaches them only over the network.
const splitConnectors, splitShards = 2, 2

// startSplit runs a gate, 2 connectors and 2 chat shards. alice and bob land
// on different connectors (the gate picks by room.Dispatch(uid)), and the
// room is a member of one chat shard process. The restart stops the whole
// cluster (the launcher drains gate, connectors, shards) and starts it again
// with the gate's and the connectors' ports of the first run.
func startSplit(t *testing.T) *serverUnderTest {
	t.Helper()
	bin := clustertest.Chatbench(t)
	topo := cluster.Generate(cluster.GenerateOptions{
		Connectors: splitConnectors, Shards: splitShards, GatePort: -1, ConnectorPort: -1, HTTPPort: -1,
	})
	cur := launchSplit(t, bin, topo)
	// The same ports again: the pages know the HTTP port, /config.json the
	// gate's, the gate the connectors'. The shards' and connectors' own
	// HTTP ports (/healthz, /metrics) stay random.
	again := topo
	again.Gate = slices.Clone(topo.Gate)
	again.Gate[0].ClientPort, again.Gate[0].HTTPPort = portOf(t, cur.gate), portOf(t, cur.http)
	again.Connector = slices.Clone(topo.Connector)
	for i, addr := range cur.conns {
		again.Connector[i].ClientPort = portOf(t, addr)
	}
	first := cur
	return &serverUnderTest{
		url:        "http://" + cur.http + "/",
		connectors: func() []string { return cur.conns },
		apart:      true,
		checkRoom:  func(t *testing.T, rid string, members int) { t.Helper(); cur.checkRoom(t, rid, members) },
		stop:       func(t *testing.T) { t.Helper(); cur.stop(t) },
		start: func(t *testing.T) {
			t.Helper()
			cur = launchSplit(t, bin, again)
			cur.samePorts(t, first.launched)
		},
	}
}

// launched is one run of `chatbench serve` as a child process, ready.
type launched struct {
	p          *proc.Process
	gate, http string   // from its READY line
	conns      []string // connector websocket addresses, connector-1 first
	logs       *proc.Buffer
	stopOnce   sync.Once
}

// launchServe starts `chatbench serve` with args and waits for its READY
// line (within readyTimeout), which must name topology, an HTTP address and
// conns connectors. onLine, if set, sees every output line. The child is
// stopped in t.Cleanup if still running; its logs are printed if the test
// fails.
func launchServe(t *testing.T, bin, topology string, args []string, conns int, readyTimeout time.Duration, onLine func(proc.Stream, string)) *launched {
	t.Helper()
	c := &launched{logs: &proc.Buffer{}}
	start := time.Now()
	p, err := proc.Start(proc.Options{
		Role: "serve --topology " + topology, Path: bin, Args: args,
		Log: c.logs, NoPrefix: true, ReadyTimeout: readyTimeout, StopTimeout: 20 * time.Second, OnLine: onLine,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.p = p
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CHATBENCH_TEST_LOG") != "" {
			t.Logf("%s logs:\n%s", topology, c.logs.String())
		}
	})
	t.Cleanup(func() { c.stop(t) }) // runs first: the logs above include the drain

	f, err := p.WaitReady(context.Background())
	if err != nil {
		t.Fatalf("%v", err)
	}
	c.gate, c.http, c.conns = f.Get("gate"), f.Get("http"), strings.Split(f.Get("connectors"), ",")
	if f["topology"] != topology || c.http == "" || len(c.conns) != conns {
		t.Fatalf("READY %v: want topology=%s, an HTTP address, %d connectors", f, topology, conns)
	}
	t.Logf("%s (pid %d) ready in %v: gate %s, http %s, connectors %v",
		topology, p.Pid(), time.Since(start).Round(time.Millisecond), c.gate, c.http, c.conns)
	return c
}

// stop ends serve with SIGTERM: it drains what it started (the gate, the
// connectors, whose sessions are kicked, the chat servers) and exits 0.
func (c *launched) stop(t *testing.T) {
	t.Helper()
	c.stopOnce.Do(func() {
		select {
		case <-c.p.Done():
			t.Errorf("%s had exited by itself: %v", c.p.Role(), c.p.Err())
			return
		default:
		}
		if err := c.p.Stop(); err != nil { // SIGTERM, SIGKILL after 20s
			t.Errorf("%s: %v", c.p.Role(), err)
		} else if err := c.p.Err(); err != nil {
			t.Errorf("%s after SIGTERM: %v", c.p.Role(), err)
		}
	})
}

// samePorts fails t unless c listens where first did (a restart).
func (c *launched) samePorts(t *testing.T, first *launched) {
	t.Helper()
	if c.gate != first.gate || c.http != first.http || !slices.Equal(c.conns, first.conns) {
		t.Fatalf("%s restarted on other ports: gate %s http %s connectors %v, was %s %s %v",
			c.p.Role(), c.gate, c.http, c.conns, first.gate, first.http, first.conns)
	}
}

// splitCluster is one run of the split launcher.
type splitCluster struct {
	*launched
	topo cluster.Topology

	mu        sync.Mutex
	shardHTTP map[string]string // chat shard id -> its /healthz and /metrics address
}

// shardReady matches a chat shard's "ready" log line as the launcher relays
// it on stderr (docs/split.md: the addresses are in each child's ready line).
var shardReady = regexp.MustCompile(`^\[(chat-\d+)\] .*\bmsg=ready\b.*\bhttp=(\S+)`)

// launchSplit starts the launcher on topo and waits until it and every
// shard's HTTP port are ready.
func launchSplit(t *testing.T, bin string, topo cluster.Topology) *splitCluster {
	t.Helper()
	file := filepath.Join(t.TempDir(), "topology.json")
	if err := topo.Save(file); err != nil {
		t.Fatal(err)
	}
	c := &splitCluster{topo: topo, shardHTTP: map[string]string{}}
	shards := make(chan struct{}, splitShards)
	args := []string{"serve", "--topology", "split", "--topology-file", file, "--heartbeat", "1s", "--log-level", "info"}
	c.launched = launchServe(t, bin, "split", args, splitConnectors, 30*time.Second, func(s proc.Stream, line string) {
		if m := shardReady.FindStringSubmatch(line); s == proc.Stderr && m != nil {
			c.mu.Lock()
			c.shardHTTP[m[1]] = m[2]
			c.mu.Unlock()
			select {
			case shards <- struct{}{}:
			default:
			}
		}
	})
	if f := c.p.Fields(); f["shards"] != fmt.Sprint(splitShards) {
		t.Fatalf("launcher %v: want %d shards", f, splitShards)
	}
	timeout := time.After(30 * time.Second)
	for range splitShards {
		select {
		case <-shards:
		case <-timeout:
			t.Fatalf("no ready log line with an HTTP address from every chat shard within 30s")
		}
	}
	c.mu.Lock()
	t.Logf("chat shards ready: %v", c.shardHTTP)
	c.mu.Unlock()
	return c
}

// checkRoom checks that room rid lives on the chat shard process that
// room.Dispatch names, with members in it, and on no other shard.
func (c *splitCluster) checkRoom(t *testing.T, rid string, members int) {
	t.Helper()
	ids := c.topo.ShardIDs()
	owner := ids[room.Dispatch(rid, len(ids))]
	c.mu.Lock()
	addrs := maps.Clone(c.shardHTTP)
	c.mu.Unlock()
	for _, id := range ids {
		var h struct {
			Status, Role, ID string
			Rooms            int
		}
		if err := json.Unmarshal([]byte(httpGet(t, "http://"+addrs[id]+"/healthz")), &h); err != nil {
			t.Fatalf("%s /healthz: %v", id, err)
		}
		want := 0
		if id == owner {
			want = 1
		}
		if h.Status != "ok" || h.Role != cluster.RoleChat || h.ID != id || h.Rooms != want {
			t.Fatalf("chat shard %s /healthz = %+v, want status ok, role chat, %d room(s) (room %q belongs to %s)", id, h, want, rid, owner)
		}
	}
	re := regexp.MustCompile(`(?m)^chatbench_room_members\{server="` + regexp.QuoteMeta(owner) + `"\} (\d+)$`)
	m := re.FindStringSubmatch(httpGet(t, "http://"+addrs[owner]+"/metrics"))
	if m == nil || m[1] != fmt.Sprint(members) {
		t.Fatalf("chat shard %s: chatbench_room_members = %v, want %d", owner, m, members)
	}
	t.Logf("room %q: on chat shard %s (%s, a process of its own) with %d members", rid, owner, addrs[owner], members)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	return string(b)
}

// repoRoot walks up from the test's working directory to go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the browser smoke test")
	}
	outDir := filepath.Join(repoRoot(t), "results", "smoke")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	browserCtx := browsertest.Start(t, "the browser smoke test", browsertest.Options{
		Extra: []chromedp.ExecAllocatorOption{chromedp.Flag("disable-quic", true)},
	})

	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			sut := topo.start(t)
			smoke(t, browserCtx, sut, filepath.Join(outDir, topo.name))
		})
	}
}

const xssAlert = `<img src=x onerror=alert(1)>`
const xssFlag = `<img src=x onerror="window.__xss='onerror ran'"><script>window.__xss='script ran'</script>`

func smoke(t *testing.T, browserCtx context.Context, sut *serverUnderTest, shotPrefix string) {
	room := "smoke"
	alice := openPage(t, browserCtx, "alice", sut.url)
	bob := openPage(t, browserCtx, "bob", sut.url)
	carol := openPage(t, browserCtx, "carol", sut.url)

	// Join; each sees the other.
	alice.login("alice", room)
	alice.waitPhase("online")
	if got := alice.text("#room-name"); got != room {
		t.Fatalf("alice: header room %q, want %q", got, room)
	}
	bob.login("bob", room)
	bob.waitPhase("online")
	alice.waitMember("bob")
	bob.waitMember("alice")
	alice.waitSystem("bob joined")
	checkPlacement(t, sut, room, alice, bob)

	// Messages both ways, to everyone.
	alice.send("*", "Hello bob, alice here")
	bob.waitMessage("alice", "*", "Hello bob, alice here")
	alice.waitMessage("alice", "*", "Hello bob, alice here") // the server echoes to the sender
	bob.send("*", "Hi alice! Bob here.")
	alice.waitMessage("bob", "*", "Hi alice! Bob here.")

	carol.login("carol", room)
	carol.waitPhase("online")
	alice.waitMember("carol")
	bob.waitMember("carol")
	carol.waitMember("alice")
	carol.waitMember("bob")
	checkPlacement(t, sut, room, alice, bob, carol)

	// A duplicate name gets a plain-words error on the login form.
	dup := openPage(t, browserCtx, "dup", sut.url)
	dup.login("bob", room)
	dup.waitJS(`document.getElementById('login-error').textContent === 'That name is taken in this room'`,
		`login error "That name is taken in this room"`)
	dup.waitPhase("login")
	if st := dup.state(); st.ReconnectPending || st.Joins != 1 {
		t.Fatalf("dup: a refused login must not start reconnecting: %+v", st)
	}
	dup.screenshot(shotPrefix + "-duplicate-name.png")
	dup.close()

	// A private message from alice to bob, picked in the member list.
	alice.do(chromedp.Click(`#members li[data-name="bob"]`, chromedp.NodeVisible))
	alice.waitJS(`document.getElementById('target').value === 'bob' && document.getElementById('composer').dataset.private === 'true'`,
		"target bob selected from the member list")
	alice.typeAndSend("psst bob: this one is private")
	bob.waitMessage("alice", "bob", "psst bob: this one is private")
	alice.waitMessage("alice", "bob", "psst bob: this one is private") // shown locally to its sender
	for _, p := range []*page{alice, bob} {
		m := p.findMessage("alice", "bob", "psst bob: this one is private")
		if !m.Private || m.Badge != "private" {
			p.t.Fatalf("%s: private message not marked as private: %+v", p.name, m)
		}
	}
	// Back to everyone by clicking bob again; carol gets this public message
	// after the private one was sent, and must never have seen the private one.
	alice.do(chromedp.Click(`#members li[data-name="bob"]`, chromedp.NodeVisible))
	alice.waitJS(`document.getElementById('target').value === '*'`, "target back to everyone")
	alice.typeAndSend("Public again: everyone sees this")
	carol.waitMessage("alice", "*", "Public again: everyone sees this")
	bob.waitMessage("alice", "*", "Public again: everyone sees this")
	for _, m := range carol.messages() {
		if strings.Contains(m.Text, "psst") || m.Target != "*" {
			t.Fatalf("carol received a message that was not for her: %+v", m)
		}
	}

	// Markup in messages is text: shown literally, nothing runs.
	bob.send("*", xssAlert)
	alice.send("*", xssFlag)
	for _, p := range []*page{alice, bob, carol} {
		p.waitMessage("bob", "*", xssAlert)
		p.waitMessage("alice", "*", xssFlag)
		p.checkNoScriptRan()
	}

	// Server restart: the pages say so, reconnect with backoff and re-enter.
	if sut.stop != nil {
		sut.stop(t)
		for _, p := range []*page{alice, bob, carol} {
			p.waitJS(`document.body.dataset.phase === 'reconnecting' && !document.getElementById('banner').hidden &&
				document.getElementById('banner-text').textContent === 'Connection lost, reconnecting...'`,
				`"Connection lost, reconnecting..." banner`)
		}
		alice.screenshot(shotPrefix + "-reconnecting.png")
		sut.start(t)
		for _, p := range []*page{alice, bob, carol} {
			p.waitPhase("online")
			p.waitSystem("Reconnected")
		}
		alice.waitMember("bob")
		alice.waitMember("carol")
		bob.waitMember("alice")
		checkPlacement(t, sut, room, alice, bob, carol)
		alice.send("*", "Back after the restart")
		bob.waitMessage("alice", "*", "Back after the restart")
		bob.send("alice", "Still here, alice (private)")
		alice.waitMessage("bob", "alice", "Still here, alice (private)")
	}

	// A phone-sized window: the member list folds away, the composer stays usable.
	carol.do(chromedp.EmulateViewport(400, 740))
	carol.screenshot(shotPrefix + "-carol-narrow.png")

	// Leaving: the others see it.
	carol.do(chromedp.Click("#leave", chromedp.NodeVisible))
	carol.waitPhase("login")
	alice.waitJS(`!document.querySelector('#members li[data-name="carol"]')`, "carol gone from the member list")
	alice.waitSystem("carol left")
	for _, p := range []*page{alice, bob, carol} {
		p.checkNoScriptRan()
	}

	// Heartbeats kept every session alive: entered once, plus once after the
	// restart; any other loss of connection would have entered again.
	wantEntered := 1
	if sut.stop != nil {
		wantEntered = 2
	}
	for _, p := range []*page{alice, bob} {
		if st := p.state(); st.Entered != wantEntered || st.Phase != "online" {
			p.t.Fatalf("%s: entered the room %d times, now %s; want %d and online (did a heartbeat time out?)",
				p.name, st.Entered, st.Phase, wantEntered)
		}
	}

	// Taller windows for the final pictures, so the whole conversation shows.
	for _, p := range []*page{alice, bob} {
		p.do(chromedp.EmulateViewport(1280, 1000))
		p.eval(`document.getElementById('messages').scrollTop = 1e9`)
	}
	bob.screenshot(shotPrefix + "-bob.png")
	alice.screenshot(shotPrefix + "-alice.png")
}

// checkPlacement checks that every page is on one of the server's
// connectors (the one the gate answered, as the page reports it), when the
// topology asks for it that alice and bob are on different connectors, and
// where the topology can tell, that room holds the pages' members.
func checkPlacement(t *testing.T, sut *serverUnderTest, room string, pages ...*page) {
	t.Helper()
	conns := sut.connectors()
	on := map[string]string{}
	for _, p := range pages {
		c := p.state().Connector
		if !slices.Contains(conns, c) {
			p.fail("on connector %q, which is not one of the server's %v", c, conns)
		}
		on[p.name] = c
	}
	if sut.apart && on["alice"] == on["bob"] {
		t.Fatalf("alice and bob are both on connector %s; this topology needs them on different connectors "+
			"(the gate picks room.Dispatch(name, %d): choose other names)", on["alice"], len(conns))
	}
	t.Logf("connectors: %v", on)
	if sut.checkRoom != nil {
		sut.checkRoom(t, room, len(pages))
	}
}

// page is one browser tab in its own browser context (its own storage), as
// one user.
type page struct {
	t     *testing.T
	name  string
	ctx   context.Context
	stop  context.CancelFunc
	sends int
}

const actionTimeout = 20 * time.Second

func openPage(t *testing.T, browserCtx context.Context, name, url string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	p := &page{t: t, name: name, ctx: ctx, stop: cancel}
	t.Cleanup(cancel)
	// The tab's first Run creates it and owns it: no timeout on this context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	p.do(
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(url),
		chromedp.WaitVisible("#login-form"),
	)
	// Any dialog (alert, confirm, prompt) would mean injected script ran; a
	// CSP violation would mean markup reached the DOM as HTML; page errors
	// and unhandled rejections are bugs.
	p.eval(`window.alert = window.confirm = window.prompt = (m) => { window.__xss = 'dialog: ' + m; };
		window.__errors = [];
		window.addEventListener('error', (e) => window.__errors.push('error: ' + e.message));
		window.addEventListener('unhandledrejection', (e) => window.__errors.push('unhandled rejection: ' + e.reason));
		document.addEventListener('securitypolicyviolation', (e) => window.__errors.push('CSP violation: ' + e.violatedDirective + ' ' + e.sample));`)
	return p
}

func (p *page) close() { p.stop() }

func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf("%s: %s", p.name, fmt.Sprintf(format, args...))
	// Best effort: what the page showed, to debug the failure.
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if dump, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.body.dataset.phase + ' | ' + document.getElementById('status-text').textContent + ' | ' +
		 document.getElementById('login-error').textContent + '\n' + document.getElementById('messages').innerText`)); err == nil {
		msg += "\npage state: " + dump
	}
	p.t.Fatal(msg)
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail("%v", err)
	}
}

func (p *page) eval(expr string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](expr))
}

func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(sel))
	if err != nil {
		p.fail("text of %s: %v", sel, err)
	}
	return s
}

// waitJS polls a JavaScript condition in the page until it holds.
func (p *page) waitJS(cond, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(actionTimeout-time.Second)))
	if err != nil {
		p.fail("waiting for %s: %v", what, err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (p *page) login(name, room string) {
	p.t.Helper()
	p.do(
		chromedp.WaitVisible("#name"),
		clearInput("name"),
		chromedp.SendKeys("#name", name),
		clearInput("room"),
		chromedp.SendKeys("#room", room),
		chromedp.Click("#join"),
	)
}

// clearInput empties an input's value (chromedp.Clear resets only the
// attribute, and SetValue refuses an empty string).
func clearInput(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%s).value = ''`, jsString(id)))
}

func (p *page) waitPhase(phase string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`document.body.dataset.phase === %s`, jsString(phase)), "phase "+phase)
}

func (p *page) waitMember(name string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`[...document.querySelectorAll('#members li')].some(li => li.dataset.name === %s)`, jsString(name)),
		"member "+name)
}

func (p *page) waitSystem(text string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`[...document.querySelectorAll('#messages li.system span')].some(s => s.textContent === %s)`, jsString(text)),
		fmt.Sprintf("system line %q", text))
}

// send picks the target in the composer ("*" is everyone) and sends text.
func (p *page) send(target, text string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`(() => { const s = document.getElementById('target'); s.value = %s;
		if (s.value !== %[1]s) throw new Error('no target ' + %[1]s); s.dispatchEvent(new Event('change')); })()`, jsString(target)))
	p.typeAndSend(text)
}

// typeAndSend types into the message box, sends it (the Send button, or the
// Enter key every other time, so both paths are covered) and waits until the
// server accepted it (the box clears on success).
func (p *page) typeAndSend(text string) {
	p.t.Helper()
	p.sends++
	submit := chromedp.Click("#send")
	if p.sends%2 == 0 {
		submit = chromedp.SendKeys("#text", "\r")
	}
	p.do(
		chromedp.WaitEnabled("#text"),
		clearInput("text"),
		chromedp.SendKeys("#text", text),
		submit,
	)
	p.waitJS(`document.getElementById('text').value === ''`, fmt.Sprintf("send %q accepted", text))
}

type pageState struct {
	Phase            string   `json:"phase"`
	Members          []string `json:"members"`
	ReconnectPending bool     `json:"reconnectPending"`
	Attempt          int      `json:"attempt"`
	Joins            int      `json:"joins"`
	Entered          int      `json:"entered"`
	Connector        string   `json:"connector"` // host:port of the connector the gate answered
}

func (p *page) state() pageState {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`window.chatbenchState()`))
	if err != nil {
		p.fail("read state: %v", err)
	}
	return st
}

type message struct {
	From    string `json:"from"`
	Target  string `json:"target"`
	Text    string `json:"text"`
	Private bool   `json:"private"`
	Mine    bool   `json:"mine"`
	Badge   string `json:"badge"`
}

const messagesJS = `[...document.querySelectorAll('#messages li.msg')].map(li => ({
	from: li.dataset.from, target: li.dataset.target, text: li.querySelector('.text').textContent,
	private: li.classList.contains('private'), mine: li.classList.contains('mine'),
	badge: li.querySelector('.badge')?.textContent ?? '' }))`

func (p *page) messages() []message {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[[]message](messagesJS))
	if err != nil {
		p.fail("read messages: %v", err)
	}
	return ms
}

func (p *page) waitMessage(from, target, text string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`(%s).some(m => m.from === %s && m.target === %s && m.text === %s)`,
		messagesJS, jsString(from), jsString(target), jsString(text)),
		fmt.Sprintf("message %q from %s to %s", text, from, target))
}

func (p *page) findMessage(from, target, text string) message {
	p.t.Helper()
	for _, m := range p.messages() {
		if m.From == from && m.Target == target && m.Text == text {
			return m
		}
	}
	p.fail("no message %q from %s to %s", text, from, target)
	return message{}
}

// checkNoScriptRan: no flag set by injected script, no dialog, and no <img>
// or <script> element anywhere in the chat.
func (p *page) checkNoScriptRan() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	type verdict struct {
		Flag     string   `json:"flag"`
		Elements int      `json:"elements"`
		Errors   []string `json:"errors"`
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[verdict](
		`({flag: String(window.__xss ?? ''), elements: document.querySelectorAll('#chat img, #chat script').length,
		   errors: window.__errors})`))
	if err != nil {
		p.fail("check for injected script: %v", err)
	}
	if v.Flag != "" || v.Elements != 0 {
		p.fail("markup in a message was not rendered as text: flag %q, %d img/script elements", v.Flag, v.Elements)
	}
	if len(v.Errors) != 0 {
		p.fail("the page reported errors: %q", v.Errors)
	}
}

func (p *page) screenshot(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.fail("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("%s: screenshot %s (%d bytes)", p.name, path, len(png))
}
