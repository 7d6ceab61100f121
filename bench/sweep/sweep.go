// Package sweep runs one scenario over many server configurations: the
// split topology at every connectors x shards size, the single-process
// baseline, and optionally stock pomelo at the same sizes, in interleaved
// rounds so that machine drift spreads evenly over the configurations. It
// writes a sweep directory: every run's results directory and sweep.json
// (metrics.Sweep, docs/results.md). Rendering is reports' job.
//
// Each run is a `chatbench bench` child process of the given binary (the
// same executable): a run gets a fresh process, its own file limit and
// server processes that die with it, and a run that crashes or hangs
// cannot take the sweep down with it; the sweep reads only what the run
// wrote, exactly as a user would.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/chatbench/chatbench/bench/calibrate"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/internal/proc"
)

// Options configure a sweep. Zero values mean the documented defaults.
type Options struct {
	Binary     string   // the chatbench executable whose bench runs each configuration (required)
	Scenario   string   // scenario name or path (required)
	Connectors []int    // split (and pomelo) connector counts (required, each >= 1)
	Shards     []int    // chat shard counts (required, each >= 1)
	NoSingle   bool     // leave out the single-process baseline
	Pomelo     bool     // also run stock pomelo at every size
	Repeat     int      // rounds (default 1)
	Out        string   // results root: the sweep writes <Out>/<Kind>-<time>/ (default "results")
	Kind       string   // metrics.SweepKindSweep (default) or metrics.SweepKindCompare
	BenchArgs  []string // more `chatbench bench` flags for every run (--duration 5s, --clients 1000, ...)
	Command    string   // the command line, recorded in sweep.json
	Commit     string
	RunTimeout time.Duration    // longest a run may take before it is stopped and marked failed (default 10m)
	Progress   io.Writer        // one line per run (nil: quiet)
	Now        func() time.Time // clock (default time.Now)
}

// Config is one server configuration.
type Config struct {
	Topology   string
	Connectors int
	Shards     int
}

// Name is the configuration's name in sweep.json and in legends.
func (c Config) Name() string { return metrics.ConfigName(c.Topology, c.Connectors, c.Shards) }

// Args are the bench flags of the configuration.
func (c Config) Args() []string {
	if c.Topology == "single" {
		return []string{"--topology", "single"}
	}
	return []string{"--topology", c.Topology, "--connectors", strconv.Itoa(c.Connectors), "--shards", strconv.Itoa(c.Shards)}
}

// Configs lists the configurations in the order a round runs them: the
// single baseline, then split by shards and connectors, then pomelo.
func (o *Options) Configs() []Config {
	var out []Config
	if !o.NoSingle {
		out = append(out, Config{Topology: "single", Connectors: 1})
	}
	tops := []string{"split"}
	if o.Pomelo {
		tops = append(tops, "pomelo")
	}
	for _, t := range tops {
		for _, s := range o.Shards {
			for _, c := range o.Connectors {
				out = append(out, Config{Topology: t, Connectors: c, Shards: s})
			}
		}
	}
	return out
}

// UsageError is a bad option, named by its command-line flag.
type UsageError struct {
	Flag string // "--connectors"
	Msg  string
}

func (e *UsageError) Error() string { return e.Flag + " " + e.Msg }

// ParseCounts parses a comma-separated list of counts (1,2,4) given as
// flag: an empty list, a count below 1, a non-number or a count listed
// twice is a UsageError naming the flag.
func ParseCounts(flag, list string) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, &UsageError{flag, `"": empty list; give counts like 1,2,4`}
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		switch {
		case err != nil:
			return nil, &UsageError{flag, fmt.Sprintf("%q: %q is not a count; give counts like 1,2,4", list, f)}
		case n < 1:
			return nil, &UsageError{flag, fmt.Sprintf("%q: a count of %d runs nothing; every count must be >= 1", list, n)}
		case slices.Contains(out, n):
			return nil, &UsageError{flag, fmt.Sprintf("%q: %d is listed twice", list, n)}
		}
		out = append(out, n)
	}
	return out, nil
}

// Per-process costs behind Check: each server process costs its parent
// (the split launcher) pipes and a bus connection, filesPerChild in all,
// and the machine threadsPerProcess threads (RLIMIT_NPROC counts threads).
const (
	filesPerChild     = 8
	threadsPerProcess = 16
)

// Check validates the options: counts, repeat, and that the largest
// configuration fits this process's limits, which every run inherits.
func (o *Options) Check(clients int) error {
	switch {
	case o.Binary == "":
		return errors.New("sweep: no chatbench binary")
	case o.Scenario == "":
		return &UsageError{"--scenario", "is required: a shipped scenario name or a YAML path"}
	case len(o.Connectors) == 0:
		return &UsageError{"--connectors", "is empty; give counts like 1,2,4"}
	case len(o.Shards) == 0:
		return &UsageError{"--shards", "is empty; give counts like 1,2,4"}
	case o.Repeat < 0:
		return &UsageError{"--repeat", fmt.Sprintf("%d: must be >= 1", o.Repeat)}
	}
	for _, c := range o.Connectors {
		if c < 1 {
			return &UsageError{"--connectors", fmt.Sprintf("%d: every count must be >= 1", c)}
		}
	}
	for _, s := range o.Shards {
		if s < 1 {
			return &UsageError{"--shards", fmt.Sprintf("%d: every count must be >= 1", s)}
		}
	}
	var files, procs syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &files) != nil || syscall.Getrlimit(rlimitNPROC, &procs) != nil {
		return nil
	}
	return limitError(o, clients, files.Max, procs.Cur)
}

// rlimitNPROC is RLIMIT_NPROC on Linux (the syscall package does not name it).
const rlimitNPROC = 6

// limitError checks the largest configuration against the open-file limit
// (the driver, and a single server, hold a socket per client; the split
// launcher holds filesPerChild per server process) and the process limit
// (threads of every server process).
func limitError(o *Options, clients int, fileLimit, procLimit uint64) error {
	maxC, maxS := slices.Max(o.Connectors), slices.Max(o.Shards)
	procs := 2 + maxC + maxS // launcher, gate, connectors, shards
	if need := uint64(clients + 256); need > fileLimit {
		return &UsageError{"--clients", fmt.Sprintf("%d: the driver needs about %d open files but the limit is %d: lower --clients or raise the hard limit (ulimit -Hn)",
			clients, need, fileLimit)}
	}
	if need := uint64(filesPerChild*procs + 256); need > fileLimit {
		return &UsageError{"--connectors", fmt.Sprintf("%d with --shards %d: %d server processes need about %d open files in their launcher, but the limit is %d: "+
			"lower --connectors or --shards, or raise the hard limit (ulimit -Hn)", maxC, maxS, procs, need, fileLimit)}
	}
	if need := uint64(threadsPerProcess * (procs + 1)); procLimit > 0 && need > procLimit {
		return &UsageError{"--connectors", fmt.Sprintf("%d with --shards %d: %d server processes need about %d threads, but the process limit is %d: "+
			"lower --connectors or --shards, or raise ulimit -u", maxC, maxS, procs, need, procLimit)}
	}
	return nil
}

// Run runs every configuration Repeat times, round by round, and writes
// sweep.json into dir after every run (a sweep stopped half way keeps what
// ran). Failed runs are recorded with their error and the sweep goes on;
// Run returns the sweep and an error only when it could not go on (the
// directory could not be written, ctx ended).
func Run(ctx context.Context, o Options, dir string) (*metrics.Sweep, error) {
	if o.Repeat == 0 {
		o.Repeat = 1
	}
	if o.Kind == "" {
		o.Kind = metrics.SweepKindSweep
	}
	if o.RunTimeout == 0 {
		o.RunTimeout = 10 * time.Minute
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	configs := o.Configs()
	sw := &metrics.Sweep{Schema: metrics.SweepSchemaV1, Kind: o.Kind, Scenario: o.Scenario, Command: o.Command, BenchArgs: o.BenchArgs,
		Commit: o.Commit, Machine: metrics.DetectMachine(), Start: now(), Repeat: o.Repeat, Connectors: o.Connectors, Shards: o.Shards}
	for _, c := range configs {
		if !slices.Contains(sw.Topologies, c.Topology) {
			sw.Topologies = append(sw.Topologies, c.Topology)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	total := len(configs) * o.Repeat
	var ctxErr error
	for round := 1; round <= o.Repeat && ctxErr == nil; round++ {
		for _, c := range configs {
			if ctxErr = ctx.Err(); ctxErr != nil {
				break
			}
			r := runOne(ctx, o, dir, c, round, now)
			sw.Runs = append(sw.Runs, r)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "chatbench sweep: [%d/%d] %s\n", len(sw.Runs), total, runLine(r))
			}
			sw.End = now()
			sw.Configs = Aggregate(dir, configs, sw.Runs)
			if err := sw.Write(dir); err != nil {
				return sw, err
			}
		}
	}
	return sw, ctxErr
}

func runLine(r metrics.SweepRun) string {
	head := fmt.Sprintf("%s round %d (%.0fs): ", r.Config, r.Round, r.End.Sub(r.Start).Seconds())
	if !r.OK {
		return head + "FAILED: " + r.Error
	}
	s := fmt.Sprintf("%s deliveries/s, p99 %.1fms, lost %d, server CPU %.1fs, driver CPU %.1fs", strconv.FormatFloat(r.DeliveriesPerSec, 'f', 0, 64),
		float64(r.P99Us)/1000, r.Lost, r.ServerCPUSeconds, r.DriverCPUSeconds)
	if len(r.ThresholdsFailed) > 0 {
		s += "; thresholds failed: " + strings.Join(r.ThresholdsFailed, ", ")
	}
	if r.DriverBound {
		s += "; DRIVER-BOUND"
	}
	return head + s
}

// runOne runs `chatbench bench` for one configuration; its output goes to
// bench.log in its run root, <dir>/runs/<config>-r<round>/.
func runOne(ctx context.Context, o Options, dir string, c Config, round int, now func() time.Time) (r metrics.SweepRun) {
	r = metrics.SweepRun{Config: c.Name(), Topology: c.Topology, Connectors: c.Connectors, Shards: c.Shards, Round: round, Start: now()}
	defer func() { r.End = now() }()
	root := filepath.Join(dir, "runs", fmt.Sprintf("%s-r%d", c.Name(), round))
	if err := os.MkdirAll(root, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	logf, err := os.Create(filepath.Join(root, "bench.log"))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer logf.Close()
	args := append([]string{"bench", "--scenario", o.Scenario}, c.Args()...)
	args = append(args, "--out", root, "--quiet")
	args = append(args, o.BenchArgs...)
	rctx, cancel := context.WithTimeout(ctx, o.RunTimeout)
	defer cancel()
	env := os.Environ()
	if os.Getenv("CHATBENCH_CALIBRATION_DIR") == "" {
		// one calibration cache for every run, where plain benches keep theirs
		env = append(env, "CHATBENCH_CALIBRATION_DIR="+calibrate.DefaultDir(o.Out))
	}
	fmt.Fprintf(logf, "$ %s %s\n", o.Binary, strings.Join(args, " "))
	// at the timeout SIGTERM: bench stops the server it started
	p, runErr := proc.Run(rctx, proc.Options{
		Role: "bench", Path: o.Binary, Args: args, Env: env,
		Log: logf, NoPrefix: true, TailLines: 3,
		StopTimeout: 30 * time.Second, ParentDeathSignal: syscall.SIGTERM,
	})
	if p == nil {
		r.Error = runErr.Error()
		return r
	}
	tail := lastLines(p.Tail())
	r.ExitCode = p.ExitCode()
	if runDir, err := findRunDir(root); err == nil {
		if rel, err := filepath.Rel(dir, runDir); err == nil {
			r.Dir = filepath.ToSlash(rel)
		}
	}
	switch {
	case rctx.Err() == context.DeadlineExceeded:
		r.Error = fmt.Sprintf("stopped after %v (--run-timeout): %s", o.RunTimeout, tail.String())
		return r
	case ctx.Err() != nil:
		r.Error = "interrupted"
		return r
	case runErr != nil && r.ExitCode != 99 && r.ExitCode != 98:
		// 99: a threshold failed, 98: driver-bound with --fail-on-driver-bound;
		// both ran and their numbers are reported as such
		r.Error = fmt.Sprintf("chatbench bench exited %d: %s (log: %s)", r.ExitCode, tail.String(), filepath.ToSlash(filepath.Join("runs", filepath.Base(root), "bench.log")))
		return r
	case r.Dir == "":
		r.Error = "chatbench bench wrote no results directory under " + root
		return r
	}
	s, err := metrics.ReadSummary(filepath.Join(dir, r.Dir))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	fillRun(&r, s)
	r.OK = true
	return r
}

func fillRun(r *metrics.SweepRun, s *metrics.Summary) {
	d := s.Ops["delivery"]
	r.DeliveriesPerSec, r.Rate = Throughput(s)
	if f := s.Fine; f != nil && f.IntervalMs > 0 {
		for _, n := range f.Delivered {
			r.PeakFineDeliveriesPerS = max(r.PeakFineDeliveriesPerS, float64(n)*1000/float64(f.IntervalMs))
		}
	}
	r.P50Us, r.P99Us, r.P999Us = d.P50Us, d.P99Us, d.P999Us
	r.Delivered, r.Lost = s.Counters.Delivered, s.Counters.Lost
	r.DriverCPUSeconds = s.Driver.CPUSeconds
	if r.DriverCPUSeconds == 0 { // a summary from before cpu_s
		r.DriverCPUSeconds = s.Driver.CPUPercent / 100 * s.DurationSeconds
	}
	r.Servers = s.Servers
	r.ServerCPUSeconds = s.ServerCPUSeconds()
	if r.ServerCPUSeconds > 0 {
		r.DeliveriesPerServerCPUS = float64(r.Delivered) / r.ServerCPUSeconds
	}
	for _, t := range s.Thresholds {
		if !t.Pass {
			r.ThresholdsFailed = append(r.ThresholdsFailed, t.Name)
		}
	}
	r.DriverBound = s.Driver.DriverBound
}

// Throughput is what a sweep compares: for a run with storm phases their
// burst rate (deliveries over the phases' active windows: what the server
// sustained while it had work; a storm's offered load is the same in every
// configuration, so its deliveries/s over the whole phase would be too),
// else the summary's deliveries_per_s. The second result says which
// ("burst" or "phases").
func Throughput(s *metrics.Summary) (float64, string) {
	var n int64
	var active float64
	for _, p := range s.Phases {
		if p.Kind == "storm" && p.ActiveS > 0 {
			n += p.Delivered
			active += p.ActiveS
		}
	}
	if active > 0 {
		return float64(n) / active, metrics.RateBurst
	}
	return s.DeliveriesPerSec, metrics.RatePhases
}

// findRunDir is the results directory bench wrote under root: the one
// subdirectory holding a summary.json.
func findRunDir(root string) (string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(p, metrics.SummaryFile)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no results directory in %s", root)
}

// Aggregate computes each configuration's numbers over its successful
// runs: deliveries/s median, min and max; percentiles of the merged
// delivery histograms (read from the runs' summaries under dir); losses
// and deliveries summed; CPU seconds per run averaged; deliveries per
// server CPU second.
func Aggregate(dir string, configs []Config, runs []metrics.SweepRun) []metrics.SweepConfig {
	out := make([]metrics.SweepConfig, 0, len(configs))
	for _, c := range configs {
		sc := metrics.SweepConfig{Name: c.Name(), Topology: c.Topology, Connectors: c.Connectors, Shards: c.Shards}
		var rates, peaks []float64
		var serverCPU, driverCPU float64
		var deliveredWithCPU int64
		merged := metrics.NewHistogram()
		for _, r := range runs {
			if r.Config != sc.Name {
				continue
			}
			sc.Runs++
			if !r.OK {
				sc.Failed++
				continue
			}
			rates = append(rates, r.DeliveriesPerSec)
			if r.PeakFineDeliveriesPerS > 0 {
				peaks = append(peaks, r.PeakFineDeliveriesPerS)
			}
			sc.Lost += r.Lost
			sc.Delivered += r.Delivered
			serverCPU += r.ServerCPUSeconds
			driverCPU += r.DriverCPUSeconds
			if r.ServerCPUSeconds > 0 {
				deliveredWithCPU += r.Delivered
			}
			if len(r.ThresholdsFailed) > 0 {
				sc.ThresholdsFailed++
			}
			if r.DriverBound {
				sc.DriverBound++
			}
			if s, err := metrics.ReadSummary(filepath.Join(dir, r.Dir)); err == nil {
				if h, err := s.Histogram("delivery"); err == nil {
					merged.Merge(h)
				}
			}
		}
		if n := len(rates); n > 0 {
			sort.Float64s(rates)
			sc.DeliveriesPerSec = median(rates)
			sc.DeliveriesPerSecMin, sc.DeliveriesPerSecMax = rates[0], rates[n-1]
			sc.ServerCPUSeconds, sc.DriverCPUSeconds = serverCPU/float64(n), driverCPU/float64(n)
			if serverCPU > 0 {
				sc.DeliveriesPerServerCPUS = float64(deliveredWithCPU) / serverCPU
			}
		}
		if len(peaks) > 0 {
			sort.Float64s(peaks)
			sc.PeakFineDeliveriesPerS = median(peaks)
		}
		if merged.TotalCount() > 0 {
			sc.P50Us, sc.P99Us, sc.P999Us = merged.ValueAtQuantile(50), merged.ValueAtQuantile(99), merged.ValueAtQuantile(99.9)
			if enc, err := merged.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
				sc.Histogram = string(enc)
			}
		}
		out = append(out, sc)
	}
	return out
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// lastLines are a run's last output lines, for its error.
type lastLines []string

func (l lastLines) String() string {
	if len(l) == 0 {
		return "(no output)"
	}
	return strings.Join(l, " | ")
}
