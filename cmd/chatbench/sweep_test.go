package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
)

// TestSweepBinary runs a real sweep of the real binary: a tiny scenario on
// the single baseline and split 1x1, and stock pomelo at the same size with
// no node on the PATH, so its run fails for real: the sweep marks it with
// its error, goes on, writes sweep.json and report.html, and exits 1.
func TestSweepBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs it")
	}
	bin := stampedBinary(t, "sweeptest")
	dir := t.TempDir()
	scen := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(scen, []byte(`name: tiny
clients: 20
rooms: {count: 2}
phases:
  - {kind: enter, arrival_rate: 2000}
  - {kind: storm, duration: 1s, burst: 1}
  - {kind: leave, arrival_rate: 4000}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results")
	cmd := exec.Command(bin, "sweep", "--scenario", scen, "--connectors", "1", "--shards", "1", "--repeat", "1", "--pomelo",
		"--ceiling", "off", "--out", out)
	cmd.Env = append(os.Environ(), "PATH=/nonexistent") // no node, no npm: pomelo cannot start
	stdout, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1 (a run failed)\nstdout:\n%s\nstderr:\n%s", err, stdout, stderrOf(err))
	}
	if !strings.Contains(string(ee.Stderr), "1 of 3 runs failed: pomelo-c1-s1 round 1") {
		t.Fatalf("stderr does not name the failed run:\n%s", ee.Stderr)
	}
	dirs, _ := filepath.Glob(filepath.Join(out, "sweep-*"))
	if len(dirs) != 1 {
		t.Fatalf("sweep directories %v", dirs)
	}
	sw, err := metrics.ReadSweep(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.Runs) != 3 {
		t.Fatalf("%d runs, want 3", len(sw.Runs))
	}
	for _, r := range sw.Runs {
		wantOK := r.Topology != "pomelo"
		if r.OK != wantOK || (wantOK && (r.Dir == "" || r.Delivered == 0 || r.ServerCPUSeconds <= 0 && len(r.Servers) == 0)) || (!wantOK && r.Error == "") {
			t.Errorf("run %+v", r)
		}
	}
	html, err := os.ReadFile(filepath.Join(dirs[0], "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "1 of 3 runs FAILED") || !strings.Contains(string(stdout), "report: "+filepath.Join(dirs[0], "report.html")) {
		t.Fatalf("report.html or stdout does not show the failure and the report path:\n%s", stdout)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func TestSweepCommand(t *testing.T) {
	got := sweepCommand([]string{"--scenario", "chat", "--out", "/tmp/x", "--repeat", "2", "--out=/y"})
	if want := "chatbench sweep --scenario chat --repeat 2"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
