package workers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/bench/workers"
	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/servertest"
)

// The test binary doubles as a worker process: real child processes, real
// NATS, real websockets.
const (
	envWorker = "CHATBENCH_TEST_WORKER" // worker name
	envNATS   = "CHATBENCH_TEST_NATS"
	envVer    = "CHATBENCH_TEST_VERSION" // another version than the coordinator's
)

const testVersion = "test"

func TestMain(m *testing.M) {
	if name := os.Getenv(envWorker); name != "" {
		ver := testVersion
		if v := os.Getenv(envVer); v != "" {
			ver = v
		}
		no := natsopts.Options{URLs: []string{os.Getenv(envNATS)}}
		no.FromEnv() // the token, as a split topology's children get it
		err := workers.Serve(context.Background(), workers.WorkerOptions{
			NATS: no, Name: name, Version: ver, Once: true,
			Ready: func(name string) { fmt.Println(proc.FormatReady("worker", name)) },
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testToken is the NATS token of the tests: workers get it in their
// environment, as a split topology's children do, the coordinator in its
// options; a client without it is refused.
const testToken = "s3cret-test-token"

func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Authorization: testToken})
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

func natsOpts(url string) natsopts.Options {
	return natsopts.Options{URLs: []string{url}, Token: testToken}
}

// child is one worker process.
type child struct {
	name string
	p    *proc.Process
}

// startWorkers starts n worker processes (this test binary) named
// <prefix>0.. and waits for each one's READY line; dead receives the name
// of each one that exits.
func startWorkers(t *testing.T, url, prefix string, n int, dead chan<- string, env ...string) []*child {
	t.Helper()
	exe, err := proc.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out []*child
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		p, _, err := proc.StartReady(ctx, proc.Options{
			Role: "worker", ID: name, Path: exe, Args: []string{"-test.run=^$"},
			Env: append(append(os.Environ(), envWorker+"="+name, envNATS+"="+url, natsopts.EnvToken+"="+testToken), env...),
			Log: &prefixed{t: t},
		})
		cancel()
		if err != nil {
			t.Fatalf("start worker %s: %v", name, err)
		}
		if dead != nil {
			go func() { <-p.Done(); dead <- name }()
		}
		out = append(out, &child{name: name, p: p})
		t.Cleanup(func() { p.Kill(); <-p.Done() })
	}
	return out
}

// prefixed logs a worker's lines (proc writes them whole, prefixed) in the
// test log.
type prefixed struct{ t *testing.T }

func (p *prefixed) Write(b []byte) (int, error) {
	p.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func chatScenario(t *testing.T, clients, rooms int, chat time.Duration) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load("chat")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(scenario.Overrides{Clients: clients, Rooms: rooms, Duration: chat, Rate: 2}); err != nil {
		t.Fatal(err)
	}
	return s
}

func names(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// TestOneAndThreeWorkers runs one scenario against one server with one
// worker and with three: the delivery accounting is the same (every
// message sent on one worker and received on another counted once), and
// the merged histograms hold every delivery.
func TestOneAndThreeWorkers(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	url := startNATS(t)
	s := chatScenario(t, 90, 6, 2*time.Second)
	var got [2]*metrics.Summary
	for k, n := range []int{1, 3} {
		prefix := fmt.Sprintf("w%dx", n)
		startWorkers(t, url, prefix, n, nil)
		var progress bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := workers.Run(ctx, workers.Options{
			NATS: natsOpts(url), Workers: n, Expect: names(prefix, n), Version: testVersion, WaitTimeout: 20 * time.Second,
			Driver: driver.Options{Scenario: s, Target: srv.GateAddr, Topology: "single", Out: t.TempDir(),
				DrainTimeout: 5 * time.Second, Progress: proc.NewSyncWriter(&progress)},
		})
		cancel()
		if err != nil {
			t.Fatalf("%d workers: %v", n, err)
		}
		sum := res.Summary
		c := sum.Counters
		t.Logf("%d workers: sent %d expected %d delivered %d lost %d dup %d ooo %d misrouted %d extra %d errors %d %v",
			n, c.Sent, c.Expected, c.Delivered, c.Lost, c.Duplicated, c.OutOfOrder, c.Misrouted, c.Extra, c.Errors, c.ErrorsByKind)
		if c.Sent == 0 || c.Expected == 0 {
			t.Fatalf("%d workers: nothing sent or expected", n)
		}
		if c.Lost != 0 || c.Duplicated != 0 || c.OutOfOrder != 0 || c.Misrouted != 0 || c.Extra != 0 || c.Errors != 0 {
			t.Errorf("%d workers: lost %d duplicated %d out of order %d misrouted %d extra %d errors %d: want all 0",
				n, c.Lost, c.Duplicated, c.OutOfOrder, c.Misrouted, c.Extra, c.Errors)
		}
		if c.Delivered != c.Expected {
			t.Errorf("%d workers: delivered %d of %d expected", n, c.Delivered, c.Expected)
		}
		h, err := sum.Histogram("delivery")
		if err != nil {
			t.Fatal(err)
		}
		var parts int64
		for _, p := range sum.Parts {
			parts += p.Delivered
		}
		if h.TotalCount() != c.Delivered || parts != c.Delivered {
			t.Errorf("%d workers: delivery histogram holds %d, parts delivered %d, counters.delivered %d: want equal",
				n, h.TotalCount(), parts, c.Delivered)
		}
		if len(sum.Parts) != n || sum.Clients != s.Clients || sum.Incomplete {
			t.Errorf("%d workers: %d parts, %d clients (want %d), incomplete %v", n, len(sum.Parts), sum.Clients, s.Clients, sum.Incomplete)
		}
		for i, p := range sum.Parts {
			if want := fmt.Sprintf("%s%d", prefix, i); p.Name != want || p.Clock != "same" {
				t.Errorf("part %d: name %q clock %q, want %q same", i, p.Name, p.Clock, want)
			}
		}
		for _, f := range []string{metrics.SummaryFile, "delivery.hgrm", "rooms.csv", metrics.SeriesFile} {
			if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
				t.Errorf("%d workers: %v", n, err)
			}
		}
		if !strings.Contains(progress.String(), "["+prefix+"0]") {
			t.Errorf("%d workers: no progress line of %s0 in %q", n, prefix, progress.String())
		}
		got[k] = sum
	}
	one, three := got[0].Counters, got[1].Counters
	if one.Sent != three.Sent || one.Expected != three.Expected || one.Delivered != three.Delivered {
		t.Errorf("1 worker: sent %d expected %d delivered %d; 3 workers: sent %d expected %d delivered %d: want the same",
			one.Sent, one.Expected, one.Delivered, three.Sent, three.Expected, three.Delivered)
	}
}

// TestWorkerDies kills a worker in the middle of a chat phase: the run
// ends incomplete, names it, and still writes what the others measured.
func TestWorkerDies(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	url := startNATS(t)
	s := chatScenario(t, 60, 4, 30*time.Second)
	dead := make(chan string, 3)
	kids := startWorkers(t, url, "k", 3, dead)
	pr, pw := io.Pipe()
	defer pw.Close()
	killed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			// the victim is chatting: kill it
			if !once && strings.HasPrefix(sc.Text(), "[k1]") && strings.Contains(sc.Text(), " chat ") {
				once = true
				kids[1].p.Kill()
				close(killed)
			}
		}
	}()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	res, err := workers.Run(ctx, workers.Options{
		NATS: natsOpts(url), Workers: 3, Expect: names("k", 3), Version: testVersion, WaitTimeout: 20 * time.Second, Dead: dead,
		Driver: driver.Options{Scenario: s, Target: srv.GateAddr, Topology: "single", Out: out,
			DrainTimeout: 3 * time.Second, Progress: pw},
	})
	select {
	case <-killed:
	default:
		t.Fatalf("the run ended (%v) before worker k1 was seen chatting", err)
	}
	if err == nil || !strings.Contains(err.Error(), "k1") || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("Run: %v, want an incomplete run naming k1", err)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("took %v: the 30s chat phase should have been stopped", took)
	}
	if res == nil || res.Summary == nil {
		t.Fatal("no merged result")
	}
	sum := res.Summary
	t.Logf("Run: %v; sent %d delivered %d lost %d; parts %+v", err, sum.Counters.Sent, sum.Counters.Delivered, sum.Counters.Lost, sum.Parts)
	if !sum.Incomplete || !strings.Contains(sum.IncompleteReason, "k1") {
		t.Errorf("incomplete %v (%q): want true, naming k1", sum.Incomplete, sum.IncompleteReason)
	}
	var missing []string
	for _, p := range sum.Parts {
		if p.Missing {
			missing = append(missing, p.Name)
		}
	}
	if len(sum.Parts) != 3 || len(missing) != 1 || missing[0] != "k1" {
		t.Errorf("parts %+v: want 3 with k1 missing", sum.Parts)
	}
	if sum.Counters.Sent == 0 || sum.Counters.Delivered == 0 {
		t.Errorf("sent %d delivered %d: the survivors measured nothing", sum.Counters.Sent, sum.Counters.Delivered)
	}
	back, rerr := metrics.ReadSummary(res.Dir)
	if rerr != nil {
		t.Fatalf("results not written: %v", rerr)
	}
	if !back.Incomplete || back.Counters.Delivered != sum.Counters.Delivered {
		t.Errorf("written summary: incomplete %v delivered %d, want true and %d", back.Incomplete, back.Counters.Delivered, sum.Counters.Delivered)
	}
}

// TestScenarioTravels: a worker gets its scenario as JSON; every shipped
// scenario must come back the same.
func TestScenarioTravels(t *testing.T) {
	for _, name := range scenario.Names() {
		s, err := scenario.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var back scenario.Scenario
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(s, &back) {
			t.Errorf("%s: the scenario changed on its way:\n%+v\n%+v", name, s, &back)
		}
	}
}

// TestWorkersRefused: the coordinator names who is missing, refuses a
// worker of another version, and a scenario it cannot split, before
// anything runs.
func TestWorkersRefused(t *testing.T) {
	url := startNATS(t)
	hop, err := scenario.Load("hop")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		s      *scenario.Scenario
		start  int // workers started, named <prefix>0..
		env    []string
		expect int // workers the coordinator waits for
		want   []string
	}{
		{"one of two missing", chatScenario(t, 30, 3, time.Second), 1, nil, 2, []string{"1 joined (m0)", "missing: m1"}},
		{"another version", chatScenario(t, 30, 3, time.Second), 1, []string{envVer + "=other"}, 1, []string{"worker v0", "runs chatbench other", "runs test"}},
		{"hop phases", hop, 0, nil, 2, []string{"scenario hop cannot run over workers", `phase "hop" switches rooms`, "without --workers"}},
		{"no NATS token", chatScenario(t, 30, 3, time.Second), 0, nil, 1, []string{"connect to NATS", "uthorization"}},
	}
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []string{"m", "v", "h", "n"}[k]
			no := natsOpts(url)
			if tc.name == "no NATS token" {
				no.Token = ""
			}
			startWorkers(t, url, prefix, tc.start, nil, tc.env...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := workers.Run(ctx, workers.Options{NATS: no, Workers: tc.expect, Expect: names(prefix, tc.expect), Version: testVersion,
				WaitTimeout: 2 * time.Second, Driver: driver.Options{Scenario: tc.s, Target: "127.0.0.1:1"}})
			if err == nil {
				t.Fatal("Run: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run: %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}
