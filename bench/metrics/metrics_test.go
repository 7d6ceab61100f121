package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// fakeRun records a known run: 3 seconds, deliveries of 1..1000 ms.
func fakeRun(t *testing.T, start time.Time) *Summary {
	t.Helper()
	run := NewRun(Options{Start: start, ExtraOps: []string{"history"}})
	recs := []*Recorder{run.NewRecorder(), run.NewRecorder()}
	run.BeginPhase("enter", "enter", start)
	for i := range 10 {
		recs[i%2].Add(Connected, 1)
		recs[i%2].Record(OpEnter, time.Duration(i+1)*time.Millisecond)
		recs[i%2].Add(Requests, 1)
	}
	run.Tick(start.Add(time.Second))
	run.BeginPhase("chat", "chat", start.Add(time.Second))
	for i := range 1000 {
		r := recs[i%2]
		r.Add(Sent, 1)
		r.Add(Expected, 1)
		r.Record(OpDelivery, time.Duration(i+1)*time.Millisecond)
	}
	recs[0].Error(OpSendAck, 429, KindResponse)
	recs[1].Error(OpSendAck, 0, KindTimeout)
	recs[1].Add(Requests, 1000)
	hop, ok := run.Op("history")
	if !ok {
		t.Fatal("extra op not found")
	}
	recs[0].Record(hop, 5*time.Millisecond)
	run.Tick(start.Add(2 * time.Second))
	run.BeginPhase("leave", "leave", start.Add(3*time.Second))
	for i := range 10 {
		recs[i%2].Add(Connected, -1)
	}
	s := run.Finish(start.Add(3 * time.Second))
	s.Scenario = "chat"
	s.Clients = 10
	return s
}

func TestRunSummary(t *testing.T) {
	s := fakeRun(t, t0)
	if s.Schema != SchemaV1 || s.Counters.Sent != 1000 || s.Counters.Delivered != 1000 || s.Counters.Errors != 2 ||
		s.Counters.ErrorsByCode[429] != 1 || s.Counters.ErrorsByKind[KindTimeout] != 1 || s.Counters.Requests != 1010 ||
		s.Counters.ErrorsByOp["send_ack"] != 2 {
		t.Fatalf("counters: %+v", s.Counters)
	}
	d := s.Ops["delivery"]
	if d.Count != 1000 || d.MinUs != 1000 || d.MaxUs < 999000 || d.MaxUs > 1001000 || d.P50Us < 499000 || d.P50Us > 501000 {
		t.Fatalf("delivery stats: %+v", d)
	}
	if _, ok := s.Ops["history"]; !ok {
		t.Fatal("extra op missing")
	}
	if len(s.Series) != 3 || s.Series[0].Connected != 10 || s.Series[1].Delivered != 1000 || s.Series[1].Sent != 1000 ||
		s.Series[1].Errors != 2 || s.Series[2].Connected != 0 || s.Series[1].Histogram == "" {
		t.Fatalf("series: %+v", s.Series)
	}
	if len(s.Phases) != 3 || s.Phases[1].Delivered != 1000 || s.Phases[1].Sent != 1000 {
		t.Fatalf("phases: %+v", s.Phases)
	}
	// Over the chat phase (2 s): 500/s.
	if s.DeliveriesPerSec != 500 || s.PeakDeliveriesPerSec != 1000 {
		t.Fatalf("deliveries/s %v peak %v", s.DeliveriesPerSec, s.PeakDeliveriesPerSec)
	}
	if s.ErrorRate() != 2.0/1010 {
		t.Fatalf("error rate %v", s.ErrorRate())
	}
	want := []string{"enter", "delivery", "history"}
	if got := s.OpNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("OpNames %v", got)
	}
}

func TestClamp(t *testing.T) {
	run := NewRun(Options{})
	r := run.NewRecorder()
	r.Record(OpConnect, -time.Second)
	r.Record(OpConnect, 2*time.Hour)
	r.Record(OpConnect, 0) // 0 is clamped to 1 us but not counted
	s := run.Finish(time.Now())
	if s.Counters.Clamped != 2 || s.Ops["connect"].Count != 3 || s.Ops["connect"].MinUs != 1 {
		t.Fatalf("clamp: %+v %+v", s.Counters, s.Ops["connect"])
	}
}

func TestConcurrentRecordAndTick(t *testing.T) {
	run := NewRun(Options{})
	const writers, per = 8, 2000
	var wg sync.WaitGroup
	recs := make([]*Recorder, 4)
	for i := range recs {
		recs[i] = run.NewRecorder()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := recs[w%len(recs)]
			for i := range per {
				r.Record(OpDelivery, time.Duration(i)*time.Microsecond)
				r.Add(Sent, 1)
				if i%100 == 0 {
					r.Error(OpEnter, 503, KindResponse)
				}
			}
		}()
	}
	done := make(chan struct{})
	var ticked int64
	go func() {
		defer close(done)
		for i := range 20 {
			s := run.Tick(time.Now().Add(time.Duration(i) * time.Millisecond))
			ticked += s.Delivered
		}
	}()
	wg.Wait()
	<-done
	s := run.Finish(time.Now().Add(time.Second))
	for _, x := range s.Series[20:] {
		ticked += x.Delivered
	}
	if s.Counters.Delivered != writers*per || ticked != writers*per || s.Counters.Sent != writers*per ||
		s.Counters.ErrorsByCode[503] != writers*per/100 {
		t.Fatalf("delivered %d, series %d, sent %d, errors %v", s.Counters.Delivered, ticked, s.Counters.Sent, s.Counters.ErrorsByCode)
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	s := fakeRun(t, t0)
	s.Ceiling = &Ceiling{DeliveriesPerSec: 1000, Ratio: 0.5}
	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SummaryFile, SeriesFile, "delivery.hgrm", "enter.hgrm", "history.hgrm"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "connect.hgrm")); !os.IsNotExist(err) {
		t.Fatal("hgrm written for an op without samples")
	}
	hgrm, _ := os.ReadFile(filepath.Join(dir, "delivery.hgrm"))
	if !strings.HasPrefix(string(hgrm), " Value\tPercentile") || !strings.Contains(string(hgrm), "Total count    =         1000") {
		t.Fatalf("hgrm:\n%s", hgrm)
	}
	got, err := ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Counters.Delivered != 1000 || got.Ops["delivery"] != s.Ops["delivery"] || got.Ceiling.Ratio != 0.5 ||
		len(got.Series) != 3 || !got.Start.Equal(t0) {
		t.Fatalf("round trip lost data: %+v", got)
	}
	h, err := got.Histogram("delivery")
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := s.Histogram("delivery")
	if !h.Equals(orig) {
		t.Fatal("histogram not lossless")
	}
	series, err := ReadSeries(filepath.Join(dir, SeriesFile))
	if err != nil || len(series) != 3 || series[1].Delivered != 1000 || series[1].DeliveryP99Us != s.Series[1].DeliveryP99Us {
		t.Fatalf("series.csv: %v %+v", err, series)
	}
}

func TestReadSummarySchema(t *testing.T) {
	tests := []struct {
		schema string
		want   string // "" = ok
	}{
		{"chatbench.summary/v1", ""},
		{"chatbench.summary/v1.3", ""},
		{"chatbench.summary/v2", `unsupported summary schema: "chatbench.summary/v2" is major version 2; this chatbench reads version 1 only (use the chatbench that wrote it)`},
		{"wrk2/v1", `unsupported summary schema: "wrk2/v1" is not a chatbench summary (want chatbench.summary/v1)`},
		{"", `unsupported summary schema: "" is not a chatbench summary (want chatbench.summary/v1)`},
		{"chatbench.summary/vX", `unsupported summary schema: "chatbench.summary/vX" has no major version (want chatbench.summary/v1)`},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "summary.json")
			js, _ := json.Marshal(map[string]any{"schema": tt.schema, "scenario": "x", "future_field": 1})
			if err := os.WriteFile(p, js, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSummary(p)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrSchema) || err.Error() != "metrics: "+p+": "+tt.want {
				t.Fatalf("err = %v\nwant metrics: %s: %s", err, p, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a := fakeRun(t, t0)
	b := fakeRun(t, t0.Add(10*time.Millisecond))
	b.Driver.DriverBound = true
	b.Driver.DriverBoundWhy = "cpu"
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Counters.Delivered != 2000 || m.Ops["delivery"].Count != 2000 || m.Clients != 20 || m.Counters.ErrorsByCode[429] != 2 ||
		!m.Driver.DriverBound || m.Driver.DriverBoundWhy != "part 1 ("+b.Machine.Hostname+"): cpu" && m.Driver.DriverBoundWhy != "part 1: cpu" ||
		len(m.Parts) != 2 || len(m.Series) != 3 || m.Series[1].Delivered != 2000 || m.Phases[1].Delivered != 2000 {
		t.Fatalf("merge: %+v", m)
	}
	// Lossless: merged stats equal the stats of one histogram of all values.
	ha, _ := a.Histogram("delivery")
	hb, _ := b.Histogram("delivery")
	all := NewHistogram()
	all.Merge(ha)
	all.Merge(hb)
	if got, want := m.Ops["delivery"], StatsOf(all); got != want {
		t.Fatalf("merged stats %+v, want %+v", got, want)
	}
	// Over the union of the chat phases (1.00 s .. 3.01 s): 2000 / 2.01 s.
	if want := 2000 / 2.01; math.Abs(m.DeliveriesPerSec-want) > 0.01 || m.DeliveriesPerSec > m.PeakDeliveriesPerSec {
		t.Fatalf("merged deliveries/s %v, want %v (peak %v)", m.DeliveriesPerSec, want, m.PeakDeliveriesPerSec)
	}
	if p := m.Phases[1]; !p.Start.Equal(t0.Add(time.Second)) || !p.End.Equal(t0.Add(3010*time.Millisecond)) ||
		math.Abs(p.DeliveriesPerSec-2000/2.01) > 0.01 {
		t.Fatalf("merged chat phase %+v", p)
	}
	if _, err := Merge(); err == nil {
		t.Fatal("merged nothing")
	}
}

// TestMergeRefusesUnrelatedRuns: merge is for the parts of one run; parts
// that differ in scenario, seed or topology, or that did not overlap in
// time, are refused with an error naming the field, unless forced.
func TestMergeRefusesUnrelatedRuns(t *testing.T) {
	tests := []struct {
		name  string
		field string
		edit  func(s *Summary)
	}{
		{"scenario", "scenario", func(s *Summary) { s.Scenario = "other" }},
		{"seed", "seed", func(s *Summary) { s.Seed = 7 }},
		{"topology", "topology", func(s *Summary) { s.Topology = "split" }},
		{"later", "time", func(s *Summary) { shift(s, time.Minute) }},
		{"earlier", "time", func(s *Summary) { shift(s, -3*time.Second) }}, // ends exactly when part 0 starts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := fakeRun(t, t0), fakeRun(t, t0)
			a.Topology, b.Topology = "single", "single"
			tt.edit(b)
			_, err := Merge(a, b)
			var me *MismatchError
			if !errors.As(err, &me) || me.Field != tt.field || me.Part != 1 || !strings.Contains(err.Error(), "ONE run") {
				t.Fatalf("err = %v, want a %s mismatch of part 1", err, tt.field)
			}
			m, err := MergeWith(MergeOptions{Force: true}, a, b)
			if err != nil {
				t.Fatalf("forced: %v", err)
			}
			if m.Counters.Delivered != 2000 || m.DeliveriesPerSec > m.PeakDeliveriesPerSec {
				t.Fatalf("forced merge: delivered %d, %v/s, peak %v", m.Counters.Delivered, m.DeliveriesPerSec, m.PeakDeliveriesPerSec)
			}
			if tt.field == "topology" && m.Topology != "mixed" {
				t.Fatalf("forced merge of single and split is topology %q", m.Topology)
			}
		})
	}
	// A third part that overlaps part 1 but not part 0 is refused too.
	a, b, c := fakeRun(t, t0), fakeRun(t, t0.Add(2*time.Second)), fakeRun(t, t0.Add(4*time.Second))
	if _, err := Merge(a, b, c); err == nil {
		t.Fatal("merged parts without a common instant")
	}
}

func shift(s *Summary, d time.Duration) {
	s.Start, s.End = s.Start.Add(d), s.End.Add(d)
	for i := range s.Phases {
		s.Phases[i].Start, s.Phases[i].End = s.Phases[i].Start.Add(d), s.Phases[i].End.Add(d)
	}
	for i := range s.Series {
		s.Series[i].UnixMs += d.Milliseconds()
	}
}

func TestFingerprint(t *testing.T) {
	m := DetectMachine()
	if m.Cores <= 0 || m.Fingerprint == "" || len(m.Fingerprint) != 12 {
		t.Fatalf("machine: %+v", m)
	}
	n := m
	n.Hostname, n.Kernel = "other", "other"
	if Fingerprint(n) != m.Fingerprint {
		t.Fatal("fingerprint depends on hostname or kernel")
	}
	n.Cores++
	if Fingerprint(n) == m.Fingerprint {
		t.Fatal("fingerprint ignores cores")
	}
}

func BenchmarkRecord(b *testing.B) {
	run := NewRun(Options{})
	r := run.NewRecorder()
	r.Record(OpDelivery, time.Millisecond) // make the histogram
	r.Error(OpSendAck, 500, KindResponse)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.Record(OpDelivery, time.Duration(i&0xfffff)*time.Microsecond)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	run := NewRun(Options{})
	var mu sync.Mutex
	n := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		r := run.NewRecorder()
		n++
		mu.Unlock()
		r.Record(OpDelivery, time.Millisecond)
		i := 0
		for pb.Next() {
			i++
			r.Record(OpDelivery, time.Duration(i&0xfffff)*time.Microsecond)
		}
	})
}

func BenchmarkAddAndError(b *testing.B) {
	run := NewRun(Options{})
	r := run.NewRecorder()
	r.Error(OpSendAck, 500, KindResponse)
	b.ReportAllocs()
	for b.Loop() {
		r.Add(Sent, 1)
		r.Error(OpSendAck, 500, KindResponse)
	}
}

// TestFrozenV1 reads a summary.json written by the first v1 writer: every
// later v1 reader must still read it (additive changes only).
func TestFrozenV1(t *testing.T) {
	dir := filepath.Join("testdata", "v1")
	if os.Getenv("METRICS_WRITE_FROZEN") != "" {
		if err := fakeRun(t, t0).Write(dir); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Schema != SchemaV1 || s.Scenario != "chat" || s.Counters.Delivered != 1000 || s.Counters.ErrorsByCode[429] != 1 ||
		s.Ops["delivery"].Count != 1000 || len(s.Series) != 3 || len(s.Phases) != 3 || !s.Start.Equal(t0) {
		t.Fatalf("frozen v1 summary read wrong: %+v", s)
	}
	h, err := s.Histogram("delivery")
	if err != nil || h.TotalCount() != 1000 || StatsOf(h).P99Us != s.Ops["delivery"].P99Us {
		t.Fatalf("frozen histogram: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	run := NewRun(Options{ExtraOps: []string{"x"}})
	r := run.NewRecorder()
	x, _ := run.Op("x")
	if run.NumOps() != 10 || run.OpName(x) != "x" || run.OpName(OpDelivery) != "delivery" {
		t.Fatalf("ops: %d %q", run.NumOps(), run.OpName(x))
	}
	r.Prepare(OpDelivery, x)
	allocs := testing.AllocsPerRun(100, func() { r.Record(x, time.Millisecond) })
	if allocs != 0 {
		t.Fatalf("Record after Prepare allocates %v", allocs)
	}
	// Prepared but unused operations are not reported.
	if s := run.Finish(time.Now()); len(s.Ops) != 1 {
		t.Fatalf("ops %v", s.OpNames())
	}
}

// TestSample: sends and deliveries land in the 100 ms bucket they were
// sampled in, and Finish puts the rest in the last bucket.
func TestSample(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := NewRun(Options{Start: t0})
	rec := run.NewRecorder()
	rec.Add(Sent, 2)
	rec.Record(OpDelivery, time.Millisecond)
	run.Sample(t0.Add(100 * time.Millisecond)) // bucket 0
	run.Sample(t0.Add(200 * time.Millisecond)) // bucket 1: nothing
	for range 5 {
		rec.Record(OpDelivery, time.Millisecond)
	}
	run.Sample(t0.Add(350 * time.Millisecond)) // bucket 3
	rec.Record(OpDelivery, time.Millisecond)
	s := run.Finish(t0.Add(420 * time.Millisecond)) // bucket 4
	if s.Fine == nil || s.Fine.IntervalMs != 100 {
		t.Fatalf("fine %+v", s.Fine)
	}
	if got, want := fmt.Sprint(s.Fine.Delivered), "[1 0 0 5 1]"; got != want {
		t.Fatalf("delivered %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(s.Fine.Sent), "[2 0 0 0 0]"; got != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
}

func TestSweepRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := &Sweep{Kind: SweepKindSweep, Scenario: "broadcast-storm", Repeat: 2, Connectors: []int{1, 2}, Shards: []int{1},
		Configs: []SweepConfig{{Name: ConfigName("split", 2, 1), Topology: "split", Connectors: 2, Shards: 1, DeliveriesPerSec: 1000}},
		Runs:    []SweepRun{{Config: "split-c2-s1", OK: false, Error: "exit status 1"}}}
	if err := in.Write(dir); err != nil {
		t.Fatal(err)
	}
	out, err := ReadSweep(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.Schema != SweepSchemaV1 || len(out.Failed()) != 1 || out.Configs[0].Name != "split-c2-s1" {
		t.Fatalf("read back %+v", out)
	}
	if _, ok := out.Config("split-c2-s1"); !ok {
		t.Fatal("Config did not find split-c2-s1")
	}
	for _, schema := range []string{"chatbench.sweep/v2", "chatbench.summary/v1", ""} {
		os.WriteFile(filepath.Join(dir, SweepFile), []byte(`{"schema":"`+schema+`"}`), 0o644)
		if _, err := ReadSweep(dir); !errors.Is(err, ErrSchema) {
			t.Errorf("schema %q: err %v, want ErrSchema", schema, err)
		}
	}
}

// TestMergeFine: the parts' 100 ms buckets add up, each part's moved by its
// start to the nearest bucket; a part without buckets leaves the merge
// without them.
func TestMergeFine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	part := func(startMs int, sent, deliv []int64) *Summary {
		s := &Summary{Schema: SchemaV1, Scenario: "s", Start: t0.Add(time.Duration(startMs) * time.Millisecond), End: t0.Add(time.Hour),
			Ops: map[string]OpStats{}}
		if sent != nil {
			s.Fine = &FineSeries{IntervalMs: 100, Sent: sent, Delivered: deliv}
		}
		return s
	}
	tests := []struct {
		name       string
		parts      []*Summary
		sent, dlvr []int64 // nil: no fine series
	}{
		{"aligned", []*Summary{part(0, []int64{1, 2}, []int64{3, 4}), part(0, []int64{10, 20}, []int64{30, 40})}, []int64{11, 22}, []int64{33, 44}},
		{"second part 230 ms later", []*Summary{part(0, []int64{1, 2}, []int64{3, 4}), part(230, []int64{10, 20}, []int64{30, 40})}, []int64{1, 2, 10, 20}, []int64{3, 4, 30, 40}},
		{"a part without buckets", []*Summary{part(0, []int64{1}, []int64{1}), part(0, nil, nil)}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Merge(tc.parts...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.sent == nil {
				if m.Fine != nil {
					t.Fatalf("fine %+v, want none", m.Fine)
				}
				return
			}
			if m.Fine == nil || !reflect.DeepEqual(m.Fine.Sent, tc.sent) || !reflect.DeepEqual(m.Fine.Delivered, tc.dlvr) {
				t.Fatalf("fine %+v, want sent %v delivered %v", m.Fine, tc.sent, tc.dlvr)
			}
		})
	}
}
