package calibrate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
)

// SchemaV1 is the schema of a cached calibration record.
const SchemaV1 = "chatbench.calibration/v1"

// Record is one calibration: the bare fan-out ceiling of a machine for one
// scenario shape, and the delivery-latency spectrum at that ceiling.
type Record struct {
	Schema      string          `json:"schema"`
	Fingerprint string          `json:"fingerprint"` // metrics.Machine.Fingerprint
	Machine     metrics.Machine `json:"machine"`
	Shape       string          `json:"shape"`     // readable scenario shape (ShapeOf)
	ShapeHash   string          `json:"shape_sha"` // hash of the whole effective scenario
	Scenario    string          `json:"scenario"`
	MeasuredAt  time.Time       `json:"measured_at"`
	LoadAvg     string          `json:"loadavg,omitempty"` // /proc/loadavg when the measurement started

	DeliveriesPerSec     float64             `json:"deliveries_per_s"`
	PeakDeliveriesPerSec float64             `json:"peak_deliveries_per_s"`
	Delivery             metrics.OpStats     `json:"delivery"` // latency spectrum (us); histogram dropped
	Sent                 int64               `json:"sent"`
	Delivered            int64               `json:"delivered"`
	Lost                 int64               `json:"lost"`
	Errors               int64               `json:"errors"`
	Driver               metrics.DriverCheck `json:"driver"`
	ResultsDir           string              `json:"results_dir,omitempty"` // the calibration run's own results
	ServerNice           int                 `json:"server_nice"`           // the bare server ran this many nice steps below the driver
}

// ShapeOf is the readable key of a scenario's shape: what the ceiling
// depends on (clients, rooms and their size, payload, message rates).
func ShapeOf(s *scenario.Scenario) string {
	var rates []string
	for _, p := range s.Phases {
		switch p.Kind {
		case scenario.KindChat, scenario.KindHop:
			rates = append(rates, fmt.Sprintf("%s:%g/s", p.Kind, p.Rate))
		case scenario.KindStorm:
			rates = append(rates, fmt.Sprintf("storm:%dx/%v", p.Burst, p.BurstEvery))
		}
	}
	size := 0
	if s.Rooms.Count > 0 {
		size = (s.Clients + s.Rooms.Count - 1) / s.Rooms.Count
	}
	return fmt.Sprintf("%s clients=%d rooms=%d size=%d payload=%d %s", s.Name, s.Clients, s.Rooms.Count, size, s.Payload, strings.Join(rates, ","))
}

// measureVersion changes when what a calibration measures changes (the
// driver's phase accounting, the bare server's technique): older cached
// records then no longer match.
const measureVersion = "8: broadcasts fan out over the CPUs when idle (wsout.Fanout); sends wake on a timerfd (pace), not the runtime millisecond; storm phases last their duration; storms compare active deliveries/s (Rate); bare writer is wsout (direct writes when idle, flushers and coalescing under load); best of runs"

// shapeHash hashes everything of the effective scenario that changes the
// work (not its name, description or thresholds), and measureVersion.
func shapeHash(s *scenario.Scenario) string {
	c := *s
	c.Description, c.Source, c.Thresholds = "", "", scenario.Thresholds{}
	b, _ := json.Marshal(c)
	b = append(b, measureVersion...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Cache is a directory of calibration records, one file per machine
// fingerprint and scenario shape.
type Cache struct{ Dir string }

// DefaultDir is where calibrations are cached under a results root.
func DefaultDir(resultsRoot string) string { return filepath.Join(resultsRoot, ".calibration") }

// path is the record of machine m and scenario s. The key is the machine
// fingerprint (cpu model, cores, memory, os, arch) plus the kernel release
// (a kernel changes what a syscall costs, and a write per delivery is most
// of the work), the scenario name and its shape hash.
func (c Cache) path(m metrics.Machine, s *scenario.Scenario) string {
	k := sha256.Sum256([]byte(m.Kernel))
	return filepath.Join(c.Dir, fmt.Sprintf("%s-%s-%s-%s.json", m.Fingerprint, hex.EncodeToString(k[:2]), sanitize(s.Name), shapeHash(s)))
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// Load returns the cached record for this machine and scenario; an error
// wrapping os.ErrNotExist when there is none.
func (c Cache) Load(m metrics.Machine, s *scenario.Scenario) (*Record, error) {
	b, err := os.ReadFile(c.path(m, s))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("calibration cache %s: %w", c.path(m, s), err)
	}
	if r.Schema != SchemaV1 || r.DeliveriesPerSec <= 0 {
		return nil, fmt.Errorf("calibration cache %s: schema %q: %w", c.path(m, s), r.Schema, os.ErrNotExist)
	}
	return &r, nil
}

// Save writes r (for r.Machine) for scenario s and returns the file's path.
func (c Cache) Save(r *Record, s *scenario.Scenario) (string, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	p := c.path(r.Machine, s)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// FromResult turns a driver run against the bare server into a Record.
func FromResult(s *scenario.Scenario, res *driver.Result, loadavg string) (*Record, error) {
	if res == nil || res.Summary == nil {
		return nil, errors.New("calibrate: no result")
	}
	sum := res.Summary
	d := sum.Ops["delivery"]
	d.Histogram = ""
	r := &Record{
		Schema: SchemaV1, Fingerprint: sum.Machine.Fingerprint, Machine: sum.Machine,
		Shape: ShapeOf(s), ShapeHash: shapeHash(s), Scenario: s.Name, MeasuredAt: sum.Start.UTC(), LoadAvg: loadavg,
		DeliveriesPerSec: Rate(sum), PeakDeliveriesPerSec: sum.PeakDeliveriesPerSec, Delivery: d,
		Sent: sum.Counters.Sent, Delivered: sum.Counters.Delivered, Lost: sum.Counters.Lost, Errors: sum.Counters.Errors,
		Driver: sum.Driver, ResultsDir: res.Dir,
	}
	if r.DeliveriesPerSec <= 0 {
		return r, fmt.Errorf("calibrate: scenario %s delivered nothing against the bare server (sent %d, errors %d)", s.Name, r.Sent, r.Errors)
	}
	return r, nil
}

// Valid reports whether the measurement is clean: nothing lost, no errors,
// and the driver was not the bottleneck. An invalid record is still cached
// (and shown) but measured again when asked for.
func (r *Record) Valid() bool { return !r.Driver.DriverBound && r.Lost == 0 && r.Errors == 0 }

// Ceiling is the summary's "ceiling" block for a run compared with r.
func (r *Record) Ceiling(sum *metrics.Summary) *metrics.Ceiling {
	c := &metrics.Ceiling{DeliveriesPerSec: r.DeliveriesPerSec, Fingerprint: r.Fingerprint, Shape: r.Shape, MeasuredAt: r.MeasuredAt}
	if r.DeliveriesPerSec > 0 {
		c.Ratio = Rate(sum) / r.DeliveriesPerSec
	}
	return c
}

// Rate is the deliveries/s a ceiling is measured and compared in: over the
// message phases, a storm phase counting its active window (first scheduled
// send to last delivery: phases[].active_s, its burst throughput) and chat
// and hop phases their wall time; the summary's deliveries_per_s when no
// phase gives a window. A storm phase lasts its declared duration, so over
// wall time a fast server and a slow one that both drain within it would
// look the same.
func Rate(sum *metrics.Summary) float64 {
	var n int64
	var secs float64
	for _, p := range sum.Phases {
		switch {
		case p.Kind == string(scenario.KindStorm) && p.ActiveDeliveriesPerSec > 0:
			n += p.Delivered
			secs += p.ActiveS
		case p.Kind == string(scenario.KindChat) || p.Kind == string(scenario.KindStorm) || p.Kind == string(scenario.KindHop):
			n += p.Delivered
			secs += p.End.Sub(p.Start).Seconds()
		}
	}
	if n == 0 || secs <= 0 {
		return sum.DeliveriesPerSec
	}
	return float64(n) / secs
}

// Options configure Measure.
type Options struct {
	Scenario *scenario.Scenario
	Target   string // host:port of a running bare server
	Out      string // results root for the calibration runs' own results ("" = none)
	// Runs is how many times the shape is measured (default 2); the best
	// clean run is kept (see Better): on a shared machine one run can be
	// unlucky, and a ceiling should not be.
	Runs   int
	Driver driver.Options
}

// Measure runs the scenario against a bare server at Target Runs times and
// returns the best record (not yet saved).
func Measure(ctx context.Context, o Options) (*Record, *driver.Result, error) {
	if o.Runs <= 0 {
		o.Runs = 2
	}
	var best *Record
	var bestRes *driver.Result
	var firstErr error
	for i := 0; i < o.Runs && ctx.Err() == nil; i++ {
		load, _ := os.ReadFile("/proc/loadavg")
		do := o.Driver
		do.Scenario, do.Target, do.Topology, do.Out = o.Scenario, o.Target, "calibrate", o.Out
		res, err := driver.Run(ctx, do)
		if err != nil {
			firstErr = cmp.Or(firstErr, fmt.Errorf("calibrate: %w", err))
			continue
		}
		rec, err := FromResult(o.Scenario, res, strings.TrimSpace(string(load)))
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if best == nil || rec.Better(best) {
			best, bestRes = rec, res
		}
	}
	if best == nil {
		return nil, bestRes, cmp.Or(firstErr, ctx.Err())
	}
	return best, bestRes, nil
}

// Better reports whether r is a better ceiling measurement than o: a clean
// run beats an unclean one; then more deliveries/s wins, and within 2% (an
// offered-load-bound shape) the lower p99 delivery latency.
func (r *Record) Better(o *Record) bool {
	if r.Valid() != o.Valid() {
		return r.Valid()
	}
	if d := r.DeliveriesPerSec - o.DeliveriesPerSec; d > 0.02*o.DeliveriesPerSec || d < -0.02*o.DeliveriesPerSec {
		return d > 0
	}
	return r.Delivery.P99Us < o.Delivery.P99Us
}
