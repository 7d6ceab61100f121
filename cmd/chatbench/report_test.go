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
	writeRunAt(t, dir, base, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), "single")
}

func writeRunAt(t *testing.T, dir string, base time.Duration, start time.Time, topology string) {
	t.Helper()
	run := metrics.NewRun(metrics.Options{Start: start})
	rec := run.NewRecorder()
	run.BeginPhase("chat", "chat", start)
	for i := range 100 {
		rec.Add(metrics.Sent, 1)
		rec.Record(metrics.OpDelivery, base+time.Duration(i)*time.Microsecond)
	}
	run.Tick(start.Add(time.Second))
	s := run.Finish(start.Add(2 * time.Second))
	s.Scenario, s.Topology = "chat", topology
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
	if m.DeliveriesPerSec > m.PeakDeliveriesPerSec {
		t.Fatalf("merged throughput %v above the peak second %v", m.DeliveriesPerSec, m.PeakDeliveriesPerSec)
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

// TestReportMergeRefusesUnrelatedRuns: a single run at 09:40 and a split run
// at 09:41 are not parts of one run; --merge says which field differs and
// how to proceed, and --force merges anyway.
func TestReportMergeRefusesUnrelatedRuns(t *testing.T) {
	root := t.TempDir()
	at := time.Date(2026, 11, 25, 9, 40, 0, 0, time.UTC)
	tests := []struct {
		name, field string
		start       time.Time
		topology    string
	}{
		{"topology", "topology", at, "split"},
		{"later", "does not overlap", at.Add(time.Minute), "single"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := filepath.Join(root, tt.name, "a"), filepath.Join(root, tt.name, "b")
			writeRunAt(t, a, time.Millisecond, at, "single")
			writeRunAt(t, b, time.Millisecond, tt.start, tt.topology)
			var out bytes.Buffer
			merged := filepath.Join(root, tt.name, "merged")
			err := report(context.Background(), []string{"--no-plots", "--merge", "-o", merged, a, b}, &out)
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "--force") ||
				!strings.Contains(err.Error(), b) {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(merged); !os.IsNotExist(err) {
				t.Fatal("a refused merge wrote its directory")
			}
			if err := report(context.Background(), []string{"--no-plots", "--force", "--merge", "-o", merged, a, b}, &out); err != nil {
				t.Fatal(err)
			}
			m, err := metrics.ReadSummary(merged)
			if err != nil || m.DeliveriesPerSec > m.PeakDeliveriesPerSec {
				t.Fatalf("forced merge: %v, %v/s above peak %v", err, m.DeliveriesPerSec, m.PeakDeliveriesPerSec)
			}
		})
	}
}
