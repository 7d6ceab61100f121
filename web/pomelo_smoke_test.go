package web_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	launch := func(t *testing.T) *launched {
		t.Helper()
		// A first start installs pomelo from npm: minutes.
		return launchServe(t, bin, "pomelo", args, 2, 3*time.Minute, nil)
	}
	cur := launch(t)
	first := cur
	return &serverUnderTest{
		url:        "http://" + cur.http + "/",
		connectors: func() []string { return cur.conns },
		stop:       func(t *testing.T) { t.Helper(); cur.stop(t) },
		start: func(t *testing.T) {
			t.Helper()
			cur = launch(t)
			cur.samePorts(t, first)
		},
	}
}

// freePort returns a port p with p..p+n-1 free on 127.0.0.1 right now. It
// looks below Linux's ephemeral range (32768 and up), which a machine
// holding tens of thousands of client connections has nearly used up.
func freePort(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		p := 10000 + rand.IntN(22000)
		var ls []net.Listener
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == n {
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
