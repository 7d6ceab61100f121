// Package driver runs a scenario against a pomelo-protocol chat server: it
// connects the scenario's clients (bench/client), runs its phases on the same
// sockets (enter, chat, storm, leave, hop, idle), schedules every send at its
// intended time (open model: latency counts from the intended time, sends
// that could not go out on time are counted as late), accounts for every
// message (expected, delivered, lost, duplicated, out of order, per room),
// watches itself (CPU, GC pauses, scheduler lag) and writes the results
// through bench/metrics.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/pace"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/chatproto"
)

// Options configure a run. Zero values mean the documented defaults.
type Options struct {
	Scenario   *scenario.Scenario // required
	Target     string             // gate host:port; required
	Topology   string             // recorded in the summary ("single", "split", "external")
	ServerNice int                // recorded in the summary: how much nicer than the driver the server runs
	Commit     string             // recorded in the summary
	// Out is the results root: the run writes Out/<scenario>-<time>/.
	// Empty: nothing is written.
	Out string
	// SourceAddrs > 1 spreads client sockets over 127.0.0.1..N
	// (FirstSourceAddr F > 1: over 127.0.0.F..F+N-1).
	SourceAddrs     int
	FirstSourceAddr int
	// LateThreshold: a send that goes out later than this after its
	// intended time counts as late. Default 10ms.
	LateThreshold time.Duration
	// DrainTimeout bounds the wait for in-flight deliveries, onLeave pushes
	// and acknowledgements after a phase. Default 10s.
	DrainTimeout time.Duration
	// Progress receives the live line every second (nil: none).
	Progress io.Writer
	Logger   *slog.Logger
	Client   client.Options // SourceAddrs and Logger are set from the fields above
	// MaxMessages bounds the accounting table (default 64M messages).
	MaxMessages uint64
	// MaxInflightJoins caps joins (gate + connector sockets) in progress at
	// once in an open-model enter phase (default 1000). Arrivals past it wait
	// for a slot with their intended time kept: the wait is in their latency.
	MaxInflightJoins int
	// Split makes the run one part of a run split over several driver
	// processes (nil: the whole run). See Split.
	Split *Split
}

// Result is what a run produced.
type Result struct {
	Summary *metrics.Summary
	Dir     string      // results directory ("" when Out was empty)
	Rooms   []RoomStats // per-room counts, also written to rooms.csv (WriteRooms)
	// MemoryPerClient is the driver's memory per connected client measured
	// after the first enter phase: Go heap in use + goroutine stacks + span
	// metadata after a full GC, against the same measure before the driver
	// built any state, divided by the connected clients. It includes the
	// per-client bookkeeping and the run's fixed costs (histograms, tables)
	// amortized over the clients; kernel socket buffers are not included.
	MemoryPerClient int64
	Connected       int // clients connected at the measurement
}

// ExtraOps are the operations the driver records beyond metrics' built-ins.
var ExtraOps = []string{"join", "on_add", "send_lag"}

type vclient struct {
	idx   int32
	name  string
	qname string // name as a JSON string
	home  int32
	c     atomic.Pointer[client.Client]
	cur   atomic.Int32 // current room, -1 none
	trans atomic.Bool  // switching rooms
	rec   *metrics.Recorder

	// owned by the client's sender worker
	seq uint32
	rnd *rand.Rand

	moveAt    atomic.Int64 // intended time of the last enter/switch/leave (client.Now)
	leaving   atomic.Bool  // selected to leave in the current leave phase
	leftRoom  atomic.Int32
	localStop atomic.Bool  // we closed it
	addExp    atomic.Int32 // onAdd pushes for this client's enter expected (the members already in)
	addSeen   atomic.Int32
	leaveExp  atomic.Int32 // onLeave pushes for this client's leave expected (members that stay)
	leaveSeen atomic.Int32

	// reader goroutine only
	lastSeq seqTable
}

type driver struct {
	opts   Options
	s      *scenario.Scenario
	asg    *scenario.Assignment
	log    *slog.Logger
	fleet  *client.Fleet
	run    *metrics.Run
	recs   []*metrics.Recorder
	ctl    *metrics.Recorder
	opJoin metrics.Op
	opAdd  metrics.Op
	opLag  metrics.Op

	clients []*vclient
	pres    []presence      // by client index
	active  []time.Duration // by phase index: active window of message phases
	byName  map[string]int32
	rooms   []*room
	tab     *table
	handl   client.Handlers

	phase       atomic.Int32 // index of the running phase
	unacked     atomic.Int64
	connected   atomic.Int64
	skipped     atomic.Int64
	targetMoved atomic.Int64 // private sends refused because the target had just switched rooms
	openSent    atomic.Int64 // sends of chat and hop phases (spread schedules)
	openLate    atomic.Int64
	start       time.Time
	protoErrs   atomic.Int64
	joined      atomic.Int64 // joins that reached a connector, ever
	refused     atomic.Int64 // joins failed before reaching a connector, this enter phase
	lastDialErr atomic.Value // error of the last failed queryEntry or connect

	self  *selfCheck
	split *splitState // nil: a whole run
}

// Run runs the scenario and writes its results.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Scenario == nil {
		return nil, errors.New("driver: no scenario")
	}
	if opts.Target == "" {
		return nil, errors.New("driver: no target (gate host:port)")
	}
	if opts.LateThreshold <= 0 {
		opts.LateThreshold = 10 * time.Millisecond
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxMessages == 0 {
		opts.MaxMessages = 64 << 20
	}
	if opts.MaxInflightJoins <= 0 {
		opts.MaxInflightJoins = 1000
	}
	s := opts.Scenario
	if sp := opts.Split; sp != nil {
		switch {
		case sp.Count < 1 || sp.Index < 0 || sp.Index >= sp.Count:
			return nil, fmt.Errorf("driver: split part %d of %d", sp.Index, sp.Count)
		case sp.Barrier == nil || sp.Send == nil:
			return nil, errors.New("driver: split without Barrier or Send")
		}
		if err := CheckSplit(s, sp.Count); err != nil {
			return nil, fmt.Errorf("driver: %w", err)
		}
	}
	baseline := memInUse() // before any per-client state exists
	d := newDriver(opts, time.Now())
	defer d.fleet.Close()
	start := d.start

	d.self = startSelfCheck()
	res := &Result{}

	stopProgress := d.startProgress()
	stopSplit := d.startSplit()
	var runErr error
	for pi, p := range s.Phases {
		if ctx.Err() != nil {
			break
		}
		if err := d.barrier(ctx, pi); err != nil {
			if !errors.Is(err, context.Canceled) {
				runErr = fmt.Errorf("phase %q: %w", p.Name, err)
			}
			break
		}
		d.phase.Store(int32(pi))
		d.run.BeginPhase(p.Name, string(p.Kind), time.Now())
		d.log.Info("phase", "name", p.Name, "kind", p.Kind)
		var err error
		switch p.Kind {
		case scenario.KindEnter:
			err = d.enterPhase(ctx, p)
			if res.Connected == 0 {
				if c := int(d.connected.Load()); c > 0 {
					res.Connected = c
					res.MemoryPerClient = (memInUse() - baseline) / int64(c)
				}
			}
		case scenario.KindChat, scenario.KindStorm, scenario.KindHop:
			err = d.sendPhase(ctx, pi, p)
		case scenario.KindLeave:
			err = d.leavePhase(ctx, p)
		case scenario.KindIdle:
			err = pace.Sleep(ctx, p.Duration)
		default:
			err = fmt.Errorf("phase %q: unknown kind %q", p.Name, p.Kind)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			runErr = fmt.Errorf("phase %q: %w", p.Name, err)
			break
		}
	}
	if runErr == nil && ctx.Err() == nil && d.split != nil {
		// no part closes its clients while another still counts on them
		if err := d.barrier(ctx, len(s.Phases)); err != nil && !errors.Is(err, context.Canceled) {
			runErr = fmt.Errorf("end of the run: %w", err)
		}
	}
	d.closeAll()
	stopSplit()
	stopProgress()
	end := time.Now()
	check := d.self.stop()

	sum := d.run.Finish(end)
	sum.Scenario = s.Name
	sum.Description = s.Description
	sum.Seed = s.Seed
	sum.Clients = d.ownedCount()
	sum.Rooms = s.Rooms.Count
	sum.Topology = opts.Topology
	sum.ServerNice = opts.ServerNice
	sum.Target = opts.Target
	sum.Commit = opts.Commit
	sum.Driver = d.judge(check, sum)
	sum.Driver.MemoryPerClientB = res.MemoryPerClient
	for i := range sum.Phases {
		if i < len(d.active) && d.active[i] > 0 {
			fillActive(&sum.Phases[i], d.active[i])
		}
	}
	Evaluate(s, sum)
	res.Summary = sum
	res.Rooms = d.roomStats()
	if opts.Out != "" {
		dir := filepath.Join(opts.Out, fmt.Sprintf("%s-%s", s.Name, start.Format("20060102-150405")))
		if err := sum.Write(dir); err != nil {
			return res, fmt.Errorf("write results: %w", err)
		}
		if err := WriteRooms(dir, res.Rooms); err != nil {
			return res, fmt.Errorf("write results: %w", err)
		}
		res.Dir = dir
	}
	if runErr == nil && ctx.Err() != nil {
		runErr = ctx.Err()
	}
	return res, runErr
}

// minActiveWindow is the shortest active window given a rate: below it,
// active_deliveries_per_s is omitted (a near-zero window makes any rate).
const minActiveWindow = 10 * time.Millisecond

// fillActive sets a phase's active window and the deliveries/s over it.
func fillActive(p *metrics.PhaseStats, active time.Duration) {
	p.ActiveS = active.Seconds()
	if active >= minActiveWindow && p.Delivered > 0 {
		p.ActiveDeliveriesPerSec = float64(p.Delivered) / active.Seconds()
	}
}

// failMisrouted makes misrouted deliveries fail the loss check: each one
// hides a loss in a count-only comparison, and is a server bug of its own.
// loss_max's actual becomes (lost + misrouted) / expected.
func failMisrouted(sum *metrics.Summary) {
	c := sum.Counters
	if c.Misrouted == 0 {
		return
	}
	for i := range sum.Thresholds {
		t := &sum.Thresholds[i]
		if t.Name != scenario.ThresholdLoss {
			continue
		}
		t.Actual = float64(c.Lost+c.Misrouted) / float64(max(c.Expected, 1))
		t.Pass = false
	}
}

// newDriver builds the driver's state: fleet, recorders, rooms, clients.
func newDriver(opts Options, start time.Time) *driver {
	s := opts.Scenario
	d := &driver{opts: opts, s: s, log: opts.Logger, asg: s.Assign()}
	if opts.Split != nil {
		d.split = newSplitState(opts.Split, s.Clients)
	}
	co := opts.Client
	co.SourceAddrs = opts.SourceAddrs
	co.FirstSourceAddr = opts.FirstSourceAddr
	co.Logger = opts.Logger
	d.fleet = client.NewFleet(co)
	d.start = start
	d.run = metrics.NewRun(metrics.Options{ExtraOps: ExtraOps, Start: start})
	d.opJoin, _ = d.run.Op("join")
	d.opAdd, _ = d.run.Op("on_add")
	d.opLag, _ = d.run.Op("send_lag")
	n := 2 * runtime.GOMAXPROCS(0) // receivers on GOMAXPROCS cores rarely contend on 2x as many recorders
	for range n {
		d.recs = append(d.recs, d.run.NewRecorder())
	}
	d.ctl = d.recs[0]
	d.tab = newTable(opts.MaxMessages)
	d.pres = make([]presence, s.Clients)
	d.active = make([]time.Duration, len(s.Phases))
	d.rooms = make([]*room, d.asg.Rooms())
	for r := range d.rooms {
		id := scenario.RoomID(r)
		d.rooms[r] = &room{idx: r, id: id, qid: chatproto.Quote(id), members: map[int32]uint64{}, pres: d.pres}
	}
	d.clients = make([]*vclient, s.Clients)
	d.byName = make(map[string]int32, s.Clients)
	for i := range d.clients {
		name := scenario.UserName(i)
		v := &vclient{idx: int32(i), name: name, qname: chatproto.Quote(name), home: int32(d.asg.RoomOf(i)), rec: d.recs[i%n]}
		v.cur.Store(-1)
		v.leftRoom.Store(-1)
		d.clients[i] = v
		d.byName[v.name] = int32(i)
	}
	d.handl = client.Handlers{Push: d.onPush, Kick: d.onKick, Closed: d.onClosed}

	return d
}

// closeAll closes every connected client at the end of the run.
func (d *driver) closeAll() {
	var wg sync.WaitGroup
	for _, v := range d.clients {
		c := v.c.Load()
		if c == nil {
			continue
		}
		v.localStop.Store(true)
		if r := v.cur.Swap(-1); r >= 0 {
			d.rooms[r].leaveMember(v.idx)
		}
		if v.c.CompareAndSwap(c, nil) {
			d.connected.Add(-1)
			v.rec.Add(metrics.Connected, -1)
		}
		c.Close()
		wg.Add(1)
		go func() { defer wg.Done(); <-c.Done() }()
	}
	waitTimeout(&wg, 5*time.Second)
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (d *driver) roomStats() []RoomStats {
	out := make([]RoomStats, len(d.rooms))
	for i, r := range d.rooms {
		r.mu.Lock()
		st := r.stats
		for m := range r.members {
			if d.owns(m) {
				st.Members++
			}
		}
		r.mu.Unlock()
		st.Room = r.id
		st.Duplicated += r.dup.Load()
		st.OutOfOrder = r.ooo.Load()
		st.Misrouted = r.misrouted.Load()
		out[i] = st
	}
	return out
}

// Evaluate checks the scenario's thresholds on sum (a run's, or a merge of
// parts of one run), misrouted deliveries failing loss_max.
func Evaluate(s *scenario.Scenario, sum *metrics.Summary) {
	sum.Thresholds = s.Thresholds.Evaluate(sum)
	failMisrouted(sum)
}

// AddRooms adds the per-room counts of another part of the same run.
func AddRooms(to, from []RoomStats) []RoomStats {
	if to == nil {
		to = make([]RoomStats, len(from))
		for i := range from {
			to[i].Room = from[i].Room
		}
	}
	for i := range min(len(to), len(from)) {
		t, f := &to[i], &from[i]
		t.Members += f.Members
		t.Sent += f.Sent
		t.Expected += f.Expected
		t.Delivered += f.Delivered
		t.Extra += f.Extra
		t.Misrouted += f.Misrouted
		t.Lost += f.Lost
		t.Duplicated += f.Duplicated
		t.OutOfOrder += f.OutOfOrder
		t.Failed += f.Failed
		t.LeaveMiss += f.LeaveMiss
		t.Ghosts += f.Ghosts
		t.AddMiss += f.AddMiss
	}
	return to
}

// WriteRooms writes rooms.csv into dir.
func WriteRooms(dir string, rooms []RoomStats) error {
	f, err := os.Create(filepath.Join(dir, "rooms.csv"))
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "room,members,sent,expected,delivered,extra,lost,duplicated,out_of_order,failed_sends,onleave_missing,ghosts,misrouted,onadd_missing")
	for _, r := range rooms {
		fmt.Fprintf(f, "%s,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", r.Room, r.Members, r.Sent, r.Expected, r.Delivered,
			r.Extra, r.Lost, r.Duplicated, r.OutOfOrder, r.Failed, r.LeaveMiss, r.Ghosts, r.Misrouted, r.AddMiss)
	}
	return f.Close()
}
