package cluster

// Tests of the bus against a real external nats-server process: an outage
// during chat traffic, TLS with a token, two clusters sharing one NATS under
// their own subject prefixes. And the embedded server's token.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/internal/natsopts/natsoptstest"
	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/server/cluster/clustertest"
	"github.com/chatbench/chatbench/server/servertest"
)

// natsProc is an external nats-server process.
type natsProc struct {
	bin  string
	args []string
	log  *proc.Buffer
	p    *proc.Process
	addr string // host:port
}

// natsServerBinary is nats-server from PATH, else built from the module in go.mod.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	chatbenchBinary(t) // skips with -short
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if bin, err = clustertest.Build("github.com/nats-io/nats-server/v2", "nats-server"); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// startNATSProc runs nats-server args and waits until it listens; it is
// killed in t.Cleanup.
func startNATSProc(t *testing.T, args ...string) *natsProc {
	t.Helper()
	p := &natsProc{bin: natsServerBinary(t), args: args, log: newLogWriter(t)}
	t.Cleanup(p.kill)
	p.start(t)
	return p
}

var natsListening = regexp.MustCompile(`Listening for client connections on (\S+:\d+)`)

// start starts the process (again) and waits for its port.
func (p *natsProc) start(t *testing.T) {
	t.Helper()
	var err error
	p.p, err = proc.Start(proc.Options{
		Role: "nats-server", Path: p.bin, Args: p.args, Log: p.log,
		Ready: func(s proc.Stream, line string) (proc.Fields, bool) {
			if m := natsListening.FindStringSubmatch(line); m != nil {
				return proc.Fields{"addr": m[1]}, true
			}
			return nil, false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.p.WaitReady(context.Background()) // within 30 s
	if err != nil {
		t.Fatal(err)
	}
	p.addr = f.Get("addr")
	t.Logf("external %s on %s", p.bin, p.addr)
}

// kill kills the process with SIGKILL and waits for it.
func (p *natsProc) kill() {
	if p.p != nil {
		p.p.Kill()
	}
}

// metricSum sums the samples of metric over the /metrics of every address.
func metricSum(t *testing.T, addrs []string, metric string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + metric + `(?:\{[^}]*\})? (\S+)$`)
	sum := 0.0
	for _, a := range addrs {
		_, body := httpBody(t, "http://"+a+"/metrics")
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			v, _ := strconv.ParseFloat(m[1], 64)
			sum += v
		}
	}
	return sum
}

// gauges reads go_goroutines and process_open_fds of each address.
func gauges(t *testing.T, addrs []string) (gor, fds []float64) {
	t.Helper()
	for _, a := range addrs {
		gor = append(gor, metricSum(t, []string{a}, "go_goroutines"))
		fds = append(fds, metricSum(t, []string{a}, "process_open_fds"))
	}
	return gor, fds
}

// TestNATSOutage kills the external nats-server of a 2x2 split cluster for
// 3 s during chat traffic and starts it again on the same port. Requests
// meanwhile answer 504 at once; no session is closed; afterwards every
// member can chat in its room, the messages the clients lost (acknowledged
// but not delivered) are exactly the pushes the shards counted as dropped,
// and no process has more goroutines or descriptors than before.
func TestNATSOutage(t *testing.T) {
	np := startNATSProc(t, "-a", "127.0.0.1", "-p", "-1")
	url := "nats://" + np.addr
	// A 10 s request timeout: a request that waited for it instead of
	// failing fast stands out from a machine that is merely busy.
	l := startLauncher(t, "--connectors", "2", "--shards", "2", "--nats", url, "--request-timeout", "10s")
	https := strings.Split(l.ready["https"], ",")
	// Four rooms, two per shard; in each one member per connector (so one
	// dropped push per connector is one lost delivery).
	type roomT struct {
		rid     string
		members []*servertest.Client
	}
	var rooms []roomT
	for s := range 2 {
		for k, rid := range roomsOn(s, 2, 2) {
			pre := fmt.Sprintf("s%dk%d", s, k)
			rooms = append(rooms, roomT{rid, enterAll(t, l.ready["gate"], rid, usersOn(pre, 0, 2, 1)[0], usersOn(pre, 1, 2, 1)[0])})
		}
	}
	all := func(fn func(c *servertest.Client)) {
		for _, r := range rooms {
			for _, c := range r.members {
				fn(c)
			}
		}
	}
	all(func(c *servertest.Client) { c.Pushes() }) // forget the onAdds
	gor0, fds0 := gauges(t, https)

	// The outage, on its own goroutine: kill, 3 s, start on the same port.
	outage := make(chan error, 1)
	var killed sync.WaitGroup
	killed.Add(1)
	go func() {
		np.kill()
		killed.Done()
		time.Sleep(3 * time.Second) // the outage itself: its length is the point, traffic runs meanwhile
		_, port, _ := strings.Cut(np.addr, ":")
		np.args = []string{"-a", "127.0.0.1", "-p", port}
		outage <- nil
	}()

	// Traffic: a round every 50 ms, one chat per room, until 2 s after NATS is back.
	type sent struct {
		room int
		msg  string
		ok   bool
	}
	var msgs []sent
	var slow []string
	restarted := time.Time{}
	for round := 0; restarted.IsZero() || time.Since(restarted) < 2*time.Second; round++ {
		if round > 2000 {
			t.Fatal("traffic did not end")
		}
		if restarted.IsZero() {
			select {
			case err := <-outage:
				if err != nil {
					t.Fatal(err)
				}
				np.start(t)
				restarted = time.Now()
			default:
			}
		}
		for i, r := range rooms {
			msg := fmt.Sprintf("%s/%d", r.rid, round)
			start := time.Now()
			resp := r.members[round%2].Request("chat.chatHandler.send", map[string]any{"content": msg, "target": "*"})
			if took := time.Since(start); took > 5*time.Second {
				slow = append(slow, fmt.Sprintf("%s: %v after %v", msg, resp, took))
			}
			switch resp["code"] {
			case nil:
				msgs = append(msgs, sent{i, msg, true})
			case float64(504):
				msgs = append(msgs, sent{i, msg, false})
			default:
				t.Fatalf("send %s = %v, want {} or 504", msg, resp)
			}
		}
		time.Sleep(50 * time.Millisecond) // pacing the traffic; the loop ends on the restart, not on time
	}
	killed.Wait()
	if len(slow) > 0 {
		t.Errorf("requests that took over 5s, half the request timeout (want a prompt answer, 504 during the outage): %q", slow)
	}
	failed := 0
	for _, m := range msgs {
		if !m.ok {
			failed++
		}
	}
	if failed == 0 {
		t.Fatalf("no request answered 504 during the outage: was NATS down at all? (%d sends)", len(msgs))
	}

	// After the outage every member chats, and everyone in its room hears it.
	for _, r := range rooms {
		for i, c := range r.members {
			msg := fmt.Sprintf("%s/after/%d", r.rid, i)
			// 504 while a shard is still reconnecting; anything else fails.
			testwait.Until(t, servertest.Timeout, func() error {
				resp := c.Request("chat.chatHandler.send", map[string]any{"content": msg, "target": "*"})
				if resp["code"] != nil && resp["code"] != float64(504) {
					t.Fatalf("send %s after the outage = %v", msg, resp)
				}
				if resp["code"] != nil {
					return fmt.Errorf("send %s after the outage = %v", msg, resp)
				}
				return nil
			})
			msgs = append(msgs, sent{indexOf(rooms, r.rid, func(x roomT) string { return x.rid }), msg, true})
		}
	}
	// Collect every member's pushes until each "after" message has reached
	// every member of its room (they must all arrive).
	got := map[*servertest.Client]map[string]bool{}
	all(func(c *servertest.Client) { got[c] = map[string]bool{} })
	testwait.Until(t, servertest.Timeout, func() error {
		all(func(c *servertest.Client) {
			for _, p := range c.Pushes() {
				switch p.Route {
				case "onChat":
					got[c][fmt.Sprint(p.Body["msg"])] = true
				case "onAdd", "onLeave":
					t.Errorf("membership push %s %v: membership changed", p.Route, p.Body)
				}
			}
		})
		missing := 0
		for _, r := range rooms {
			for _, c := range r.members {
				for i := range r.members {
					if !got[c][fmt.Sprintf("%s/after/%d", r.rid, i)] {
						missing++
					}
				}
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d deliveries of the messages sent after the outage never arrived", missing)
		}
		return nil
	})
	lost, wrongly := 0, 0
	for _, m := range msgs {
		for _, c := range rooms[m.room].members {
			if strings.Contains(m.msg, "/after/") {
				continue
			}
			switch {
			case m.ok && !got[c][m.msg]:
				lost++
			case !m.ok && got[c][m.msg]:
				wrongly++ // answered 504 but delivered: the shard had it before the bus went
			}
		}
	}
	dropped := metricSum(t, https, "chatbench_bus_dropped_total")
	t.Logf("%d sends, %d answered 504; %d deliveries lost, %d delivered despite a 504; servers counted %v dropped",
		len(msgs), failed, lost, wrongly, dropped)
	if float64(lost) != dropped {
		t.Errorf("clients lost %d acknowledged deliveries, the servers counted %v dropped (chatbench_bus_dropped_total): want them equal", lost, dropped)
	}
	// No session was closed: each one still answers.
	all(func(c *servertest.Client) {
		if r := c.Request("connector.entryHandler.enter", map[string]any{"username": "x", "rid": "y"}); r["code"] != float64(400) {
			t.Errorf("a member's session after the outage: enter again = %v, want 400 (already in a room)", r)
		}
	})
	// No leaks: goroutines and fds come back to what they were.
	testwait.Until(t, servertest.Timeout, func() error {
		gor, fds := gauges(t, https)
		var bad []string
		for i := range https {
			if gor[i] > gor0[i]+5 || fds[i] > fds0[i]+2 {
				bad = append(bad, fmt.Sprintf("%s: goroutines %v -> %v, fds %v -> %v", https[i], gor0[i], gor[i], fds0[i], fds[i]))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("after the outage: %s", strings.Join(bad, "; "))
		}
		return nil
	})
}

func indexOf[T any](xs []T, key string, k func(T) string) int {
	for i, x := range xs {
		if k(x) == key {
			return i
		}
	}
	return -1
}

// TestEmbeddedNATSToken: the launcher's embedded NATS server refuses a
// client without the token; the children have it in their environment,
// never on their command line.
func TestEmbeddedNATSToken(t *testing.T) {
	l := startLauncher(t, "--connectors", "1", "--shards", "1")
	url := l.ready["nats"]
	if nc, err := nats.Connect(url, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatalf("a client without the token connected to the embedded NATS %s", url)
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("connect without the token: %v, want an authorization error", err)
	}
	token := ""
	for pid, cmdline := range childPIDs(t, l.p.Pid()) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Skipf("cannot read a child's environment: %v", err)
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, natsopts.EnvToken+"="); ok {
				token = v
			}
		}
		if token == "" {
			t.Fatalf("child %d has no %s in its environment", pid, natsopts.EnvToken)
		}
		if strings.Contains(cmdline, token) {
			t.Fatalf("child %d has the token on its command line: %q", pid, cmdline)
		}
	}
	if nc, err := nats.Connect(url, nats.Token("not-"+token), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client with a wrong token connected")
	}
	nc, err := nats.Connect(url, nats.Token(token), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("the children's token is refused: %v", err)
	}
	nc.Close()
	cs := enterAll(t, l.ready["gate"], "r", "a", "b")
	cs[0].Request("chat.chatHandler.send", map[string]any{"content": "hi", "target": "*"})
	for _, c := range cs {
		if p := c.WaitPush("onChat"); p.Body["msg"] != "hi" {
			t.Fatalf("onChat = %v", p.Body)
		}
	}
}

// TestExternalNATSTLS: an external nats-server that requires TLS and a
// token. Clients without the token, or without the CA, are refused; two
// split clusters with their own subject prefixes share it, each one's
// chat working and never reaching the other.
func TestExternalNATSTLS(t *testing.T) {
	certs := natsoptstest.Generate(t)
	dir := t.TempDir()
	const token = "tls-test-token"
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"listen: \"127.0.0.1:-1\"\nauthorization { token: %q }\ntls { cert_file: %q, key_file: %q, timeout: 5 }\n",
		token, certs.ServerCert, certs.ServerKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	np := startNATSProc(t, "-c", conf)
	url := "tls://" + np.addr
	for _, tc := range []struct {
		name string
		o    natsopts.Options
		err  string
	}{
		{"no token", natsopts.Options{URLs: []string{url}, CAFile: certs.CA}, "authorization"},
		{"other CA", natsopts.Options{URLs: []string{url}, Token: token, CAFile: certs.OtherCA}, "certificate"},
		{"token and CA", natsopts.Options{URLs: []string{url}, Token: token, CAFile: certs.CA}, ""},
	} {
		nc, err := tc.o.Connect(nats.Timeout(5 * time.Second))
		switch {
		case tc.err == "" && err != nil:
			t.Fatalf("%s: %v", tc.name, err)
		case tc.err == "":
			nc.Close()
		case err == nil:
			nc.Close()
			t.Fatalf("%s: connected, want an error containing %q", tc.name, tc.err)
		case !strings.Contains(strings.ToLower(err.Error()), tc.err):
			t.Fatalf("%s: %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
	t.Setenv(natsopts.EnvToken, token) // the launchers and their children inherit it
	var gates []string
	for _, prefix := range []string{"cluster-a", "cluster-b"} {
		l := startLauncher(t, "--connectors", "2", "--shards", "2", "--nats", url, "--nats-ca", certs.CA, "--nats-prefix", prefix)
		gates = append(gates, l.ready["gate"])
	}
	// The same room and user names in both clusters: each cluster's room
	// holds only its own members, and its chat reaches only them.
	var cs [][]*servertest.Client
	for _, g := range gates {
		cs = append(cs, enterAll(t, g, "shared", usersOn("x", 0, 2, 1)[0], usersOn("x", 1, 2, 1)[0]))
	}
	for i, g := range cs {
		g[1].Request("chat.chatHandler.send", map[string]any{"content": fmt.Sprint("cluster ", i), "target": "*"})
		for _, c := range g {
			if p := c.WaitPush("onChat"); p.Body["msg"] != fmt.Sprint("cluster ", i) {
				t.Fatalf("cluster %d: onChat = %v", i, p.Body)
			}
		}
	}
	for i, g := range cs {
		for _, c := range g {
			for _, p := range c.Pushes() {
				t.Errorf("cluster %d: stray push %s %v (from the other cluster?)", i, p.Route, p.Body)
			}
		}
	}
}
