package metrics

import "time"

// SchemaV1 is the schema of summary.json written by this package. Additive
// changes keep the major version; a reader refuses another major version.
const SchemaV1 = "chatbench.summary/v1"

// Summary is summary.json: everything about one run (or a merge of several
// runs on several machines). Latencies are microseconds (fields ending _us).
type Summary struct {
	Schema      string  `json:"schema"`
	Scenario    string  `json:"scenario"`
	Description string  `json:"description,omitempty"`
	Seed        int64   `json:"seed"`
	Clients     int     `json:"clients"` // scenario client count
	Rooms       int     `json:"rooms"`   // scenario room count
	Topology    string  `json:"topology"`
	Target      string  `json:"target"`                // gate host:port driven
	ServerNice  int     `json:"server_nice,omitempty"` // the started server ran this many nice steps below the driver (0: same priority, or not started by the driver)
	Commit      string  `json:"commit"`
	GoVersion   string  `json:"go_version"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	Machine     Machine `json:"machine"`

	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	DurationSeconds float64   `json:"duration_s"`

	Driver DriverCheck `json:"driver"`

	// Phases are the phase boundaries the driver marked (Run.BeginPhase).
	Phases []PhaseStats `json:"phases,omitempty"`

	// Ops maps an operation name (connect, handshake, queryEntry, enter,
	// send_ack, delivery, last_recipient, leave, switch, or an extra one)
	// to its latency statistics and histogram.
	Ops map[string]OpStats `json:"ops"`

	Counters Counters `json:"counters"`

	// DeliveriesPerSec is delivered messages per second over the message
	// phases (chat, storm, hop) when the driver marked phases, else over
	// the whole run. PeakDeliveriesPerSec is the best second of Series.
	DeliveriesPerSec     float64 `json:"deliveries_per_s"`
	PeakDeliveriesPerSec float64 `json:"peak_deliveries_per_s"`

	Series []Second `json:"series"`

	// Fine is the run's deliveries and sends in short buckets (100 ms):
	// what a 2-second burst looks like, which the per-second Series cannot
	// show. Omitted by drivers that do not sample it, and by merges.
	Fine *FineSeries `json:"fine,omitempty"`

	// Servers are the CPU seconds of each server process during the run,
	// as the command that started the server measured them (/proc); omitted
	// when the driver did not start the server (--target).
	Servers []ServerCPU `json:"servers,omitempty"`

	Thresholds []ThresholdResult `json:"thresholds,omitempty"`

	Ceiling *Ceiling `json:"ceiling,omitempty"`

	// Parts lists the runs a merged summary was built from (Merge); empty
	// for a single run. A run split over driver workers names them.
	Parts []Part `json:"parts,omitempty"`

	// Incomplete marks a run that lost a part of itself (a driver worker
	// died or its results never came): the numbers cover only what the
	// rest measured. IncompleteReason names the workers and why.
	Incomplete       bool   `json:"incomplete,omitempty"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`

	// ClockErrorUs bounds the clock error of latencies measured across
	// driver workers on different machines (the largest of the parts'
	// clock_error_us); omitted when every worker shared one clock.
	ClockErrorUs int64 `json:"clock_error_us,omitempty"`
}

// Machine is the fingerprint of the machine that ran the driver.
type Machine struct {
	Hostname    string `json:"hostname"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"` // logical CPUs
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	// Fingerprint is a short stable hash of cpu model, cores, memory
	// (rounded to GiB), os, arch: the key ceiling calibrations are cached by.
	Fingerprint string `json:"fingerprint"`
}

// DriverCheck is the driver's self-check: was the driver, not the server,
// the bottleneck?
type DriverCheck struct {
	CPUPercent       float64 `json:"cpu_percent"` // driver process CPU, percent of one core (200 = 2 cores busy)
	GCPauseTotalUs   int64   `json:"gc_pause_total_us"`
	GCPauseMaxUs     int64   `json:"gc_pause_max_us"`
	SchedLagP99Us    int64   `json:"sched_lag_p99_us"` // lateness of a periodic timer
	SchedLagMaxUs    int64   `json:"sched_lag_max_us"`
	DriverBound      bool    `json:"driver_bound"`
	DriverBoundWhy   string  `json:"driver_bound_reason,omitempty"`
	MemoryPerClientB int64   `json:"memory_per_client_bytes,omitempty"`
	// CPUSeconds is the driver process's CPU time (user + system) over the
	// run, in seconds (absent in summaries written before it existed).
	CPUSeconds float64 `json:"cpu_s,omitempty"`
}

// FineSeries counts sends and deliveries in buckets of IntervalMs
// milliseconds from the run's start: Sent[i] and Delivered[i] happened in
// [i*IntervalMs, (i+1)*IntervalMs).
type FineSeries struct {
	IntervalMs int64   `json:"interval_ms"`
	Sent       []int64 `json:"sent"`
	Delivered  []int64 `json:"delivered"`
}

// ServerCPU is one server process and the CPU it used during the run.
type ServerCPU struct {
	Name       string  `json:"name"`          // server id (connector-1, chat-server-2), else its role or program, as server-cpu.csv
	PID        int     `json:"pid,omitempty"` // process id (for reading logs of the run)
	CPUSeconds float64 `json:"cpu_s"`         // user + system CPU seconds from the start of the run to its end
	// UserSeconds is the user part of CPUSeconds: the server's own code,
	// without the kernel's socket work (whose cost per delivery depends on
	// how the writes batch, hence on how fast the clients read).
	UserSeconds float64 `json:"user_s,omitempty"`
}

// ServerUserSeconds is the sum of Servers' user CPU seconds (0 when
// unknown).
func (s *Summary) ServerUserSeconds() float64 {
	var t float64
	for _, p := range s.Servers {
		t += p.UserSeconds
	}
	return t
}

// ServerCPUSeconds is the sum of Servers' CPU seconds (0 when unknown).
func (s *Summary) ServerCPUSeconds() float64 {
	var t float64
	for _, p := range s.Servers {
		t += p.CPUSeconds
	}
	return t
}

// PhaseStats is one phase as it ran.
type PhaseStats struct {
	Name             string    `json:"name"`
	Kind             string    `json:"kind"`
	Start            time.Time `json:"start"`
	End              time.Time `json:"end"`
	Sent             int64     `json:"sent"`
	Delivered        int64     `json:"delivered"`
	DeliveriesPerSec float64   `json:"deliveries_per_s"`
	// ActiveS is the phase's active window, from its first scheduled send to
	// its last delivery (message phases with deliveries; omitted otherwise),
	// and ActiveDeliveriesPerSec = Delivered / ActiveS (burst throughput;
	// omitted when the window is too short for a rate).
	ActiveS                float64 `json:"active_s,omitempty"`
	ActiveDeliveriesPerSec float64 `json:"active_deliveries_per_s,omitempty"`
}

// OpStats are the latency statistics of one operation, in microseconds, and
// its full histogram (base64 of the HdrHistogram V2 compressed encoding,
// lossless and mergeable: see Summary.Histogram).
type OpStats struct {
	Count     int64   `json:"count"`
	MinUs     int64   `json:"min_us"`
	MeanUs    float64 `json:"mean_us"`
	P50Us     int64   `json:"p50_us"`
	P90Us     int64   `json:"p90_us"`
	P99Us     int64   `json:"p99_us"`
	P999Us    int64   `json:"p999_us"`
	MaxUs     int64   `json:"max_us"`
	Histogram string  `json:"histogram"`
}

// Counters are the run's totals.
type Counters struct {
	Sent       int64 `json:"sent"`         // chat messages sent
	Expected   int64 `json:"expected"`     // deliveries expected (recipients of every message sent)
	Delivered  int64 `json:"delivered"`    // unique deliveries (= ops.delivery.count)
	Lost       int64 `json:"lost"`         // expected, never delivered
	Duplicated int64 `json:"duplicated"`   // delivered again
	OutOfOrder int64 `json:"out_of_order"` // arrived after a later message of the same sender
	// Misrouted counts onChat deliveries to a client that was not an
	// expected recipient (a private message to the wrong member, a room's
	// message to a non-member); not in Delivered. Extra counts deliveries to
	// members in transit during a room switch (neither expected nor lost;
	// in Delivered).
	Misrouted int64 `json:"misrouted"`
	Extra     int64 `json:"extra"`
	LateSends int64 `json:"late_sends"` // sends that could not go out on schedule
	Requests  int64 `json:"requests"`   // requests and connects attempted (denominator of the error rate)
	Errors    int64 `json:"errors"`     // all errors
	// ErrorsByCode counts error responses by pomelo code (500, 503, ...);
	// errors without a code (timeouts, closed sockets) are under 0.
	ErrorsByCode map[int]int64 `json:"errors_by_code"`
	// ErrorsByKind counts errors by kind (see the Kind* constants).
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	// ErrorsByOp counts errors by the operation that failed (omitted in
	// summaries written before it existed: additive).
	ErrorsByOp map[string]int64 `json:"errors_by_op,omitempty"`
	// Clamped counts latencies outside the histogram range (clamped).
	Clamped int64 `json:"clamped,omitempty"`
}

// Second is one second of the series.
type Second struct {
	UnixMs        int64   `json:"unix_ms"`   // end of the second (tick time)
	ElapsedS      float64 `json:"elapsed_s"` // since Start
	Connected     int64   `json:"connected"` // clients connected at the tick
	Sent          int64   `json:"sent"`
	Delivered     int64   `json:"delivered"`
	Errors        int64   `json:"errors"`
	DeliveryP50Us int64   `json:"delivery_p50_us"`
	DeliveryP99Us int64   `json:"delivery_p99_us"`
	DeliveryMaxUs int64   `json:"delivery_max_us"`
	// Histogram is this second's delivery histogram (base64 V2, 2 digits).
	Histogram string `json:"histogram,omitempty"`
}

// ThresholdResult is one threshold checked against a run.
type ThresholdResult struct {
	Name   string  `json:"name"`   // p99_delivery_max, loss_max, error_rate_max, min_deliveries_per_s
	Limit  float64 `json:"limit"`  // in Unit
	Actual float64 `json:"actual"` // in Unit
	Unit   string  `json:"unit"`   // "us", "ratio", "1/s"
	Pass   bool    `json:"pass"`
}

// Ceiling compares the run with the calibrated ceiling of the machine.
type Ceiling struct {
	DeliveriesPerSec float64   `json:"deliveries_per_s"` // calibrated bare fan-out ceiling
	Ratio            float64   `json:"ratio"`            // run deliveries_per_s / ceiling
	Fingerprint      string    `json:"fingerprint"`      // machine fingerprint it was measured on
	Shape            string    `json:"shape,omitempty"`  // scenario shape key (clients, room size, payload)
	MeasuredAt       time.Time `json:"measured_at,omitempty"`
}

// Part is one of the runs merged into a summary.
type Part struct {
	// Name is the driver worker that ran the part (split runs).
	Name             string    `json:"name,omitempty"`
	Machine          Machine   `json:"machine"`
	Start            time.Time `json:"start"`
	End              time.Time `json:"end"`
	Delivered        int64     `json:"delivered"`
	DeliveriesPerSec float64   `json:"deliveries_per_s"`
	DriverBound      bool      `json:"driver_bound"`
	// Clock is how the worker's clock was related to the coordinator's:
	// "same" (one machine: one clock, no error) or "measured" (an offset
	// measured over NATS, ClockOffsetUs, corrected, with ClockErrorUs its
	// error bound: half the best round trip). Empty for merges of
	// separate runs.
	Clock         string `json:"clock,omitempty"`
	ClockOffsetUs int64  `json:"clock_offset_us,omitempty"`
	ClockErrorUs  int64  `json:"clock_error_us,omitempty"`
	// Missing: the worker died or its results never came (Incomplete).
	Missing bool `json:"missing,omitempty"`
}

// LossRatio is Counters.Lost / Counters.Expected (0 when nothing was expected).
func (s *Summary) LossRatio() float64 {
	if s.Counters.Expected == 0 {
		return 0
	}
	return float64(s.Counters.Lost) / float64(s.Counters.Expected)
}

// ErrorRate is Counters.Errors / Counters.Requests (Errors, i.e. 1.0 or
// more, when no request was counted but errors were).
func (s *Summary) ErrorRate() float64 {
	if s.Counters.Requests == 0 {
		if s.Counters.Errors == 0 {
			return 0
		}
		return 1
	}
	return float64(s.Counters.Errors) / float64(s.Counters.Requests)
}
