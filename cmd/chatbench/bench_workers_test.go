package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/cluster"
	"github.com/chatbench/chatbench/server/cluster/clustertest"
	"github.com/chatbench/chatbench/server/servertest"
)

// TestBenchWorkersUsage: bad worker flags are usage errors naming the flag.
func TestBenchWorkersUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"negative workers", []string{"--scenario", "chat", "--workers", "-1"}, "--workers -1"},
		{"nats without workers", []string{"--scenario", "chat", "--nats", "nats://127.0.0.1:4222"}, "--workers N"},
		{"more workers than clients", []string{"--scenario", "chat", "--clients", "3", "--workers", "4"}, "--workers 4"},
		{"hop split", []string{"--scenario", "hop", "--workers", "2"}, "run it without --workers"},
		{"zero worker timeout", []string{"--scenario", "chat", "--workers", "2", "--worker-timeout", "0s"}, "--worker-timeout"},
		{"credentials without --nats", []string{"--scenario", "chat", "--workers", "2", "--nats-creds", "x.creds"}, "add --nats"},
		{"two ways to authenticate", []string{"--scenario", "chat", "--workers", "2", "--nats", "nats://h:1", "--nats-creds", "x", "--nats-nkey", "y"}, "one way"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := bench(context.Background(), tc.args, &bytes.Buffer{})
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("bench %v: %v, want a usage error naming %q", tc.args, err, tc.want)
			}
		})
	}
	for _, args := range [][]string{nil, {"--nats", "nats://x:1", "--name", "a.b"}, {"--nats", "nats://x:1", "--log-level", "loud"}} {
		if err := runWorker(context.Background(), args); !errors.Is(err, errUsage) {
			t.Errorf("worker %v: %v, want a usage error", args, err)
		}
	}
}

// TestBenchWorkersBinary runs the real binary split over two local worker
// processes, and over one remote worker that joins through --nats; and a
// coordinator whose workers never come says so and names the command.
func TestBenchWorkersBinary(t *testing.T) {
	bin := stampedBinary(t, "stampworkers")
	srv := servertest.Start(t, server.Options{})
	// a NATS server with a token: the remote worker takes it from the
	// environment, the coordinator from a file (as the split topology)
	const token = "workers-test-token"
	ns, err := cluster.StartNATS("127.0.0.1", -1, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := ns.ClientURL()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--scenario", "chat", "--clients", "30", "--rooms", "3", "--duration", "1s", "--quiet", "--ceiling", "off",
		"--drain", "5s", "--target", srv.GateAddr}

	// a remote worker waiting on the NATS server
	w, err := proc.Start(proc.Options{
		Role: "worker", ID: "remote-1", Path: bin, Args: []string{"worker", "--nats", url, "--name", "remote-1", "--once"},
		Env: append(os.Environ(), natsopts.EnvToken+"="+token),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Kill)
	if f, err := w.WaitReady(context.Background()); err != nil || len(f) != 1 || f.Get("worker") != "remote-1" {
		t.Fatalf("worker READY %v: %v", f, err)
	}

	tests := []struct {
		name  string
		args  []string
		code  int
		want  string
		parts []string
	}{
		{"local workers", []string{"--workers", "2"}, 99, "2 local workers (w0, w1)", []string{"w0", "w1"}},
		{"remote worker", []string{"--workers", "1", "--nats", url, "--nats-token-file", tokenFile}, 99, "waiting up to", []string{"remote-1"}},
		{"nobody comes", []string{"--workers", "1", "--nats", url, "--nats-token-file", tokenFile, "--worker-timeout", "1s"}, 1, "missing: 1 more (start them with: chatbench worker --nats", nil},
		{"no token", []string{"--workers", "1", "--nats", url}, 1, "uthorization", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			cmd := clustertest.Command(bin, append(append([]string{"bench", "--out", out}, common...), tc.args...)...)
			b, err := cmd.CombinedOutput()
			code := 0
			if err != nil {
				code = cmd.ProcessState.ExitCode()
			}
			// chat's min_deliveries_per_s is meant for 2,000 clients: 99 at 30
			if code != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, b)
			}
			if tc.parts == nil {
				return
			}
			dirs, _ := filepath.Glob(filepath.Join(out, "chat-*"))
			if len(dirs) != 1 {
				t.Fatalf("results dirs %v", dirs)
			}
			sum, err := metrics.ReadSummary(dirs[0])
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range sum.Parts {
				names = append(names, p.Name)
			}
			c := sum.Counters
			if strings.Join(names, ",") != strings.Join(tc.parts, ",") || sum.Clients != 30 || c.Lost != 0 || c.Delivered != c.Expected || c.Expected == 0 {
				t.Errorf("parts %v (want %v), clients %d, expected %d delivered %d lost %d", names, tc.parts, sum.Clients, c.Expected, c.Delivered, c.Lost)
			}
		})
	}
}
