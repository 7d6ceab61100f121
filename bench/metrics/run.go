package metrics

import (
	"runtime"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// phaseMark is a phase boundary with the cumulative totals at that moment.
type phaseMark struct {
	name, kind string
	start      time.Time
	at         totals
}

type totals struct{ sent, delivered int64 }

// snapshot reads the cumulative sent and delivered totals of every recorder.
func (r *Run) snapshot() totals {
	var t totals
	for _, c := range r.recorders() {
		c.mu.Lock()
		t.sent += c.counters[Sent]
		if h := c.ops[OpDelivery]; h != nil {
			t.delivered += h.TotalCount()
		}
		c.mu.Unlock()
	}
	return t
}

func (r *Run) recorders() []*Recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recs[:len(r.recs):len(r.recs)]
}

// BeginPhase marks the start of a phase at t (and the end of the previous
// one). Call it from the driver's control goroutine.
func (r *Run) BeginPhase(name, kind string, t time.Time) {
	at := r.snapshot()
	r.closePhase(t, at)
	r.open = &phaseMark{name: name, kind: kind, start: t, at: at}
}

func (r *Run) closePhase(t time.Time, at totals) {
	if r.open == nil {
		return
	}
	p := PhaseStats{Name: r.open.name, Kind: r.open.kind, Start: r.open.start, End: t,
		Sent: at.sent - r.open.at.sent, Delivered: at.delivered - r.open.at.delivered}
	if d := t.Sub(p.Start).Seconds(); d > 0 {
		p.DeliveriesPerSec = float64(p.Delivered) / d
	}
	r.phases = append(r.phases, p)
	r.open = nil
}

// Tick closes the current second at now: it collects every Recorder's
// per-second counts and delivery histogram into a Second, appends it to the
// series and returns it (for the live progress line). Call it about once a
// second from one goroutine (the one that calls Finish).
func (r *Run) Tick(now time.Time) Second {
	if r.agg == nil {
		r.agg = newSecondHistogram()
	}
	agg := r.agg
	agg.Reset()
	s := Second{UnixMs: now.UnixMilli(), ElapsedS: now.Sub(r.start).Seconds()}
	for _, c := range r.recorders() {
		c.mu.Lock()
		h := c.second
		c.second, c.spare = c.spare, h // spare is reset and only touched here
		s.Sent += c.secSent
		s.Delivered += c.secDeliv
		s.Errors += c.secErr
		s.Connected += c.counters[Connected]
		c.secSent, c.secDeliv, c.secErr = 0, 0, 0
		c.mu.Unlock()
		agg.Merge(h)
		h.Reset()
	}
	if agg.TotalCount() > 0 {
		s.DeliveryP50Us = agg.ValueAtQuantile(50)
		s.DeliveryP99Us = agg.ValueAtQuantile(99)
		s.DeliveryMaxUs = agg.Max()
		if enc, err := agg.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
			s.Histogram = string(enc)
		}
	}
	if iv := now.Sub(r.last).Seconds(); iv > 0 {
		r.peak = max(r.peak, float64(s.Delivered)/max(iv, 1))
	}
	r.last = now
	r.series = append(r.series, s)
	return s
}

// FineInterval is the bucket of Summary.Fine, and FineMax the longest run
// time it covers (later samples are dropped: the per-second series covers
// long runs well enough).
const (
	FineInterval = 100 * time.Millisecond
	FineMax      = 10 * time.Minute
)

// Sample adds the sends and deliveries since the previous sample to the
// FineInterval bucket that now falls in. Call it about every FineInterval
// from the goroutine that calls Tick (Finish samples once more at the end).
func (r *Run) Sample(now time.Time) {
	el := now.Sub(r.start)
	if el < 0 || el > FineMax {
		return
	}
	at := r.snapshot()
	k := int((el + FineInterval - 1) / FineInterval) // the bucket that ends at or after now
	if k > 0 {
		k--
	}
	f := &r.fine.out
	for len(f.Sent) <= k {
		f.Sent = append(f.Sent, 0)
		f.Delivered = append(f.Delivered, 0)
	}
	f.Sent[k] += at.sent - r.fine.prev.sent
	f.Delivered[k] += at.delivered - r.fine.prev.delivered
	r.fine.prev = at
}

// Finish closes the last phase and second at end and merges every Recorder
// into a Summary with the metrics filled in (Ops, Counters, Series, Phases,
// deliveries/s, Start, End, Schema, GoVersion, GOMAXPROCS, Machine). The
// caller fills in the rest (scenario, seed, clients, rooms, topology,
// target, commit, driver check, thresholds, ceiling) and calls Write.
// Recording after Finish is not reflected in the Summary.
func (r *Run) Finish(end time.Time) *Summary {
	if end.After(r.last) {
		r.Tick(end)
	}
	r.closePhase(end, r.snapshot())
	r.Sample(end)
	var fine *FineSeries
	if len(r.fine.out.Sent) > 0 {
		fine = &FineSeries{IntervalMs: FineInterval.Milliseconds(), Sent: r.fine.out.Sent, Delivered: r.fine.out.Delivered}
	}
	s := &Summary{
		Schema:          SchemaV1,
		GoVersion:       runtime.Version(),
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
		Machine:         DetectMachine(),
		Start:           r.start,
		End:             end,
		DurationSeconds: end.Sub(r.start).Seconds(),
		Phases:          r.phases,
		Ops:             map[string]OpStats{},
		Series:          r.series,
		Fine:            fine,
		Counters:        Counters{ErrorsByCode: map[int]int64{}, ErrorsByKind: map[string]int64{}, ErrorsByOp: map[string]int64{}},
	}
	merged := make([]*hdr.Histogram, len(r.ops))
	for _, c := range r.recorders() {
		c.mu.Lock()
		for i, h := range c.ops {
			if h == nil {
				continue
			}
			if merged[i] == nil {
				merged[i] = NewHistogram()
			}
			merged[i].Merge(h)
		}
		k := &s.Counters
		k.Sent += c.counters[Sent]
		k.Expected += c.counters[Expected]
		k.Lost += c.counters[Lost]
		k.Duplicated += c.counters[Duplicated]
		k.OutOfOrder += c.counters[OutOfOrder]
		k.Misrouted += c.counters[Misrouted]
		k.Extra += c.counters[Extra]
		k.LateSends += c.counters[LateSends]
		k.Requests += c.counters[Requests]
		k.Errors += c.errors
		k.Clamped += c.clamped
		for code, n := range c.byCode {
			k.ErrorsByCode[code] += n
		}
		for kind, n := range c.byKind {
			k.ErrorsByKind[kind] += n
		}
		for op, n := range c.byOp {
			if n > 0 {
				k.ErrorsByOp[r.ops[op]] += n
			}
		}
		c.mu.Unlock()
	}
	for i, h := range merged {
		if h != nil && h.TotalCount() > 0 {
			s.Ops[r.ops[i]] = StatsOf(h)
		}
	}
	s.Counters.Delivered = s.Ops[builtinOpNames[OpDelivery]].Count
	s.DeliveriesPerSec = deliveriesPerSec(s)
	s.PeakDeliveriesPerSec = r.peak
	return s
}

// deliveriesPerSec is delivered/s over the message phases (chat, storm,
// hop) if any were marked, else over the whole run.
func deliveriesPerSec(s *Summary) float64 {
	var n int64
	var d float64
	for _, p := range s.Phases {
		if p.Kind == "chat" || p.Kind == "storm" || p.Kind == "hop" {
			n += p.Delivered
			d += p.End.Sub(p.Start).Seconds()
		}
	}
	if d == 0 {
		n, d = s.Counters.Delivered, s.DurationSeconds
	}
	if d <= 0 {
		return 0
	}
	return float64(n) / d
}

// StatsOf summarizes a histogram (microseconds) as OpStats, with its
// encoding.
func StatsOf(h *hdr.Histogram) OpStats {
	st := OpStats{Count: h.TotalCount()}
	if st.Count > 0 {
		st.MinUs = h.Min()
		st.MeanUs = h.Mean()
		st.P50Us = h.ValueAtQuantile(50)
		st.P90Us = h.ValueAtQuantile(90)
		st.P99Us = h.ValueAtQuantile(99)
		st.P999Us = h.ValueAtQuantile(99.9)
		st.MaxUs = h.Max()
	}
	if enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
		st.Histogram = string(enc)
	}
	return st
}
