package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SweepSchemaV1 is the schema of sweep.json (docs/results.md): a sweep or a
// comparison, many runs of one scenario over several server
// configurations. Versioned like summary.json: additive changes keep the
// major version.
const (
	SweepSchemaV1    = "chatbench.sweep/v1"
	sweepSchemaPfx   = "chatbench.sweep/v"
	SweepMajor       = 1
	SweepFile        = "sweep.json"
	SweepKindSweep   = "sweep"
	SweepKindCompare = "compare"
)

// Sweep is sweep.json: what ran, every run (failed ones with their error)
// and each configuration's numbers over its repeats.
type Sweep struct {
	Schema     string    `json:"schema"`
	Kind       string    `json:"kind"` // "sweep" or "compare"
	Scenario   string    `json:"scenario"`
	Command    string    `json:"command"`              // the command line that made it
	BenchArgs  []string  `json:"bench_args,omitempty"` // flags every run's `chatbench bench` got besides the configuration
	Commit     string    `json:"commit"`
	Machine    Machine   `json:"machine"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Repeat     int       `json:"repeat"`
	Connectors []int     `json:"connectors"`
	Shards     []int     `json:"shards"`
	Topologies []string  `json:"topologies"` // in the order configurations run: single, split, pomelo
	// Configs are the configurations in run order, with their numbers over
	// the runs that succeeded.
	Configs []SweepConfig `json:"configs"`
	// Runs are every run in the order they ran (rounds interleaved).
	Runs []SweepRun `json:"runs"`
}

// SweepConfig is one server configuration of a sweep and its numbers over
// its successful runs (zero when none succeeded).
type SweepConfig struct {
	Name       string `json:"name"` // single, split-c2-s1, pomelo-c2-s1
	Topology   string `json:"topology"`
	Connectors int    `json:"connectors"`
	Shards     int    `json:"shards"` // 0 for single
	Runs       int    `json:"runs"`   // runs attempted
	Failed     int    `json:"failed"` // runs that did not produce a summary
	// Deliveries per second (SweepRun.DeliveriesPerSec): median over the
	// runs, and the lowest and highest run.
	DeliveriesPerSec    float64 `json:"deliveries_per_s"`
	DeliveriesPerSecMin float64 `json:"deliveries_per_s_min"`
	DeliveriesPerSecMax float64 `json:"deliveries_per_s_max"`
	// PeakFineDeliveriesPerS is the median over the runs of their busiest
	// 100 ms bucket, per second: for bursts that drain long before the next
	// one, closer to what the server can deliver than the schedule-bound
	// rate (0 when the runs have no 100 ms buckets).
	PeakFineDeliveriesPerS float64 `json:"peak_100ms_deliveries_per_s,omitempty"`
	// Delivery latency percentiles of the runs' merged delivery histograms
	// (exact, not averaged), and that histogram (base64 V2).
	P50Us     int64  `json:"p50_us"`
	P99Us     int64  `json:"p99_us"`
	P999Us    int64  `json:"p999_us"`
	Histogram string `json:"histogram,omitempty"`
	Lost      int64  `json:"lost"`      // summed over the runs
	Delivered int64  `json:"delivered"` // summed over the runs
	// CPU seconds per run (mean over the runs) of all server processes and
	// of the driver, and deliveries per server CPU second (delivered over
	// server CPU seconds, both summed over the runs; 0 when unknown).
	ServerCPUSeconds        float64 `json:"server_cpu_s"`
	DriverCPUSeconds        float64 `json:"driver_cpu_s"`
	DeliveriesPerServerCPUS float64 `json:"deliveries_per_server_cpu_s"`
	ThresholdsFailed        int     `json:"thresholds_failed"` // runs with a failed threshold
	DriverBound             int     `json:"driver_bound"`      // runs that were driver-bound (their numbers measure the driver)
}

// SweepRun is one run of a sweep.
type SweepRun struct {
	Config     string    `json:"config"` // SweepConfig.Name
	Topology   string    `json:"topology"`
	Connectors int       `json:"connectors"`
	Shards     int       `json:"shards"`
	Round      int       `json:"round"` // 1..repeat
	Dir        string    `json:"dir"`   // results directory, relative to the sweep directory ("" when none was written)
	OK         bool      `json:"ok"`    // the run produced a summary (a failed threshold is still ok)
	Error      string    `json:"error,omitempty"`
	ExitCode   int       `json:"exit_code"` // of `chatbench bench` (99: a threshold failed)
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`

	// DeliveriesPerSec is the run's throughput, as Rate says: "burst" for
	// a scenario with storm phases (their deliveries over their active
	// windows, active_s), "phases" otherwise (summary deliveries_per_s).
	DeliveriesPerSec        float64     `json:"deliveries_per_s"`
	Rate                    string      `json:"rate"`
	PeakFineDeliveriesPerS  float64     `json:"peak_100ms_deliveries_per_s,omitempty"` // the run's busiest 100 ms bucket (summary fine), per second
	P50Us                   int64       `json:"p50_us"`
	P99Us                   int64       `json:"p99_us"`
	P999Us                  int64       `json:"p999_us"`
	Delivered               int64       `json:"delivered"`
	Lost                    int64       `json:"lost"`
	DriverCPUSeconds        float64     `json:"driver_cpu_s"`
	ServerCPUSeconds        float64     `json:"server_cpu_s"`
	Servers                 []ServerCPU `json:"servers,omitempty"`
	DeliveriesPerServerCPUS float64     `json:"deliveries_per_server_cpu_s"`
	ThresholdsFailed        []string    `json:"thresholds_failed,omitempty"`
	DriverBound             bool        `json:"driver_bound"`
}

// SweepRun.Rate values.
const (
	RateBurst  = "burst"
	RatePhases = "phases"
)

// ConfigName names a configuration: "single", or "<topology>-c<connectors>-s<shards>".
func ConfigName(topology string, connectors, shards int) string {
	if topology == "single" {
		return "single"
	}
	return topology + "-c" + strconv.Itoa(connectors) + "-s" + strconv.Itoa(shards)
}

// Failed lists the runs that produced no summary.
func (s *Sweep) Failed() []SweepRun {
	var out []SweepRun
	for _, r := range s.Runs {
		if !r.OK {
			out = append(out, r)
		}
	}
	return out
}

// Config returns the configuration named name.
func (s *Sweep) Config(name string) (SweepConfig, bool) {
	for _, c := range s.Configs {
		if c.Name == name {
			return c, true
		}
	}
	return SweepConfig{}, false
}

// Write writes sweep.json into dir (atomically, like Summary.Write).
func (s *Sweep) Write(dir string) error {
	if s.Schema == "" {
		s.Schema = SweepSchemaV1
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics: encode sweep: %w", err)
	}
	return writeFile(filepath.Join(dir, SweepFile), append(js, '\n'))
}

// ReadSweep reads sweep.json from path (a file, or a sweep directory). It
// refuses another schema or major version with an error that says so.
func ReadSweep(path string) (*Sweep, error) {
	return readVersioned[Sweep](path, SweepFile, checkSweepSchema)
}

// checkSweepSchema accepts chatbench.sweep/v1 and its minor additions.
func checkSweepSchema(schema string) error {
	v, ok := strings.CutPrefix(schema, sweepSchemaPfx)
	major, _, _ := strings.Cut(v, ".")
	if !ok || major != strconv.Itoa(SweepMajor) {
		return fmt.Errorf("%w: %q is not %s%d (a sweep of this chatbench)", ErrSchema, schema, sweepSchemaPfx, SweepMajor)
	}
	return nil
}
