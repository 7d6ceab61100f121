package sweep

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
)

func TestParseCounts(t *testing.T) {
	tests := []struct {
		list    string
		want    string
		wantErr string
	}{
		{"1,2,4", "[1 2 4]", ""},
		{" 3 ", "[3]", ""},
		{"", "", "--connectors \"\": empty list"},
		{"1,0", "", "a count of 0 runs nothing"},
		{"1,x", "", `"x" is not a count`},
		{"-2", "", "a count of -2"},
		{"2,2", "", "2 is listed twice"},
	}
	for _, tt := range tests {
		got, err := ParseCounts("--connectors", tt.list)
		if tt.wantErr != "" {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Flag != "--connectors" || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want a --connectors usage error with %q", tt.list, err, tt.wantErr)
			}
			continue
		}
		if err != nil || fmtInts(got) != tt.want {
			t.Errorf("%q: got %v, %v; want %s", tt.list, got, err, tt.want)
		}
	}
}

func fmtInts(v []int) string {
	var b strings.Builder
	b.WriteString("[")
	for i, x := range v {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(string(rune('0' + x)))
	}
	b.WriteString("]")
	return b.String()
}

func TestLimitError(t *testing.T) {
	tests := []struct {
		name              string
		connectors        []int
		clients           int
		files, procs      uint64
		wantFlag, wantMsg string
	}{
		{"fits", []int{1, 2, 4}, 2000, 20000, 10000, "", ""},
		{"clients over the file limit", []int{1}, 30000, 20000, 10000, "--clients", "30000: the driver needs about 30256 open files"},
		{"processes over the file limit", []int{5000}, 100, 20000, 1 << 30, "--connectors", "5000 with --shards 2: 5004 server processes"},
		{"processes over the thread limit", []int{100}, 100, 20000, 1000, "--connectors", "the process limit is 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &Options{Connectors: tt.connectors, Shards: []int{1, 2}}
			err := limitError(o, tt.clients, tt.files, tt.procs)
			if tt.wantFlag == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Flag != tt.wantFlag || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err %v, want %s ... %q", err, tt.wantFlag, tt.wantMsg)
			}
		})
	}
}

func TestConfigsOrder(t *testing.T) {
	o := Options{Connectors: []int{1, 2}, Shards: []int{1, 3}, Pomelo: true}
	var names []string
	for _, c := range o.Configs() {
		names = append(names, c.Name())
	}
	want := "single split-c1-s1 split-c2-s1 split-c1-s3 split-c2-s3 pomelo-c1-s1 pomelo-c2-s1 pomelo-c1-s3 pomelo-c2-s3"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if got := strings.Join((Config{Topology: "split", Connectors: 2, Shards: 3}).Args(), " "); got != "--topology split --connectors 2 --shards 3" {
		t.Fatalf("args %q", got)
	}
}

// TestAggregate: median and spread over the successful runs, failed runs
// counted, not averaged in.
func TestAggregate(t *testing.T) {
	runs := []metrics.SweepRun{
		{Config: "single", OK: true, DeliveriesPerSec: 100, Delivered: 1000, ServerCPUSeconds: 2, DriverCPUSeconds: 1, PeakFineDeliveriesPerS: 900},
		{Config: "single", OK: true, DeliveriesPerSec: 300, Delivered: 3000, ServerCPUSeconds: 4, DriverCPUSeconds: 3, Lost: 2, PeakFineDeliveriesPerS: 700},
		{Config: "single", OK: true, DeliveriesPerSec: 200, Delivered: 2000, ServerCPUSeconds: 0, DriverCPUSeconds: 2},
		{Config: "single", OK: false, Error: "exit 1"},
	}
	got := Aggregate(t.TempDir(), []Config{{Topology: "single"}}, runs)[0]
	if got.Runs != 4 || got.Failed != 1 || got.DeliveriesPerSec != 200 || got.DeliveriesPerSecMin != 100 || got.DeliveriesPerSecMax != 300 ||
		got.Lost != 2 || got.Delivered != 6000 || got.ServerCPUSeconds != 2 || got.DriverCPUSeconds != 2 || got.DeliveriesPerServerCPUS != 4000.0/6 || got.PeakFineDeliveriesPerS != 800 {
		t.Fatalf("%+v", got)
	}
}
