package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/server"
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
	if err := bench(context.Background(), args, out); err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
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
