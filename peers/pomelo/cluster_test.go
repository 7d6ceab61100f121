package pomelo_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/peers/pomelo"
)

// needNode skips without node and npm, except under CI=true (CI installs them).
func needNode(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found and CI=true: %v", bin, err)
			}
			t.Skipf("%s not found: %v", bin, pomelo.ErrNoNode)
		}
	}
}

// start runs a stock pomelo cluster for the test (pomelo installed into
// this folder's node_modules, as make does) and stops it after.
func start(t *testing.T, conns, chats int) *pomelo.Cluster {
	t.Helper()
	needNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a first npm install included
	defer cancel()
	log := &proc.Buffer{}
	c, err := pomelo.Start(ctx, pomelo.Options{Connectors: conns, ChatServers: chats, Dir: ".", Log: log})
	if err != nil {
		t.Fatalf("start stock pomelo: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if left := c.Processes(); len(left) > 0 {
			t.Errorf("processes left after Stop: %v", left)
		}
		if t.Failed() {
			t.Logf("cluster output:\n%s", log.String())
		}
	})
	return c
}

func TestStockCluster(t *testing.T) {
	c := start(t, 2, 2)
	if n := len(c.Processes()); n != 1+1+2+2 {
		t.Errorf("%d processes, want 6 (master, gate, 2 connectors, 2 chat servers)", n)
	}
	t.Run("LoopbackOnly", func(t *testing.T) {
		ports := map[int]string{c.Spec.MasterPort: "master", c.Spec.Gate.ClientPort: "gate"}
		for _, s := range append(append([]pomelo.Server(nil), c.Spec.Connectors...), c.Spec.Chats...) {
			ports[s.Port] = s.ID
			if s.ClientPort > 0 {
				ports[s.ClientPort] = s.ID + " client"
			}
		}
		found := map[int]bool{}
		for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n")[1:] {
				f := strings.Fields(line)
				if len(f) < 4 || f[3] != "0A" { // LISTEN
					continue
				}
				host, port, _ := strings.Cut(f[1], ":")
				p, _ := strconv.ParseUint(port, 16, 16)
				what, ours := ports[int(p)]
				if !ours {
					continue
				}
				found[int(p)] = true
				if host != "0100007F" { // 127.0.0.1, little-endian hex
					ip, _ := hex.DecodeString(host)
					t.Errorf("%s listens on %x (%s), want 127.0.0.1 only", what, ip, file)
				}
			}
		}
		for p, what := range ports {
			if !found[p] {
				t.Errorf("%s: nothing listens on port %d", what, p)
			}
		}
	})
	t.Run("StockPushes", func(t *testing.T) { stockPushes(t, c) })
	// every shipped scenario, small (60 clients in 3 rooms, 1.5 s of timed phases)
	for _, name := range scenario.Names() {
		t.Run("scenario-"+name, func(t *testing.T) { scenarioRun(t, c, name) })
	}
}

type pushLog struct {
	mu     sync.Mutex
	pushes []string // "route user-or-msg proto"
}

func (l *pushLog) handlers() *client.Handlers {
	return &client.Handlers{Push: func(p *client.Push) {
		s := string(p.Route) + " " + string(client.UserField(p))
		if string(p.Route) == "onChat" {
			msg, ok := client.ChatMsg(p)
			s = fmt.Sprintf("onChat %s ok=%v proto=%v", msg, ok, p.Proto)
		}
		l.mu.Lock()
		l.pushes = append(l.pushes, s)
		l.mu.Unlock()
	}}
}

func (l *pushLog) wait(t *testing.T, want string) []string {
	t.Helper()
	var got []string
	testwait.Until(t, 10*time.Second, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, p := range l.pushes {
			if p == want {
				got = append([]string(nil), l.pushes[:i+1]...)
				return nil
			}
		}
		return fmt.Errorf("no %q; pushes %q", want, l.pushes)
	})
	return got
}

// stockPushes: clients on one connector (each handshake after the first
// gets pomelo's short answer: the versions announced match), a newcomer gets
// no onAdd of itself, onChat arrives protobuf-encoded and decodes.
func stockPushes(t *testing.T, c *pomelo.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := client.NewFleet(client.Options{})
	defer f.Close()
	addr, err := f.QueryEntry(ctx, c.Gate, "alice")
	if err != nil {
		t.Fatalf("queryEntry: %v", err)
	}
	enter := func(name string, l *pushLog) (*client.Client, []string) {
		cl, err := f.Dial(ctx, addr, l.handlers())
		if err != nil {
			t.Fatalf("%s: dial %s: %v", name, addr, err)
		}
		t.Cleanup(func() { cl.Close() })
		resp, err := cl.Call(ctx, "connector.entryHandler.enter", []byte(`{"username":"`+name+`","rid":"lobby"}`))
		if err != nil {
			t.Fatalf("%s: enter: %v", name, err)
		}
		var r struct{ Users []string }
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatalf("%s: enter answer %s: %v", name, resp, err)
		}
		return cl, r.Users
	}
	send := func(cl *client.Client, msg string) {
		if _, err := cl.Call(ctx, "chat.chatHandler.send", []byte(`{"rid":"lobby","content":"`+msg+`","from":"x","target":"*"}`)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	var la, lb, lc pushLog
	alice, users := enter("alice", &la)
	if strings.Join(users, ",") != "alice" {
		t.Errorf("alice's enter: users %v", users)
	}
	// The first push from the room's chat server to this connector opens
	// pomelo's RPC link lazily; a newcomer then can see its own onAdd once
	// (a stock race). Warm the link up first.
	_, users = enter("bob", &lb)
	if strings.Join(users, ",") != "alice,bob" {
		t.Errorf("bob's enter: users %v", users)
	}
	send(alice, "warm")
	la.wait(t, "onChat warm ok=true proto=true")
	lb.wait(t, "onChat warm ok=true proto=true")
	_, users = enter("carol", &lc)
	if strings.Join(users, ",") != "alice,bob,carol" {
		t.Errorf("carol's enter: users %v", users)
	}
	want := "onChat hello all ok=true proto=true"
	send(alice, "hello all")
	if got := la.wait(t, want); strings.Join(got[len(got)-2:], "|") != "onAdd carol|"+want {
		t.Errorf("alice's pushes %q, want carol's onAdd then the protobuf onChat", got)
	}
	if got := lc.wait(t, want); len(got) != 1 {
		t.Errorf("carol's pushes %q, want only the protobuf onChat (no onAdd of herself)", got)
	}
}

func scenarioRun(t *testing.T, c *pomelo.Cluster, name string) {
	s, err := scenario.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	small := scenario.Overrides{Clients: 60, Rooms: 3, Duration: 1500 * time.Millisecond}
	if name == "gate" {
		// the gate's shape is built to keep a one-core server behind (every
		// member sends two messages every 50 ms); this test is about the
		// protocol, not capacity, so its rooms here are of 5, not 20: about
		// 4,000 deliveries/s, which stock pomelo holds on a busy machine
		small.Clients, small.Rooms = 20, 4
	}
	if err := s.Apply(small); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := driver.Run(ctx, driver.Options{Scenario: s, Target: c.Gate, Topology: "pomelo", Out: t.TempDir(), DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	cn := res.Summary.Counters
	t.Logf("%s on stock pomelo 2x2: sent %d expected %d delivered %d lost %d errors %d %v", name, cn.Sent, cn.Expected, cn.Delivered, cn.Lost, cn.Errors, cn.ErrorsByKind)
	sends := false
	for _, p := range s.Phases {
		sends = sends || p.Kind.Sends()
	}
	if (sends && (cn.Sent == 0 || cn.Delivered == 0)) || cn.Delivered != cn.Expected+cn.Extra {
		t.Errorf("sent %d, delivered %d of %d expected (+%d extra)", cn.Sent, cn.Delivered, cn.Expected, cn.Extra)
	}
	if cn.Lost != 0 || cn.Duplicated != 0 || cn.OutOfOrder != 0 || cn.Misrouted != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, misrouted %d: want 0", cn.Lost, cn.Duplicated, cn.OutOfOrder, cn.Misrouted)
	}
	if cn.Errors != 0 {
		t.Errorf("errors %d (%v by kind, %v by code): want 0", cn.Errors, cn.ErrorsByKind, cn.ErrorsByCode)
	}
	if n := res.Summary.Ops["switch"].Count; name == "hop" && n == 0 {
		t.Errorf("hop: no room switch answered")
	}
	for _, r := range res.Rooms {
		if r.Lost != 0 || r.Ghosts != 0 || r.LeaveMiss != 0 || r.AddMiss != 0 {
			t.Errorf("room %s: %+v", r.Room, r)
		}
	}
}

// TestNoNode: without node on PATH the error says what to install.
func TestNoNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := pomelo.Start(context.Background(), pomelo.Options{Dir: t.TempDir()})
	if !errors.Is(err, pomelo.ErrNoNode) || !strings.Contains(err.Error(), "apt-get install -y nodejs npm") {
		t.Fatalf("err %v, want ErrNoNode naming the packages", err)
	}
	if err := pomelo.Install(context.Background(), t.TempDir(), nil); !errors.Is(err, pomelo.ErrNoNode) {
		t.Fatalf("install without npm: %v, want ErrNoNode", err)
	}
}

// TestStartFails: a cluster that cannot get ready (its gate port is taken)
// fails within ReadyTimeout with an error that says what is missing, and
// leaves no node process behind.
func TestStartFails(t *testing.T) {
	needNode(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a first npm install included
	defer cancel()
	start := time.Now()
	_, err = pomelo.Start(ctx, pomelo.Options{Connectors: 1, ChatServers: 1, GatePort: port, Dir: ".", ReadyTimeout: 8 * time.Second})
	if err == nil {
		t.Fatalf("started with the gate port %d taken", port)
	}
	// the gate survives its failed listen (the app logs uncaught
	// exceptions, as the stock one does), so the handshake probe of the
	// gate is what fails, unless a busy machine keeps the servers from
	// reporting in within the 8 s
	gate := fmt.Sprintf("127.0.0.1:%d does not answer a pomelo handshake", port)
	if !strings.Contains(err.Error(), "not ready within 8s") ||
		(!strings.Contains(err.Error(), gate) && !strings.Contains(err.Error(), "did not report in")) {
		t.Errorf("error %q does not say what went wrong", err)
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	// the gate's command line carries its port (pomelo's master passes
	// servers.json's fields as arguments)
	left := func() []byte {
		out, _ := exec.Command("pgrep", "-f", fmt.Sprintf("clientPort=%d( |$)", port)).Output()
		return out
	}
	if err := testwait.For(5*time.Second, func() error {
		if s := strings.TrimSpace(string(left())); s != "" {
			return fmt.Errorf("node processes left: %s", s)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
