package reports

import (
	"bytes"
	"flag"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var start = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// fixture records a deterministic run: 2,000 clients enter, then 5 seconds
// of deliveries with latencies around base (lognormal-ish tail), then leave.
func fixture(t *testing.T, dir string, base time.Duration, seed uint64, bound bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	run := metrics.NewRun(metrics.Options{Start: start})
	recs := []*metrics.Recorder{run.NewRecorder(), run.NewRecorder()}
	now := start
	run.BeginPhase("enter", "enter", now)
	for i := range 2000 {
		r := recs[i%2]
		r.Add(metrics.Connected, 1)
		r.Add(metrics.Requests, 3)
		r.Record(metrics.OpQueryEntry, time.Duration(300+rng.IntN(400))*time.Microsecond)
		r.Record(metrics.OpConnect, time.Duration(200+rng.IntN(300))*time.Microsecond)
		r.Record(metrics.OpEnter, time.Duration(500+rng.IntN(2000))*time.Microsecond)
	}
	now = now.Add(time.Second)
	run.Tick(now)
	run.BeginPhase("storm", "storm", now)
	for sec := range 5 {
		for m := range 200 {
			if m%20 == 0 {
				run.Sample(now.Add(time.Duration(m/20) * 100 * time.Millisecond))
			}
			r := recs[m%2]
			r.Add(metrics.Sent, 1)
			r.Add(metrics.Requests, 1)
			r.Add(metrics.Expected, 100)
			r.Record(metrics.OpSendAck, base/2+time.Duration(rng.IntN(1000))*time.Microsecond)
			var last time.Duration
			for range 100 {
				d := time.Duration(float64(base) * (0.5 + rng.ExpFloat64()*(0.3+0.2*float64(sec))))
				r.Record(metrics.OpDelivery, d)
				last = max(last, d)
			}
			r.Record(metrics.OpLastRecipient, last)
		}
		now = now.Add(time.Second)
		run.Tick(now)
	}
	recs[0].Error(metrics.OpSendAck, 429, metrics.KindResponse)
	recs[1].Error(metrics.OpEnter, 0, metrics.KindTimeout)
	recs[0].Add(metrics.Lost, 3)
	recs[1].Add(metrics.Duplicated, 1)
	run.Sample(now)
	run.BeginPhase("leave", "leave", now)
	for i := range 2000 {
		recs[i%2].Add(metrics.Connected, -1)
		recs[i%2].Record(metrics.OpLeave, time.Duration(100+rng.IntN(100))*time.Microsecond)
	}
	now = now.Add(time.Second)
	s := run.Finish(now)
	s.Scenario, s.Seed, s.Clients, s.Rooms = "broadcast-storm", 1, 2000, 20
	s.Topology, s.Target, s.Commit, s.GoVersion, s.GOMAXPROCS = "single", "127.0.0.1:3014", "abc1234", "go1.26.8", 2
	s.Machine = metrics.Machine{Hostname: "bench", OS: "linux", Arch: "amd64", CPUModel: "AMD EPYC", Cores: 2,
		MemoryBytes: 8 << 30, Kernel: "6.1.0"}
	s.Machine.Fingerprint = metrics.Fingerprint(s.Machine)
	s.Driver = metrics.DriverCheck{CPUPercent: 71, GCPauseTotalUs: 5400, GCPauseMaxUs: 800, SchedLagP99Us: 350, SchedLagMaxUs: 2100,
		MemoryPerClientB: 9200}
	// The storm's bursts were active 4.2 s of its 5 s.
	s.Phases[1].ActiveS = 4.2
	s.Phases[1].ActiveDeliveriesPerSec = float64(s.Phases[1].Delivered) / 4.2
	if bound {
		s.Driver.DriverBound = true
		s.Driver.DriverBoundWhy = "driver cpu 190% of 200%, scheduler lag p99 12ms"
		// The second run is a split one, with members in transit and
		// misrouted messages: the report must tell it from the first.
		s.Topology, s.Target = "split", "10.0.0.2:3014"
		s.Counters.Extra, s.Counters.Misrouted = 399, 2
		s.Counters.Delivered += 399
	}
	s.Ceiling = &metrics.Ceiling{DeliveriesPerSec: 125000, Ratio: s.DeliveriesPerSec / 125000, Fingerprint: s.Machine.Fingerprint}
	s.Thresholds = []metrics.ThresholdResult{
		{Name: "p99_delivery_max", Limit: 25000, Actual: float64(s.Ops["delivery"].P99Us), Unit: "us",
			Pass: s.Ops["delivery"].P99Us <= 25000},
		{Name: "loss_max", Limit: 0, Actual: s.LossRatio(), Unit: "ratio", Pass: s.LossRatio() == 0},
		{Name: "min_deliveries_per_s", Limit: 10000, Actual: s.DeliveriesPerSec, Unit: "1/s", Pass: s.DeliveriesPerSec >= 10000},
	}
	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
}

func fixtures(t *testing.T) []Run {
	t.Helper()
	root := t.TempDir()
	a, b := filepath.Join(root, "before"), filepath.Join(root, "after")
	fixture(t, a, 20*time.Millisecond, 1, false)
	fixture(t, b, 8*time.Millisecond, 2, true)
	runs, err := Load(a, filepath.Join(b, metrics.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	// Stable paths in the golden text.
	runs[0].Dir, runs[1].Dir = "results/before", "results/after"
	return runs
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./reports -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

func TestTextGolden(t *testing.T) {
	runs := fixtures(t)
	tests := []struct {
		golden string
		runs   []Run
	}{
		{"single.golden", runs[:1]},
		{"driver_bound.golden", runs[1:]},
		{"compare.golden", runs},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteReport(&b, tt.runs); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, b.Bytes())
		})
	}
}

func TestRenderWritesPNGs(t *testing.T) {
	runs := fixtures(t)
	for _, tt := range []struct {
		name string
		runs []Run
	}{{"one", runs[:1]}, {"two", runs}} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			var b bytes.Buffer
			files, err := Render(&b, out, tt.runs)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 4 || !strings.Contains(b.String(), "latency") {
				t.Fatalf("files %v, text %q", files, b.String())
			}
			for _, name := range []string{LatencyPlot, SeriesPlotFile} {
				f, err := os.Open(filepath.Join(out, name))
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
					t.Fatalf("%s is %v", name, b)
				}
			}
			text, _ := os.ReadFile(filepath.Join(out, TextFile))
			if string(text) != b.String() {
				t.Fatal("report.txt differs from the text written")
			}
			if os.Getenv("REPORTS_KEEP") != "" {
				dst := filepath.Join(os.Getenv("REPORTS_KEEP"), tt.name)
				os.MkdirAll(dst, 0o755)
				for _, f := range files {
					data, _ := os.ReadFile(f)
					os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o644)
				}
			}
		})
	}
}

func TestNoSamples(t *testing.T) {
	dir := t.TempDir()
	s := metrics.NewRun(metrics.Options{Start: start}).Finish(start.Add(time.Second))
	s.Scenario = "empty"
	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	runs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	files, err := Render(&b, t.TempDir(), runs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || !strings.Contains(b.String(), "(no samples)") { // text, the (flat) series plot, report.html
		t.Fatalf("files %v\n%s", files, b.String())
	}
}

// TestThresholdNoSamples: a latency threshold of an operation without
// samples reads "FAIL ... no samples", never "0us <= limit", and fails even
// when an older summary recorded it as passed.
func TestThresholdNoSamples(t *testing.T) {
	for _, stored := range []bool{false, true} {
		s := metrics.NewRun(metrics.Options{Start: start}).Finish(start.Add(time.Second))
		s.Scenario = "empty"
		s.Thresholds = []metrics.ThresholdResult{
			{Name: "p99_delivery_max", Limit: 250000, Unit: "us", Pass: stored},
			{Name: "loss_max", Limit: 0, Unit: "ratio", Pass: true},
		}
		var b bytes.Buffer
		if err := WriteText(&b, FromSummary("results/empty", s)); err != nil {
			t.Fatal(err)
		}
		got := b.String()
		if !strings.Contains(got, "thresholds FAIL\n") ||
			!strings.Contains(got, "  FAIL p99_delivery_max       no samples (no delivery was measured; limit 250.0ms)\n") ||
			!strings.Contains(got, "  ok   loss_max") || strings.Contains(got, "0us <=") {
			t.Errorf("stored pass %v:\n%s", stored, got)
		}
	}
}

func TestPercentileTicks(t *testing.T) {
	ticks := PercentileTicks{}.Ticks(1, 1e4)
	var labels []string
	for _, tk := range ticks {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "0% 50% 90% 99% 99.9% 99.99%" {
		t.Fatalf("labels %q", got)
	}
	if len(ticks) < 30 {
		t.Fatalf("no minor ticks: %d", len(ticks))
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{Us(850), "850us"}, {Us(12345), "12.35ms"}, {Us(123456), "123.5ms"}, {Us(1520000), "1.52s"},
		{Count(0), "0"}, {Count(999), "999"}, {Count(1000), "1,000"}, {Count(-1234567), "-1,234,567"},
		{Rate(66666.7), "66,667/s"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("no error for a missing dir")
	}
}
