package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/cluster/clustertest"
	"github.com/chatbench/chatbench/server/servertest"
)

func TestMain(m *testing.M) { os.Exit(clustertest.Main(m)) }

func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := clustertest.Command(bin, args...)
	cmd.Env = append(os.Environ(), calibrationEnv+"=") // the test's own cache only
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chatbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runBinExit is runBin for a command expected to exit with code.
func runBinExit(t *testing.T, bin string, code int, args ...string) string {
	t.Helper()
	cmd := clustertest.Command(bin, args...)
	cmd.Env = append(os.Environ(), calibrationEnv+"=") // the test's own cache only
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != code {
		t.Fatalf("chatbench %s: %v, want exit code %d\n%s", strings.Join(args, " "), err, code, out)
	}
	return string(out)
}

// TestCalibrateAndCeiling runs the real binary: calibrate measures a small
// shape against its bare child server and caches it, a second calibrate
// answers from the cache, and bench --ceiling auto writes the ceiling block
// (ratio) into the run's summary.
func TestCalibrateAndCeiling(t *testing.T) {
	bin := clustertest.Chatbench(t)
	dir := t.TempDir()
	shape := []string{"--scenario", "chat", "--clients", "40", "--rooms", "2", "--duration", "1s"}

	out := runBin(t, bin, append([]string{"calibrate", "--out", dir, "--quiet"}, shape...)...)
	if !strings.Contains(out, "measured now") || !strings.Contains(out, "deliveries/s") {
		t.Fatalf("first calibrate did not measure:\n%s", out)
	}
	cached, _ := filepath.Glob(filepath.Join(dir, ".calibration", "*.json"))
	if len(cached) != 1 {
		t.Fatalf("cache files %v, want 1", cached)
	}
	out = runBin(t, bin, append([]string{"calibrate", "--out", dir, "--quiet"}, shape...)...)
	if !strings.Contains(out, "cached") {
		t.Errorf("second calibrate did not use the cache:\n%s", out)
	}

	srv := servertest.Start(t, server.Options{})
	// exit 99: chat's min_deliveries_per_s threshold is for 2,000 clients, not 40
	out = runBinExit(t, bin, exitThresholds, append([]string{"bench", "--out", dir, "--quiet", "--ceiling", "auto", "--target", srv.GateAddr}, shape...)...)
	if !strings.Contains(out, "of this machine's ceiling") {
		t.Errorf("bench report without the ceiling line:\n%s", out)
	}
	sums, _ := filepath.Glob(filepath.Join(dir, "chat-*", "summary.json"))
	if len(sums) != 1 {
		t.Fatalf("summaries %v, want 1", sums)
	}
	s, err := metrics.ReadSummary(sums[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.Ceiling == nil || s.Ceiling.DeliveriesPerSec <= 0 || s.Ceiling.Ratio <= 0 || s.Ceiling.Fingerprint != s.Machine.Fingerprint {
		t.Errorf("summary ceiling %+v (machine %s)", s.Ceiling, s.Machine.Fingerprint)
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{{"127.0.0.1:3014", true}, {"localhost:1", true}, {"[::1]:5", true}, {"10.0.0.1:3014", false}, {"nohost", false}} {
		if got := isLoopback(tc.in); got != tc.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
