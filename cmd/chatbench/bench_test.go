package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/cluster/clustertest"
	"github.com/chatbench/chatbench/server/servertest"
)

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no scenario", nil},
		{"unknown scenario", []string{"--scenario", "nope"}},
		{"missing file", []string{"--scenario", "./nope.yaml"}},
		{"negative clients", []string{"--scenario", "chat", "--clients", "-1"}},
		{"negative duration", []string{"--scenario", "chat", "--duration", "-1s"}},
		{"negative rate", []string{"--scenario", "chat", "--rate", "-2"}},
		{"bad target", []string{"--scenario", "chat", "--target", "nohost"}},
		{"source addrs off loopback", []string{"--scenario", "chat", "--target", "10.0.0.1:3014", "--source-addrs", "2"}},
		{"too many source addrs", []string{"--scenario", "chat", "--source-addrs", "300"}},
		{"bad topology", []string{"--scenario", "chat", "--topology", "mesh"}},
		{"bad log level", []string{"--scenario", "chat", "--log-level", "loud"}},
		{"unknown flag", []string{"--scenario", "chat", "--bogus"}},
		{"too many clients for ulimit", []string{"--scenario", "chat", "--clients", "100000000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := bench(context.Background(), tc.args, &bytes.Buffer{})
			if !errors.Is(err, errUsage) {
				t.Errorf("bench %v: %v, want a usage error", tc.args, err)
			}
		})
	}
}

// TestBenchCommand runs the whole command against a real server (--target)
// and checks the summary on disk and the text on out.
func TestBenchCommand(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	out := &bytes.Buffer{}
	dir := t.TempDir()
	args := []string{"--scenario", "chat", "--clients", "40", "--rooms", "2", "--duration", "1s",
		"--target", srv.GateAddr, "--out", dir, "--quiet", "--ceiling", "off", "--drain", "5s"}
	// chat's min_deliveries_per_s is meant for 2,000 clients: at 40 it fails (exit 99)
	var ee *exitError
	if err := bench(context.Background(), args, out); !errors.As(err, &ee) || ee.code != exitThresholds {
		t.Fatalf("bench: %v, want the thresholds' exit %d\n%s", err, exitThresholds, out)
	}
	text := out.String()
	i := strings.Index(text, "results: ")
	if i < 0 {
		t.Fatalf("no results line:\n%s", text)
	}
	resDir := strings.TrimSpace(strings.SplitN(text[i+len("results: "):], "\n", 2)[0])
	sum, err := metrics.ReadSummary(resDir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scenario != "chat" || sum.Clients != 40 || sum.Topology != "external" || sum.Counters.Lost != 0 || sum.Counters.Sent == 0 {
		t.Errorf("summary: scenario %q clients %d topology %q sent %d lost %d",
			sum.Scenario, sum.Clients, sum.Topology, sum.Counters.Sent, sum.Counters.Lost)
	}
	if !strings.Contains(text, "delivery") {
		t.Errorf("no latency table in the text summary:\n%s", text)
	}
}

// stampedBinary builds chatbench with a commit stamped the way make build
// does (-X main.commit=...).
func stampedBinary(t *testing.T, stamp string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chatbench")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.commit="+stamp, "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBenchBinary runs the real binary: exit codes (1 for a target that
// cannot be reached, fast; 99 for failed thresholds; 0 for a clean run; 2
// for an unknown scenario, listed once), the started reference server found
// through its READY line on random ports, and the commit stamped at build
// time, not the one of the repository the command runs in.
func TestBenchBinary(t *testing.T) {
	const stamp = "stamp0123abc"
	bin := stampedBinary(t, stamp)
	srv := servertest.Start(t, server.Options{})
	// the working directory is another git repository: its commit must not
	// end up in the results
	cwd := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", cwd}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, _ := exec.Command("git", "-C", cwd, "rev-parse", "--short=12", "HEAD").Output()
	// the same small chat run with a threshold it meets and one it cannot
	scenarioFile := func(name, thresholds string) string {
		path := filepath.Join(cwd, name+".yaml")
		body := "name: " + name + `
clients: 20
rooms: {count: 2}
phases:
  - {kind: enter, arrival_rate: 2000}
  - {kind: chat, duration: 1s, rate: 2}
  - {kind: leave, arrival_rate: 4000}
thresholds: ` + thresholds + "\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	clean := scenarioFile("clean", "{loss_max: 0}")
	impossible := scenarioFile("impossible", "{min_deliveries_per_s: 1000000000}")
	impossibleExpr := scenarioFile("impossible-expr", `["lost == 0", "delivery.p99 < 1us"]`)
	common := []string{"--quiet", "--ceiling", "off", "--drain", "5s"}
	type benchCase struct {
		name    string
		args    []string
		code    int
		within  time.Duration
		want    string // in the output
		summary bool   // a summary.json to check
	}
	tests := []benchCase{
		{"unreachable target", []string{"--scenario", "chat", "--target", refused(t), "--duration", "2s"}, 1, 10 * time.Second, "target unreachable", false},
		{"thresholds fail", []string{"--scenario", impossible, "--target", srv.GateAddr}, 99, time.Minute, "thresholds failed: min_deliveries_per_s", true},
		{"expression threshold fails, named with limit and value", []string{"--scenario", impossibleExpr, "--target", srv.GateAddr}, 99, time.Minute, "thresholds failed: delivery.p99 < 1us (limit 1µs, value ", true},
		{"started server, clean", []string{"--scenario", clean}, 0, time.Minute, "started the reference server", true},
		{"started split server, clean", []string{"--scenario", clean, "--topology", "split"}, 0, time.Minute, "started the reference server (split)", true},
		{"unknown scenario", []string{"--scenario", "nosuch"}, 2, 10 * time.Second, "unknown scenario", false},
	}
	if pomeloDir, ok := stockPomelo(t); ok {
		// a first start installs pomelo from the npm registry
		tests = append(tests, benchCase{"started stock pomelo 2x2, clean", []string{"--scenario", clean, "--topology", "pomelo", "--connectors", "2", "--shards", "2", "--pomelo-dir", pomeloDir},
			0, 3 * time.Minute, "started stock pomelo 2.2.7", true})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			cmd := clustertest.Command(bin, append(append([]string{"bench", "--out", out}, common...), tc.args...)...)
			cmd.Dir = cwd
			start := time.Now()
			b, err := cmd.CombinedOutput()
			took := time.Since(start)
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\n%s", code, tc.code, text)
			}
			if took > tc.within {
				t.Errorf("took %v, want under %v", took, tc.within)
			}
			if !strings.Contains(text, tc.want) {
				t.Errorf("output without %q:\n%s", tc.want, text)
			}
			if n := strings.Count(text, "broadcast-storm"); n > 1 {
				t.Errorf("the shipped scenarios are listed %d times:\n%s", n, text)
			}
			if !tc.summary {
				return
			}
			sums, _ := filepath.Glob(filepath.Join(out, "*", "summary.json"))
			if len(sums) != 1 {
				t.Fatalf("summaries %v, want 1\n%s", sums, text)
			}
			s, err := metrics.ReadSummary(sums[0])
			if err != nil {
				t.Fatal(err)
			}
			if s.Commit != stamp {
				t.Errorf("summary commit %q, want the build stamp %q (the cwd's repository is at %s)", s.Commit, stamp, strings.TrimSpace(string(head)))
			}
			if tc.code == 0 && (s.Counters.Sent == 0 || s.Counters.Lost != 0) {
				t.Errorf("sent %d lost %d", s.Counters.Sent, s.Counters.Lost)
			}
		})
	}
}

// stockPomelo says whether the stock pomelo topology can run here (node and
// npm on PATH; under CI=true they must be) and where it is installed.
func stockPomelo(t *testing.T) (string, bool) {
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found and CI=true: %v", bin, err)
			}
			t.Logf("no %s: the stock pomelo case is left out", bin)
			return "", false
		}
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "peers", "pomelo"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, true
}

func refused(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestVerdict: the exit of a run that ran (99 thresholds, 98 driver-bound
// with --fail-on-driver-bound, else a warning and 0).
func TestVerdict(t *testing.T) {
	pass := []metrics.ThresholdResult{{Name: "loss_max", Pass: true}}
	fail := []metrics.ThresholdResult{{Name: "loss_max", Pass: false}}
	bound := metrics.DriverCheck{DriverBound: true, DriverBoundWhy: "cpu"}
	tests := []struct {
		name        string
		sum         metrics.Summary
		failOnBound bool
		code        int // 0: nil error
		want        string
	}{
		{"clean", metrics.Summary{Thresholds: pass}, false, 0, ""},
		{"thresholds fail", metrics.Summary{Thresholds: fail}, false, exitThresholds, ""},
		{"thresholds fail and bound", metrics.Summary{Thresholds: fail, Driver: bound}, true, exitThresholds, "driver-bound"},
		{"bound warns", metrics.Summary{Thresholds: pass, Driver: bound}, false, 0, "warning: the run was driver-bound"},
		{"bound fails on request", metrics.Summary{Thresholds: pass, Driver: bound}, true, exitDriverBound, "driver-bound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := &bytes.Buffer{}
			sum := tc.sum
			err := verdict(&driver.Result{Summary: &sum}, tc.failOnBound, out)
			var ee *exitError
			switch {
			case tc.code == 0 && err != nil:
				t.Errorf("verdict: %v, want nil", err)
			case tc.code != 0 && (!errors.As(err, &ee) || ee.code != tc.code):
				t.Errorf("verdict: %v, want exit code %d", err, tc.code)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output %q, want %q", out.String(), tc.want)
			}
		})
	}
}

// TestStartChild: the started server's address comes from its READY line;
// a child that dies first or never gets ready is an error with its stderr.
func TestStartChild(t *testing.T) {
	tests := []struct {
		name   string
		script string
		gate   string
		errHas string
	}{
		{"ready", "echo starting; echo READY gate=127.0.0.1:4001 http=127.0.0.1:4002 topology=single connectors=127.0.0.1:4003; exec sleep 30", "127.0.0.1:4001", ""},
		{"dies first", "echo 'listen tcp: address already in use' >&2; exit 3", "", "address already in use"},
		{"never ready", "echo 'still starting' >&2; exec sleep 30", "", "no READY line within"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := startChild(ctx, "/bin/sh", []string{"-c", tc.script}, 0, 500*time.Millisecond)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("startChild: %v, want an error with %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.stop()
			if s.gate != tc.gate {
				t.Errorf("gate %q, want %q", s.gate, tc.gate)
			}
		})
	}
}

func TestCommitID(t *testing.T) {
	old := commit
	defer func() { commit = old }()
	commit = "abc123-dirty"
	if got := commitID(); got != "abc123-dirty" {
		t.Errorf("commitID() = %q with a build stamp", got)
	}
	commit = ""
	if got := commitID(); got == "" {
		t.Errorf("commitID() empty without a stamp, want vcs.revision or unknown")
	}
}
