package calibrate

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
)

func load(t *testing.T, name string, o scenario.Overrides) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(o); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCacheRoundTrip(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	m := metrics.Machine{CPUModel: "test cpu", Cores: 2, MemoryBytes: 1 << 30, Kernel: "6.1.0"}
	m.Fingerprint = metrics.Fingerprint(m)
	storm := load(t, "broadcast-storm", scenario.Overrides{})
	if _, err := c.Load(m, storm); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty cache: %v, want not exist", err)
	}
	rec := &Record{Schema: SchemaV1, Fingerprint: m.Fingerprint, Machine: m, Shape: ShapeOf(storm), ShapeHash: shapeHash(storm),
		Scenario: storm.Name, MeasuredAt: time.Now().UTC(), DeliveriesPerSec: 1000}
	if _, err := c.Save(rec, storm); err != nil {
		t.Fatal(err)
	}
	got, err := c.Load(m, storm)
	if err != nil || got.DeliveriesPerSec != 1000 || got.Shape != rec.Shape {
		t.Fatalf("load: %+v, %v", got, err)
	}
	// another shape, another machine: not the same record
	for _, tc := range []struct {
		name string
		m    metrics.Machine
		s    *scenario.Scenario
	}{
		{"more clients", m, load(t, "broadcast-storm", scenario.Overrides{Clients: 4000})},
		{"faster bursts", m, load(t, "broadcast-storm", scenario.Overrides{Duration: time.Second})},
		{"other scenario", m, load(t, "chat", scenario.Overrides{})},
		{"other machine", metrics.Machine{Fingerprint: "other", Kernel: "6.1.0"}, storm},
		{"other kernel", metrics.Machine{Fingerprint: m.Fingerprint, Kernel: "6.2.0"}, storm},
	} {
		if _, err := c.Load(tc.m, tc.s); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want not exist", tc.name, err)
		}
	}
	// thresholds and descriptions do not change the shape
	th := load(t, "broadcast-storm", scenario.Overrides{})
	th.Description, th.Thresholds = "changed", scenario.Thresholds{}
	if _, err := c.Load(m, th); err != nil {
		t.Errorf("same shape, other thresholds: %v", err)
	}
}

func TestRecordCeilingAndValid(t *testing.T) {
	r := &Record{DeliveriesPerSec: 200, Fingerprint: "fp", Shape: "s"}
	c := r.Ceiling(&metrics.Summary{DeliveriesPerSec: 150})
	if c.Ratio != 0.75 || c.DeliveriesPerSec != 200 || c.Fingerprint != "fp" || c.Shape != "s" {
		t.Errorf("ceiling %+v", c)
	}
	for _, tc := range []struct {
		r    Record
		want bool
	}{
		{Record{}, true},
		{Record{Lost: 1}, false},
		{Record{Errors: 1}, false},
		{Record{Driver: metrics.DriverCheck{DriverBound: true}}, false},
	} {
		if got := tc.r.Valid(); got != tc.want {
			t.Errorf("%+v: valid %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestShapeOf(t *testing.T) {
	got := ShapeOf(load(t, "latency", scenario.Overrides{}))
	want := "latency clients=5000 rooms=50 size=100 payload=64 chat:0.2/s"
	if got != want {
		t.Errorf("ShapeOf = %q, want %q", got, want)
	}
}

func TestBetter(t *testing.T) {
	rec := func(dps float64, p99 int64, lost int64) *Record {
		return &Record{DeliveriesPerSec: dps, Delivery: metrics.OpStats{P99Us: p99}, Lost: lost}
	}
	for _, tc := range []struct {
		name string
		a, b *Record
		want bool
	}{
		{"faster", rec(1000, 50, 0), rec(800, 10, 0), true},
		{"slower", rec(800, 10, 0), rec(1000, 50, 0), false},
		{"tie, lower p99", rec(1000, 10, 0), rec(1010, 50, 0), true},
		{"tie, higher p99", rec(1010, 50, 0), rec(1000, 10, 0), false},
		{"clean beats lossy", rec(500, 50, 0), rec(1000, 10, 3), true},
		{"lossy loses", rec(1000, 10, 3), rec(500, 50, 0), false},
	} {
		if got := tc.a.Better(tc.b); got != tc.want {
			t.Errorf("%s: Better = %v, want %v", tc.name, got, tc.want)
		}
	}
}
