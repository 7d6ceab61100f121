package metrics

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds, 1 us .. 1 h.
const (
	LowestUs     = 1
	HighestUs    = int64(time.Hour / time.Microsecond)
	Digits       = 3 // significant digits of operation histograms
	SecondDigits = 2 // significant digits of per-second delivery histograms
)

// NewHistogram returns an empty operation histogram of the standard geometry.
func NewHistogram() *hdr.Histogram { return hdr.New(LowestUs, HighestUs, Digits) }

func newSecondHistogram() *hdr.Histogram { return hdr.New(LowestUs, HighestUs, SecondDigits) }

// Op identifies an operation whose latency is recorded. The built-in ones
// are constants; Options.ExtraOps adds more, looked up with Run.Op.
type Op uint8

// The built-in operations, with their names in summary.json.
const (
	OpConnect       Op = iota // "connect": websocket dial to the connector (or gate)
	OpHandshake               // "handshake": pomelo handshake + ack
	OpQueryEntry              // "queryEntry": gate.gateHandler.queryEntry round trip
	OpEnter                   // "enter": connector.entryHandler.enter round trip
	OpSendAck                 // "send_ack": chat.chatHandler.send request to response, from the scheduled time
	OpDelivery                // "delivery": scheduled send time to receipt, per recipient
	OpLastRecipient           // "last_recipient": scheduled send time to the last recipient's receipt, per broadcast
	OpLeave                   // "leave": close to onLeave seen by the room (or close completion)
	OpSwitch                  // "switch": connector.entryHandler.switchRoom round trip
	numBuiltinOps
)

var builtinOpNames = [numBuiltinOps]string{
	"connect", "handshake", "queryEntry", "enter", "send_ack", "delivery", "last_recipient", "leave", "switch",
}

// OpNames lists the built-in operation names in Op order.
func OpNames() []string { return builtinOpNames[:] }

// Counter identifies a counter a Recorder adds to.
type Counter uint8

// The counters (see Counters for their meaning). Connected is a gauge: add
// +1 on connect and -1 on disconnect; its sum over recorders is the number
// of connected clients.
const (
	Sent Counter = iota
	Expected
	Lost
	Duplicated
	OutOfOrder
	LateSends
	Requests
	Connected
	Misrouted // onChat deliveries to a client that was not an expected recipient
	Extra     // deliveries to members in transit during a room switch (neither expected nor lost)
	numCounters
)

// Error kinds (Recorder.Error); any string works, these are the usual ones.
const (
	KindResponse = "response" // an error response with a pomelo code
	KindTimeout  = "timeout"  // no response in time
	KindClosed   = "closed"   // socket closed under a request
	KindKicked   = "kicked"   // server KICK
	KindDial     = "dial"     // connect failed
	KindProtocol = "protocol" // undecodable package or message
	KindGhost    = "ghost"    // membership did not settle (user list wrong)
)

// Options configure a Run.
type Options struct {
	// ExtraOps names operations beyond the built-in ones; Run.Op returns
	// their Op.
	ExtraOps []string
	// Start is the start of the run (default: time.Now() in NewRun).
	Start time.Time
}

// Run collects the Recorders of one run, and makes the series and the
// Summary out of them.
type Run struct {
	ops   []string
	start time.Time

	mu     sync.Mutex // guards recs (NewRecorder may run concurrently with Tick)
	recs   []*Recorder
	series []Second
	phases []PhaseStats
	open   *phaseMark
	last   time.Time      // last tick
	agg    *hdr.Histogram // reused by Tick
	peak   float64        // best deliveries/s of a tick
	fine   fineState      // Sample's buckets
}

// fineState is the state of Run.Sample.
type fineState struct {
	prev totals
	out  FineSeries
}

// NewRun starts a run.
func NewRun(o Options) *Run {
	ops := append(append([]string(nil), builtinOpNames[:]...), o.ExtraOps...)
	start := o.Start
	if start.IsZero() {
		start = time.Now()
	}
	return &Run{ops: ops, start: start, last: start}
}

// Op returns the Op of a built-in or extra operation name.
func (r *Run) Op(name string) (Op, bool) {
	for i, n := range r.ops {
		if n == name {
			return Op(i), true
		}
	}
	return 0, false
}

// Recorder records latencies and counts for a shard of the driver's clients.
// See the package doc for the concurrency contract.
type Recorder struct {
	mu       sync.Mutex
	ops      []*hdr.Histogram // lazily made, indexed by Op
	second   *hdr.Histogram   // deliveries of the current second
	spare    *hdr.Histogram   // swapped in by Tick
	counters [numCounters]int64
	errors   int64
	byCode   map[int]int64
	byKind   map[string]int64
	byOp     []int64 // errors by Op
	clamped  int64
	secSent  int64 // current second
	secDeliv int64
	secErr   int64
}

// NewRecorder adds a Recorder to the run.
func (r *Run) NewRecorder() *Recorder {
	rec := &Recorder{
		ops:    make([]*hdr.Histogram, len(r.ops)),
		second: newSecondHistogram(),
		spare:  newSecondHistogram(),
		byCode: map[int]int64{},
		byKind: map[string]int64{},
		byOp:   make([]int64, len(r.ops)),
	}
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	return rec
}

func clampUs(d time.Duration) (int64, bool) {
	us := int64(d / time.Microsecond)
	if us < LowestUs {
		return LowestUs, us < 0
	}
	if us > HighestUs {
		return HighestUs, true
	}
	return us, false
}

// Record records one latency of op. Recording OpDelivery also counts a
// delivery in the current second. Negative latencies and latencies above an
// hour are clamped (and counted in Counters.Clamped).
func (c *Recorder) Record(op Op, d time.Duration) {
	us, clamped := clampUs(d)
	c.mu.Lock()
	h := c.ops[op]
	if h == nil {
		h = NewHistogram()
		c.ops[op] = h
	}
	_ = h.RecordValue(us)
	if op == OpDelivery {
		_ = c.second.RecordValue(us)
		c.secDeliv++
	}
	if clamped {
		c.clamped++
	}
	c.mu.Unlock()
}

// Add adds n to a counter (Sent also counts in the current second).
func (c *Recorder) Add(k Counter, n int64) {
	c.mu.Lock()
	c.counters[k] += n
	if k == Sent {
		c.secSent += n
	}
	c.mu.Unlock()
}

// Error counts one error of op (code: the pomelo code of an error response,
// 0 if none; kind: one of the Kind* constants or another constant string).
// It does not allocate once the code and kind have been seen.
func (c *Recorder) Error(op Op, code int, kind string) {
	c.mu.Lock()
	c.errors++
	if int(op) < len(c.byOp) {
		c.byOp[op]++
	}
	c.secErr++
	c.byCode[code]++
	c.byKind[kind]++
	c.mu.Unlock()
}

// Prepare makes the histograms of ops now instead of on their first Record
// (each is about 184 KiB), e.g. before a driver takes its memory baseline,
// so that fixed costs do not show up as per-client memory.
func (c *Recorder) Prepare(ops ...Op) {
	c.mu.Lock()
	for _, op := range ops {
		if c.ops[op] == nil {
			c.ops[op] = NewHistogram()
		}
	}
	c.mu.Unlock()
}

// NumOps is the number of operations of the run (built-in and extra): Ops
// are 0..NumOps()-1.
func (r *Run) NumOps() int { return len(r.ops) }

// OpName is the name of op in summary.json.
func (r *Run) OpName(op Op) string { return r.ops[op] }
