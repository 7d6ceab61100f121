package web_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbench/chatbench/server/cluster/clustertest"
)

// The page against stock pomelo 2.2.7 (peers/pomelo: 2 connectors, 2 chat
// servers under node, pomelo installed from npm on first use): `chatbench
// serve --topology pomelo` serves the page and points it at pomelo's gate.
// Stock pomelo pushes onChat as pomelo-protobuf and tells a newcomer nothing
// of itself. Its gate orders connectors by registration time, so which
// connector a name lands on is not fixed: alice and bob may share one. The
// restart stops every node process and starts them on the same gate,
// connector and HTTP ports.
func startPomelo(t *testing.T) *serverUnderTest {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true but %s is not installed (apt-get install -y nodejs npm)", bin)
			}
			t.Skipf("skipping stock pomelo: %s is not installed (apt-get install -y nodejs npm)", bin)
		}
	}
	bin := clustertest.Chatbench(t)
	dir := filepath.Join(repoRoot(t), "peers", "pomelo")
	gate, conn, http := freePort(t, 1), freePort(t, 2), freePort(t, 1)
	args := []string{"serve", "--topology", "pomelo", "--connectors", "2", "--shards", "2", "--pomelo-dir", dir,
		"--gate-port", fmt.Sprint(gate), "--connector-port", fmt.Sprint(conn), "--http-port", fmt.Sprint(http), "--log-level", "warn"}
	cur := launchPomelo(t, bin, args)
	first := cur
	return &serverUnderTest{
		url:        "http://" + cur.http + "/",
		connectors: func() []string { return cur.conns },
		stop:       func(t *testing.T) { t.Helper(); cur.stop(t) },
		start: func(t *testing.T) {
			t.Helper()
			cur = launchPomelo(t, bin, args)
			if cur.gate != first.gate || cur.http != first.http || !slices.Equal(cur.conns, first.conns) {
				t.Fatalf("stock pomelo restarted on other ports: gate %s http %s connectors %v, was %s %s %v",
					cur.gate, cur.http, cur.conns, first.gate, first.http, first.conns)
			}
		},
	}
}

// freePort returns a port p with p..p+n-1 free on 127.0.0.1 right now.
func freePort(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{l}
		ok := true
		for i := 1; i < n && ok; i++ {
			x, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			ok = err == nil
			if ok {
				ls = append(ls, x)
			}
		}
		for _, x := range ls {
			x.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// pomeloServe is one run of `chatbench serve --topology pomelo`.
type pomeloServe struct {
	cmd        *exec.Cmd
	exited     chan struct{}
	err        error
	gate, http string
	conns      []string
	logs       *syncBuffer
}

func launchPomelo(t *testing.T, bin string, args []string) *pomeloServe {
	t.Helper()
	c := &pomeloServe{exited: make(chan struct{}), logs: &syncBuffer{}}
	c.cmd = clustertest.Command(bin, args...)
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = c.cmd.Stdout
	start := time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CHATBENCH_TEST_LOG") != "" {
			t.Logf("stock pomelo logs:\n%s", c.logs.String())
		}
	})
	t.Cleanup(func() { c.stop(t) })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "READY ") {
				select {
				case ready <- line:
				default:
				}
			}
			c.logs.line(sc.Text())
		}
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	select {
	case line := <-ready:
		f := map[string]string{}
		for _, kv := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		c.gate, c.http, c.conns = f["gate"], f["http"], strings.Split(f["connectors"], ",")
		if f["topology"] != "pomelo" || c.http == "" || len(c.conns) != 2 {
			t.Fatalf("READY line %q: want topology=pomelo, an HTTP port, 2 connectors", line)
		}
	case <-c.exited:
		t.Fatalf("serve --topology pomelo exited before READY: %v\n%s", c.err, c.logs.String())
	case <-time.After(3 * time.Minute): // a first start installs pomelo from npm
		t.Fatalf("serve --topology pomelo not READY within 3 minutes\n%s", c.logs.String())
	}
	t.Logf("stock pomelo ready in %v: gate %s, http %s, connectors %v", time.Since(start).Round(time.Millisecond), c.gate, c.http, c.conns)
	return c
}

// stop ends serve with SIGTERM; it stops every node process and exits.
func (c *pomeloServe) stop(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		t.Errorf("serve --topology pomelo did not stop within 20s after SIGTERM: killed")
	}
}
