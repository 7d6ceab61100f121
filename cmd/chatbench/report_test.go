package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/reports"
)

func writeRun(t *testing.T, dir string, base time.Duration) {
	t.Helper()
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	run := metrics.NewRun(metrics.Options{Start: start})
	rec := run.NewRecorder()
	run.BeginPhase("chat", "chat", start)
	for i := range 100 {
		rec.Add(metrics.Sent, 1)
		rec.Record(metrics.OpDelivery, base+time.Duration(i)*time.Microsecond)
	}
	run.Tick(start.Add(time.Second))
	s := run.Finish(start.Add(2 * time.Second))
	s.Scenario = "chat"
	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
}

func TestReportCommand(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	writeRun(t, a, time.Millisecond)
	writeRun(t, b, 2*time.Millisecond)
	ctx := context.Background()
	var out bytes.Buffer
	runReport := func(ctx context.Context, args []string) error { return report(ctx, args, &out) }

	if err := runReport(ctx, []string{a}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{reports.TextFile, reports.LatencyPlot, reports.SeriesPlotFile} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := runReport(ctx, []string{"--no-plots", a, b}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "compare-a-vs-b")); !os.IsNotExist(err) {
		t.Fatal("--no-plots wrote a comparison directory")
	}
	if !strings.Contains(out.String(), "vs first") {
		t.Fatalf("no comparison table:\n%s", out.String())
	}
	merged := filepath.Join(root, "merged")
	if err := runReport(ctx, []string{"--merge", "-o", merged, a, b}); err != nil {
		t.Fatal(err)
	}
	m, err := metrics.ReadSummary(merged)
	if err != nil || m.Counters.Delivered != 200 || len(m.Parts) != 2 {
		t.Fatalf("merged: %v %+v", err, m)
	}
	for _, args := range [][]string{{}, {"--merge", a}, {"--bogus", a}} {
		if err := runReport(ctx, args); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want usage", args, err)
		}
	}
	if err := runReport(ctx, []string{filepath.Join(root, "missing")}); err == nil || errors.Is(err, errUsage) {
		t.Errorf("missing dir: %v", err)
	}
}
