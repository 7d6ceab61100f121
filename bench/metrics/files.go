package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// File names inside a results directory.
const (
	SummaryFile = "summary.json"
	SeriesFile  = "series.csv"
	HgrmExt     = ".hgrm" // one <op>.hgrm per operation with samples, values in milliseconds
)

// schemaPrefix and Major define the versioning rule: additive changes keep
// the major version, anything else bumps it.
const (
	schemaPrefix = "chatbench.summary/v"
	Major        = 1
)

// SeriesHeader is the header line of series.csv.
const SeriesHeader = "unix_ms,elapsed_s,connected,sent,delivered,errors,delivery_p50_us,delivery_p99_us,delivery_max_us"

// Write writes summary.json, one <op>.hgrm per operation with samples and
// series.csv into dir (created if missing). Each file is written to a
// temporary name first and renamed, so a reader never sees half a file.
func (s *Summary) Write(dir string) error {
	if s.Schema == "" {
		s.Schema = SchemaV1
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics: encode summary: %w", err)
	}
	if err := writeFile(filepath.Join(dir, SummaryFile), append(js, '\n')); err != nil {
		return err
	}
	for _, name := range s.OpNames() {
		h, err := s.Histogram(name)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if _, err := h.PercentilesPrint(&b, 5, 1000); err != nil {
			return fmt.Errorf("metrics: %s%s: %w", name, HgrmExt, err)
		}
		if err := writeFile(filepath.Join(dir, name+HgrmExt), b.Bytes()); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	b.WriteString(SeriesHeader + "\n")
	for _, x := range s.Series {
		fmt.Fprintf(&b, "%d,%.3f,%d,%d,%d,%d,%d,%d,%d\n", x.UnixMs, x.ElapsedS, x.Connected, x.Sent, x.Delivered,
			x.Errors, x.DeliveryP50Us, x.DeliveryP99Us, x.DeliveryMaxUs)
	}
	return writeFile(filepath.Join(dir, SeriesFile), b.Bytes())
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// OpNames lists the operations of s that have samples: the built-in ones in
// Op order, then extra ones sorted by name.
func (s *Summary) OpNames() []string {
	var names, extra []string
	for _, n := range builtinOpNames {
		if _, ok := s.Ops[n]; ok {
			names = append(names, n)
		}
	}
	for n := range s.Ops {
		if !contains(builtinOpNames[:], n) {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	return append(names, extra...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Histogram decodes the histogram of an operation (microseconds).
func (s *Summary) Histogram(op string) (*hdr.Histogram, error) {
	st, ok := s.Ops[op]
	if !ok {
		return nil, fmt.Errorf("metrics: no operation %q in the summary", op)
	}
	h, err := hdr.Decode([]byte(st.Histogram))
	if err != nil {
		return nil, fmt.Errorf("metrics: decode %s histogram: %w", op, err)
	}
	return h, nil
}

// ErrSchema is wrapped by ReadSummary's errors about the schema field.
var ErrSchema = errors.New("unsupported summary schema")

// CheckSchema accepts chatbench.summary/v1 and any later minor additions of
// it; it refuses other schemas and other major versions.
func CheckSchema(schema string) error {
	v, ok := strings.CutPrefix(schema, schemaPrefix)
	if !ok {
		return fmt.Errorf("%w: %q is not a chatbench summary (want %s%d)", ErrSchema, schema, schemaPrefix, Major)
	}
	majorStr, _, _ := strings.Cut(v, ".")
	major, err := strconv.Atoi(majorStr)
	if err != nil {
		return fmt.Errorf("%w: %q has no major version (want %s%d)", ErrSchema, schema, schemaPrefix, Major)
	}
	if major != Major {
		return fmt.Errorf("%w: %q is major version %d; this chatbench reads version %d only (use the chatbench that wrote it)",
			ErrSchema, schema, major, Major)
	}
	return nil
}

// ReadSummary reads summary.json from path (a file, or a results directory).
// It refuses a schema that is not chatbench.summary/v<major> with the major
// version this build knows, with an error that says so. Unknown fields are
// ignored (a newer writer of the same major version only adds fields).
func ReadSummary(path string) (*Summary, error) {
	return readVersioned[Summary](path, SummaryFile, CheckSchema)
}

// readVersioned reads a versioned JSON file from path (the file, or a
// directory holding it under the name file): check judges its schema field
// before the whole file is decoded into a T.
func readVersioned[T any](path, file string, check func(schema string) error) (*T, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, file)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	if err := check(head.Schema); err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	return &v, nil
}

// ReadSeries reads series.csv (the same numbers as Summary.Series, without
// the per-second histograms), for tools that do not parse JSON.
func ReadSeries(path string) ([]Second, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var out []Second
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			if sc.Text() != SeriesHeader {
				return nil, fmt.Errorf("metrics: %s:1: unexpected header %q", path, sc.Text())
			}
			continue
		}
		var x Second
		_, err := fmt.Sscanf(sc.Text(), "%d,%g,%d,%d,%d,%d,%d,%d,%d", &x.UnixMs, &x.ElapsedS, &x.Connected, &x.Sent,
			&x.Delivered, &x.Errors, &x.DeliveryP50Us, &x.DeliveryP99Us, &x.DeliveryMaxUs)
		if err != nil {
			return nil, fmt.Errorf("metrics: %s:%d: %w", path, line, err)
		}
		out = append(out, x)
	}
	return out, sc.Err()
}

// MergeOptions configure MergeWith.
type MergeOptions struct {
	// Force merges parts that do not look like parts of one run (different
	// scenario, seed or topology, or time windows that do not overlap).
	// The result is then a sum of unrelated runs: its rates are not those
	// of any run.
	Force bool
}

// MismatchError is Merge's refusal of parts that are not parts of one
// multi-machine run.
type MismatchError struct {
	Field string // "scenario", "seed", "topology" or "time"
	Part  int    // index of the part that differs from part 0 (or from the others, for "time")
	Got   string // the part's value
	Want  string // part 0's value (for "time": the window the other parts share)
}

func (e *MismatchError) Error() string {
	if e.Field == "time" {
		return fmt.Sprintf("metrics: merge: part %d ran %s, which does not overlap %s: merge combines parts of ONE run "+
			"made at the same time on several machines", e.Part, e.Got, e.Want)
	}
	return fmt.Sprintf("metrics: merge: part %d has %s %s, part 0 has %s %s: merge combines parts of ONE run "+
		"(same scenario, seed and topology) made at the same time on several machines", e.Part, e.Field, e.Got, e.Field, e.Want)
}

func window(a, b time.Time) string {
	return a.UTC().Format("15:04:05.000") + ".." + b.UTC().Format("15:04:05.000")
}

// checkParts returns a *MismatchError when parts cannot be parts of one run.
func checkParts(parts []*Summary) error {
	first := parts[0]
	for i, p := range parts[1:] {
		i++
		switch {
		case p.Scenario != first.Scenario:
			return &MismatchError{Field: "scenario", Part: i, Got: strconv.Quote(p.Scenario), Want: strconv.Quote(first.Scenario)}
		case p.Seed != first.Seed:
			return &MismatchError{Field: "seed", Part: i, Got: strconv.FormatInt(p.Seed, 10), Want: strconv.FormatInt(first.Seed, 10)}
		case p.Topology != first.Topology:
			return &MismatchError{Field: "topology", Part: i, Got: strconv.Quote(p.Topology), Want: strconv.Quote(first.Topology)}
		}
	}
	// Every part must share one instant with all the others: the latest
	// start is before the earliest end.
	lo, hi := first.Start, first.End
	for i, p := range parts[1:] {
		i++
		if !p.Start.Before(hi) || !lo.Before(p.End) {
			return &MismatchError{Field: "time", Part: i, Got: window(p.Start, p.End), Want: window(lo, hi)}
		}
		if p.Start.After(lo) {
			lo = p.Start
		}
		if p.End.Before(hi) {
			hi = p.End
		}
	}
	return nil
}

// Merge combines the summaries of the parts of ONE run made at the same time
// on several machines (each driving its own share of the clients): counters
// and clients add up, histograms merge losslessly, series align by
// wall-clock second, deliveries/s is recomputed over the union of the
// parts' message phases, the driver is bound if any part was; Parts lists
// the inputs. Thresholds and Ceiling are dropped (re-evaluate them on the
// merge). It refuses, with a *MismatchError, parts of different scenarios,
// seeds or topologies, or parts whose time windows do not overlap
// (MergeWith with Force merges them anyway).
func Merge(parts ...*Summary) (*Summary, error) { return MergeWith(MergeOptions{}, parts...) }

// MergeWith is Merge with options.
func MergeWith(o MergeOptions, parts ...*Summary) (*Summary, error) {
	if len(parts) == 0 {
		return nil, errors.New("metrics: merge: no summaries")
	}
	for i, p := range parts {
		if err := CheckSchema(p.Schema); err != nil {
			return nil, fmt.Errorf("metrics: merge part %d: %w", i, err)
		}
	}
	if !o.Force {
		if err := checkParts(parts); err != nil {
			return nil, err
		}
	}
	first := parts[0]
	out := &Summary{
		Schema: SchemaV1, Scenario: first.Scenario, Description: first.Description, Seed: first.Seed,
		Rooms: first.Rooms, Topology: first.Topology, Target: first.Target, Commit: first.Commit,
		GoVersion: first.GoVersion, GOMAXPROCS: first.GOMAXPROCS, Machine: first.Machine,
		Start: first.Start, End: first.End, Phases: append([]PhaseStats(nil), first.Phases...),
		Ops:      map[string]OpStats{},
		Counters: Counters{ErrorsByCode: map[int]int64{}, ErrorsByKind: map[string]int64{}, ErrorsByOp: map[string]int64{}},
	}
	if o.Force {
		// Label what differs instead of showing part 0's value as the merge's.
		for _, p := range parts[1:] {
			if p.Scenario != out.Scenario && !strings.Contains(out.Scenario, "+") {
				out.Scenario += "+" + p.Scenario
			}
			if p.Topology != first.Topology {
				out.Topology = "mixed"
			}
		}
	}
	hists := map[string]*hdr.Histogram{}
	type sec struct {
		s Second
		h *hdr.Histogram
	}
	secs := map[int64]*sec{}
	var reasons []string
	for i, p := range parts {
		if p.Start.Before(out.Start) {
			out.Start = p.Start
		}
		if p.End.After(out.End) {
			out.End = p.End
		}
		out.Clients += p.Clients
		for name := range p.Ops {
			h, err := p.Histogram(name)
			if err != nil {
				return nil, fmt.Errorf("metrics: merge part %d: %w", i, err)
			}
			if hists[name] == nil {
				hists[name] = NewHistogram()
			}
			hists[name].Merge(h)
		}
		k, c := &out.Counters, p.Counters
		k.Sent += c.Sent
		k.Expected += c.Expected
		k.Delivered += c.Delivered
		k.Lost += c.Lost
		k.Duplicated += c.Duplicated
		k.OutOfOrder += c.OutOfOrder
		k.Misrouted += c.Misrouted
		k.Extra += c.Extra
		k.LateSends += c.LateSends
		k.Requests += c.Requests
		k.Errors += c.Errors
		k.Clamped += c.Clamped
		for code, n := range c.ErrorsByCode {
			k.ErrorsByCode[code] += n
		}
		for kind, n := range c.ErrorsByKind {
			k.ErrorsByKind[kind] += n
		}
		for op, n := range c.ErrorsByOp {
			k.ErrorsByOp[op] += n
		}
		d := &out.Driver
		d.CPUPercent = max(d.CPUPercent, p.Driver.CPUPercent)
		d.GCPauseTotalUs = max(d.GCPauseTotalUs, p.Driver.GCPauseTotalUs)
		d.GCPauseMaxUs = max(d.GCPauseMaxUs, p.Driver.GCPauseMaxUs)
		d.SchedLagP99Us = max(d.SchedLagP99Us, p.Driver.SchedLagP99Us)
		d.SchedLagMaxUs = max(d.SchedLagMaxUs, p.Driver.SchedLagMaxUs)
		d.MemoryPerClientB = max(d.MemoryPerClientB, p.Driver.MemoryPerClientB)
		d.CPUSeconds += p.Driver.CPUSeconds // the parts' driver processes together
		if p.Driver.DriverBound {
			d.DriverBound = true
			reasons = append(reasons, fmt.Sprintf("%s: %s", partName(i, p), p.Driver.DriverBoundWhy))
		}
		for _, x := range p.Series {
			key := (x.UnixMs + 500) / 1000
			m := secs[key]
			if m == nil {
				m = &sec{s: Second{UnixMs: key * 1000}}
				secs[key] = m
			}
			m.s.Connected += x.Connected
			m.s.Sent += x.Sent
			m.s.Delivered += x.Delivered
			m.s.Errors += x.Errors
			m.s.DeliveryP50Us = max(m.s.DeliveryP50Us, x.DeliveryP50Us)
			m.s.DeliveryP99Us = max(m.s.DeliveryP99Us, x.DeliveryP99Us)
			m.s.DeliveryMaxUs = max(m.s.DeliveryMaxUs, x.DeliveryMaxUs)
			if x.Histogram != "" {
				h, err := hdr.Decode([]byte(x.Histogram))
				if err != nil {
					return nil, fmt.Errorf("metrics: merge part %d: second %d: %w", i, x.UnixMs, err)
				}
				if m.h == nil {
					m.h = newSecondHistogram()
				}
				m.h.Merge(h)
			}
		}
		if i > 0 {
			for j := range out.Phases {
				for _, q := range p.Phases {
					if q.Name == out.Phases[j].Name {
						op := &out.Phases[j]
						op.Sent += q.Sent
						op.Delivered += q.Delivered
						if q.Start.Before(op.Start) {
							op.Start = q.Start
						}
						if q.End.After(op.End) {
							op.End = q.End
						}
						// The parts' active windows are not stored, only their
						// lengths: the longest is the best (shortest) bound of
						// their union.
						op.ActiveS = max(op.ActiveS, q.ActiveS)
					}
				}
			}
		}
		out.Parts = append(out.Parts, Part{Machine: p.Machine, Start: p.Start, End: p.End, Delivered: p.Counters.Delivered,
			DeliveriesPerSec: p.DeliveriesPerSec, DriverBound: p.Driver.DriverBound})
	}
	out.Driver.DriverBoundWhy = strings.Join(reasons, "; ")
	out.Fine = mergeFine(out.Start, parts)
	out.DurationSeconds = out.End.Sub(out.Start).Seconds()
	for name, h := range hists {
		out.Ops[name] = StatsOf(h)
	}
	keys := make([]int64, 0, len(secs))
	for k := range secs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		m := secs[k]
		if m.h != nil && m.h.TotalCount() > 0 {
			m.s.DeliveryP50Us = m.h.ValueAtQuantile(50)
			m.s.DeliveryP99Us = m.h.ValueAtQuantile(99)
			m.s.DeliveryMaxUs = m.h.Max()
			if enc, err := m.h.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
				m.s.Histogram = string(enc)
			}
		}
		m.s.ElapsedS = time.UnixMilli(m.s.UnixMs).Sub(out.Start).Seconds()
		out.PeakDeliveriesPerSec = max(out.PeakDeliveriesPerSec, float64(m.s.Delivered))
		out.Series = append(out.Series, m.s)
	}
	for j := range out.Phases {
		p := &out.Phases[j]
		p.DeliveriesPerSec = 0
		if d := p.End.Sub(p.Start).Seconds(); d > 0 {
			p.DeliveriesPerSec = float64(p.Delivered) / d
		}
		p.ActiveDeliveriesPerSec = 0
		if p.ActiveS > 0 {
			p.ActiveDeliveriesPerSec = float64(p.Delivered) / p.ActiveS
		}
	}
	// Throughput over the union window of the message phases (each phase
	// spans all parts' phases of that name), as for one run. It is bounded
	// by the best merged second: a window's average cannot beat its best
	// second except through partial seconds at the edges of unaligned
	// ticks, which are not a throughput.
	out.DeliveriesPerSec = deliveriesPerSec(out)
	if out.PeakDeliveriesPerSec > 0 {
		out.DeliveriesPerSec = min(out.DeliveriesPerSec, out.PeakDeliveriesPerSec)
	}
	return out, nil
}

func partName(i int, p *Summary) string {
	if p.Machine.Hostname != "" {
		return fmt.Sprintf("part %d (%s)", i, p.Machine.Hostname)
	}
	return fmt.Sprintf("part %d", i)
}

// mergeFine adds the parts' 100 ms buckets, each moved to the bucket of the
// merge's start it falls in (a part that started 230 ms after the merge's
// start adds its bucket i to bucket i+2): exact to a bucket when the parts
// share a clock. Nil when a part has no fine series or another interval.
func mergeFine(start time.Time, parts []*Summary) *FineSeries {
	var out *FineSeries
	for _, p := range parts {
		f := p.Fine
		if f == nil || f.IntervalMs <= 0 || (out != nil && f.IntervalMs != out.IntervalMs) {
			return nil
		}
		if out == nil {
			out = &FineSeries{IntervalMs: f.IntervalMs}
		}
		iv := time.Duration(f.IntervalMs) * time.Millisecond
		shift := int((p.Start.Sub(start) + iv/2) / iv)
		if shift < 0 || shift+len(f.Sent) > int(FineMax/iv)+1 || len(f.Delivered) != len(f.Sent) {
			return nil
		}
		for len(out.Sent) < shift+len(f.Sent) {
			out.Sent = append(out.Sent, 0)
			out.Delivered = append(out.Delivered, 0)
		}
		for i := range f.Sent {
			out.Sent[shift+i] += f.Sent[i]
			out.Delivered[shift+i] += f.Delivered[i]
		}
	}
	return out
}
