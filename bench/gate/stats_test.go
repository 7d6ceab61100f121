package gate

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func scaled(vals []float64, f float64) []float64 {
	out := make([]float64, len(vals))
	for i, v := range vals {
		out[i] = v * f
	}
	return out
}

// eight runs of a throughput with a few percent of noise
var base8 = []float64{1000, 1030, 985, 1012, 996, 1021, 1005, 990}

func TestCompare(t *testing.T) {
	rate := DefaultMetrics()[0] // deliveries_per_s, higher is better, 5%
	p99 := DefaultMetrics()[2]  // delivery_p99_ms, lower is better, 25%
	for _, tc := range []struct {
		name       string
		m          Metric
		base, cand []float64
		want       Verdict
		reason     string
	}{
		{"the same runs again", rate, base8, []float64{1008, 992, 1025, 1001, 988, 1017, 1010, 995}, Pass, "no significant change"},
		{"20% fewer deliveries/s", rate, base8, scaled(base8, 0.8), Regression, "20.0% worse"},
		{"4% fewer, significant but within tolerance", rate, base8, scaled(base8, 0.96), Pass, "within the 5% tolerance"},
		{"20% more deliveries/s", rate, base8, scaled(base8, 1.2), Pass, "a significant change"},
		{"too few runs", rate, base8[:5], scaled(base8, 0.8), Inconclusive, "too few measured runs: 5 baseline, 8 candidate, need 6 each"},
		{"worse beyond tolerance, not significant", rate, []float64{1000, 600, 1400, 700, 1300, 800, 1200, 900}, []float64{900, 500, 1300, 600, 1200, 700, 1100, 850}, Inconclusive, "not significant"},
		{"too much spread", rate, []float64{1000, 400, 1600, 500, 1500, 700, 1300, 1000}, []float64{1000, 1600, 400, 1500, 500, 1300, 700, 1020}, Inconclusive, "too much spread"},
		{"p99 30% higher", p99, base8, scaled(base8, 1.3), Regression, "30.0% worse"},
		{"p99 30% lower", p99, base8, scaled(base8, 0.7), Pass, "a significant change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compare(tc.m, tc.base, tc.cand, Stats{})
			if c.Verdict != tc.want || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("verdict %s (%s), want %s (%s); ratio %v p %v", c.Verdict, c.Reason, tc.want, tc.reason, c.Ratio, c.P)
			}
			if c.Baseline.N != len(tc.base) || c.Candidate.N != len(tc.cand) {
				t.Errorf("n %d/%d", c.Baseline.N, c.Candidate.N)
			}
		})
	}
}

// A version against itself: every split of one set of runs into two
// interleaved halves passes (no false alarm from the statistics alone).
func TestCompareSelfNoFalseAlarm(t *testing.T) {
	runs := []float64{1000, 1030, 985, 1012, 996, 1021, 1005, 990, 1018, 977, 1003, 1026, 994, 1009, 1001, 987}
	for shift := range 8 {
		var a, b []float64
		for i, v := range runs {
			if (i+shift)%2 == 0 {
				a = append(a, v)
			} else {
				b = append(b, v)
			}
		}
		for _, m := range DefaultMetrics() {
			if c := Compare(m, a, b, Stats{}); c.Verdict != Pass {
				t.Errorf("shift %d %s: %s (%s)", shift, m.Name, c.Verdict, c.Reason)
			}
		}
	}
}

func TestOverallAndExitCodes(t *testing.T) {
	c := func(v Verdict) Comparison { return Comparison{Verdict: v} }
	for _, tc := range []struct {
		cs   []Comparison
		want Verdict
		code int
	}{
		{[]Comparison{c(Pass), c(Pass)}, Pass, 0},
		{[]Comparison{c(Pass), c(Inconclusive)}, Inconclusive, 3},
		{[]Comparison{c(Inconclusive), c(Regression), c(Pass)}, Regression, 1},
	} {
		if got := Overall(tc.cs); got != tc.want || got.ExitCode() != tc.code {
			t.Errorf("%v: %s exit %d, want %s exit %d", tc.cs, got, got.ExitCode(), tc.want, tc.code)
		}
	}
}

// A run that is no measurement (driver-bound, failed) is not a sample.
func TestCompareRunsSkipsNoMeasurement(t *testing.T) {
	var runs []Run
	for i := range 16 {
		v := BaselineName
		if i%2 == 1 {
			v = CandidateName
		}
		runs = append(runs, Run{Index: i + 1, Version: v, Measured: true, Values: map[string]float64{"deliveries_per_s": base8[i/2]}})
	}
	runs[3].Measured, runs[3].Excluded = false, "driver-bound: cpu"
	runs[3].Values["deliveries_per_s"] = 1 // would be a 99.9% loss if it counted
	cs := CompareRuns(runs, DefaultMetrics()[:1], Stats{})
	if cs[0].Candidate.N != 7 || cs[0].Verdict != Pass {
		t.Fatalf("%+v", cs[0])
	}
}

func goldenResult() *Result {
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	res := &Result{Schema: SchemaV1, Scenario: "gate", RunsEach: 8, MaxRuns: 16,
		Baseline:  Side{Ref: "HEAD~1", Commit: "aaaaaaaaaaaa", Binary: "bin/chatbench-baseline"},
		Candidate: Side{Ref: "HEAD", Commit: "bbbbbbbbbbbb", Binary: "bin/chatbench-candidate", BenchArgs: []string{"--serve-flag=--test-delivery-work=100ns"}},
		Machine:   metrics.Machine{CPUModel: "Test CPU", Cores: 2, Kernel: "6.0"},
		Command:   "chatbench gate --baseline HEAD~1 --candidate HEAD", Start: start, End: start.Add(2 * time.Minute)}
	for i := range 16 {
		v, f := BaselineName, 1.0
		if i%2 == 1 {
			v, f = CandidateName, 0.75
		}
		r := Run{Index: i + 1, Version: v, Measured: true, Values: map[string]float64{
			"deliveries_per_s": 1_500_000 * f * (1 + 0.01*float64(i%4)), "delivery_p50_ms": 500 / f, "delivery_p99_ms": 1200/f + float64(i),
			"server_cpu_us_per_delivery": 0.5 / f * (1 + 0.002*float64(i%3))}}
		if i == 5 {
			r = Run{Index: i + 1, Version: v, Excluded: "driver-bound: scheduler lag p99 12ms > 10ms", ExitCode: 0}
		}
		res.Runs = append(res.Runs, r)
	}
	res.Comparisons = CompareRuns(res.Runs, DefaultMetrics(), Stats{})
	res.Verdict = Overall(res.Comparisons)
	res.ExitCode = res.Verdict.ExitCode()
	return res
}

func TestTextGolden(t *testing.T) {
	res := goldenResult()
	if res.Verdict != Regression {
		t.Fatalf("verdict %s", res.Verdict)
	}
	var b bytes.Buffer
	if err := Text(&b, res); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "regression.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("text differs from %s (go test -update to accept):\n%s", golden, b.String())
	}
}

// gate.json round-trips, and a number that is not finite (no runs, an
// interval too few runs cannot bound) is null, not an encoding error.
func TestWriteReadJSON(t *testing.T) {
	res := goldenResult()
	res.Comparisons = append(res.Comparisons, Compare(DefaultMetrics()[0], nil, []float64{1, 2}, Stats{}))
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	got, err := Read(filepath.Join(dir, "gate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != Regression || len(got.Runs) != 16 || got.Runs[5].Measured || len(got.Comparisons) != 5 {
		t.Fatalf("read back %+v", got)
	}
	last := got.Comparisons[4]
	if !math.IsNaN(float64(last.Baseline.Median)) || !math.IsNaN(float64(last.P)) {
		t.Errorf("no-run median %v p %v, want NaN from null", last.Baseline.Median, last.P)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "gate.json"))
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil || generic["schema"] != SchemaV1 {
		t.Fatalf("schema %v: %v", generic["schema"], err)
	}
	for _, f := range []string{"gate.txt", "gate.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"schema":"chatbench.gate/v2"}`), 0o644)
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), "chatbench.gate/v1") {
		t.Errorf("v2 read: %v", err)
	}
}
