package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/internal/natsopts"
)

// Options configure a coordinator (Run). Zero values mean the documented
// defaults.
type Options struct {
	NATS    natsopts.Options // URLs (required), credentials, TLS, subject prefix: as for Serve
	Workers int              // how many workers to wait for (>= 1)
	// Expect names the workers the caller started (local workers): only
	// they are accepted, and the ones missing are named when the wait
	// times out. Empty: any N workers that announce themselves.
	Expect []string
	// WaitTimeout bounds the wait for the workers (default 60s).
	WaitTimeout time.Duration
	// DeadAfter: a worker silent this long has died (default 3s).
	DeadAfter time.Duration
	// Dead receives the names of workers known to have ended (the caller
	// started them and saw them exit); optional.
	Dead <-chan string
	// Version is this chatbench's commit; workers must run the same.
	Version string
	// Driver is the run: Scenario, Target, Topology, ServerNice, Commit,
	// Out, LateThreshold, DrainTimeout, Progress (worker lines, prefixed
	// with the worker's name) and Logger are used; SourceAddrs is per
	// worker, worker i binding 127.0.0.(1+i*SourceAddrs) and on.
	Driver driver.Options
	// LogLevel is the workers' driver log level (default warn).
	LogLevel string
}

// Run waits for the workers, runs the scenario split over them and merges
// their results into one (written under Driver.Out like a one-process
// run). A run that lost a worker returns its merged result with Incomplete
// set and an error naming the worker.
func Run(ctx context.Context, o Options) (*driver.Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	s := o.Driver.Scenario
	if err := driver.CheckSplit(s, o.Workers); err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	nc, err := connect(o.NATS, "chatbench coordinator")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	c := &coord{o: o, nc: nc, log: o.Driver.Logger, run: newRunID(), subj: subjects{o.NATS.SubjectPrefix()}}
	if err := c.gather(ctx); err != nil {
		return nil, err
	}
	unsub, err := c.subscribe()
	if err != nil {
		return nil, err
	}
	defer unsub()
	if err := c.assign(ctx); err != nil {
		c.stop(err.Error())
		return nil, err
	}
	return c.loop(ctx)
}

func (o *Options) defaults() error {
	switch {
	case len(o.NATS.URLs) == 0:
		return errors.New("workers: no NATS URL")
	case o.Workers < 1:
		return fmt.Errorf("workers: %d workers: want 1 or more", o.Workers)
	case o.Driver.Scenario == nil:
		return errors.New("workers: no scenario")
	case o.Driver.Target == "":
		return errors.New("workers: no target (gate host:port)")
	case len(o.Expect) > 0 && len(o.Expect) != o.Workers:
		return fmt.Errorf("workers: %d expected names for %d workers", len(o.Expect), o.Workers)
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 60 * time.Second
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 3 * time.Second
	}
	if o.Driver.Logger == nil {
		o.Driver.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Driver.LateThreshold <= 0 {
		o.Driver.LateThreshold = 10 * time.Millisecond
	}
	if o.Driver.DrainTimeout <= 0 {
		o.Driver.DrainTimeout = 10 * time.Second
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	return nil
}

type coord struct {
	o       Options
	subj    subjects
	nc      *nats.Conn
	log     *slog.Logger
	run     string
	workers []*peer // by index
	start   time.Time
	events  chan event
}

// peer is one worker as the coordinator sees it.
type peer struct {
	hello
	index    int
	offset   int64 // its wall clock minus ours, ns
	clockErr int64 // ns; 0 with "same"
	clock    string
	lastBeat time.Time
	result   *resultMsg
	dead     string    // why it is counted dead ("" alive)
	exited   time.Time // when its process ended (zero: running, or not ours)
}

// exitGrace is how long a worker whose process ended may still deliver its
// result: a worker publishes and flushes its result, then exits, and its
// last chunks can reach this process's NATS subscription after the news of
// the exit. Only past the grace is it counted dead.
const exitGrace = 2 * time.Second

// gather waits for the workers' announcements.
func (c *coord) gather(ctx context.Context) error {
	hellos := make(chan *nats.Msg, 256)
	sub, err := c.nc.ChanSubscribe(c.subj.hello(), hellos)
	if err != nil {
		return fmt.Errorf("workers: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	joined := map[string]*peer{}
	timer := time.NewTimer(c.o.WaitTimeout)
	defer timer.Stop()
	for len(joined) < c.o.Workers {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return c.missing(joined)
		case m := <-hellos:
			var h hello
			if err := json.Unmarshal(m.Data, &h); err != nil || h.Name == "" {
				continue
			}
			if len(c.o.Expect) > 0 && !slices.Contains(c.o.Expect, h.Name) {
				continue // another run's worker
			}
			if p, ok := joined[h.Name]; ok {
				if p.PID != h.PID || p.Host != h.Host {
					return fmt.Errorf("workers: two workers are named %s (%s pid %d and %s pid %d): give each its own --name",
						h.Name, p.Host, p.PID, h.Host, h.PID)
				}
				continue
			}
			if h.Protocol != Protocol || h.Version != c.o.Version {
				return fmt.Errorf("workers: worker %s (%s pid %d) runs chatbench %s (protocol %d); this coordinator runs %s (protocol %d): run the same build everywhere",
					h.Name, h.Host, h.PID, h.Version, h.Protocol, c.o.Version, Protocol)
			}
			joined[h.Name] = &peer{hello: h}
		}
	}
	names := make([]string, 0, len(joined))
	for n := range joined {
		names = append(names, n)
	}
	if len(c.o.Expect) > 0 {
		names = append(names[:0], c.o.Expect...)
	} else {
		sort.Strings(names)
	}
	for i, n := range names {
		p := joined[n]
		p.index = i
		c.workers = append(c.workers, p)
	}
	return nil
}

func (c *coord) missing(joined map[string]*peer) error {
	var have []string
	for n := range joined {
		have = append(have, n)
	}
	sort.Strings(have)
	got := "none"
	if len(have) > 0 {
		got = strings.Join(have, ", ")
	}
	var miss string
	if len(c.o.Expect) > 0 {
		var names []string
		for _, n := range c.o.Expect {
			if joined[n] == nil {
				names = append(names, n)
			}
		}
		miss = strings.Join(names, ", ")
	} else {
		miss = fmt.Sprintf("%d more (start them with: chatbench worker --nats %s)", c.o.Workers-len(joined), natsopts.Redact(strings.Join(c.o.NATS.URLs, ",")))
	}
	return fmt.Errorf("workers: waited %v for %d workers on NATS %s: %d joined (%s); missing: %s",
		c.o.WaitTimeout, c.o.Workers, natsopts.Redact(strings.Join(c.o.NATS.URLs, ",")), len(joined), got, miss)
}

// clockPings is how many round trips measure a worker's clock offset.
const clockPings = 7

// measureClock relates a worker's wall clock to ours: the same clock when
// it runs on this machine (same kernel boot id), else the offset of the
// round trip with the smallest delay, NTP style, with half that round trip
// as its error bound.
func (c *coord) measureClock(p *peer) error {
	if me := bootID(); me != "" && me == p.BootID {
		p.clock = "same"
		return nil
	}
	ping, _ := json.Marshal(request{Kind: "ping"})
	best := int64(-1)
	for range clockPings {
		t0 := time.Now()
		m, err := c.nc.Request(c.subj.inbox(p.Name), ping, 2*time.Second)
		t1 := time.Now()
		if err != nil {
			return fmt.Errorf("workers: clock of worker %s: %w", p.Name, err)
		}
		var pg pong
		if err := json.Unmarshal(m.Data, &pg); err != nil || pg.Err != "" {
			return fmt.Errorf("workers: clock of worker %s: %v%s", p.Name, err, pg.Err)
		}
		rtt := t1.Sub(t0).Nanoseconds()
		if best < 0 || rtt < best {
			best = rtt
			p.offset = pg.WallNs - (t0.UnixNano()+t1.UnixNano())/2
			p.clockErr = rtt / 2
		}
	}
	p.clock = "measured"
	return nil
}

// assign measures clocks and hands every worker its part.
func (c *coord) assign(ctx context.Context) error {
	o := c.o
	for _, p := range c.workers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := c.measureClock(p); err != nil {
			return err
		}
	}
	names := make([]string, len(c.workers))
	for i, p := range c.workers {
		names[i] = p.Name
	}
	d := o.Driver
	for _, p := range c.workers {
		a := &assign{
			Run: c.run, Index: p.index, Count: len(c.workers), Names: names, Scenario: d.Scenario, Target: d.Target,
			Topology: d.Topology, Commit: d.Commit, ClockOffsetNs: p.offset, LateThreshold: d.LateThreshold,
			DrainTimeout: d.DrainTimeout, ServerNice: d.ServerNice, LogLevel: o.LogLevel,
		}
		if d.SourceAddrs > 0 {
			a.SourceAddrs = d.SourceAddrs
			a.FirstSourceAddr = 1 + p.index*d.SourceAddrs
		}
		rq, _ := json.Marshal(request{Kind: "assign", Assign: a})
		m, err := c.nc.Request(c.subj.inbox(p.Name), rq, 5*time.Second)
		if err != nil {
			return fmt.Errorf("workers: assign part %d to worker %s: %w", p.index, p.Name, err)
		}
		var pg pong
		if err := json.Unmarshal(m.Data, &pg); err != nil || pg.Err != "" {
			return fmt.Errorf("workers: worker %s refused part %d: %v%s", p.Name, p.index, err, pg.Err)
		}
		p.lastBeat = time.Now()
	}
	c.start = time.Now()
	return nil
}

// event is one message of the run, from the NATS callbacks to loop.
type event struct {
	kind string // barrier, progress, beat, result
	data []byte
}

// resultGrace bounds the wait for the workers' results after a stop: they
// close their clients (up to 5 s) and write their summaries.
const resultGrace = 20 * time.Second

// subscribe listens to the run's subjects (before any worker has its part).
func (c *coord) subscribe() (unsub func(), err error) {
	c.events = make(chan event, 1024)
	var asm assembler
	var subs []*nats.Subscription
	unsub = func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, kind := range []string{"barrier", "applied", "progress", "beat", "result"} {
		chunked := kind == "barrier" || kind == "result"
		s, err := c.nc.Subscribe(c.subj.run(c.run, kind), func(m *nats.Msg) {
			data := m.Data
			if chunked {
				var err error
				if data, err = asm.add(m.Data); err != nil || data == nil {
					return
				}
			}
			c.events <- event{kind: kind, data: data}
		})
		if err != nil {
			unsub()
			return nil, fmt.Errorf("workers: subscribe: %w", err)
		}
		_ = s.SetPendingLimits(-1, -1)
		subs = append(subs, s)
	}
	if err := c.nc.Flush(); err != nil {
		unsub()
		return nil, fmt.Errorf("workers: subscribe: %w", err)
	}
	return unsub, nil
}

// loop relays barriers, progress and heartbeats until every worker's
// results are in (or the ones missing are counted dead), then merges.
func (c *coord) loop(ctx context.Context) (*driver.Result, error) {
	events := c.events
	n := len(c.workers)
	s := c.o.Driver.Scenario
	barrier := map[int][][]int32{} // phase -> local membership by index
	applied := map[int][]bool{}    // phase -> applied by index
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var stopping bool
	var stopAt time.Time
	var failed []string // workers whose run failed
	unreachable := false
	stop := func(reason string) {
		if !stopping {
			stopping, stopAt = true, time.Now()
			c.stop(reason)
		}
	}
	pending := func() (left int) {
		for _, p := range c.workers {
			if p.result == nil && p.dead == "" {
				left++
			}
		}
		return left
	}
	interrupted := false
	for pending() > 0 {
		select {
		case <-ctx.Done():
			if !interrupted {
				interrupted = true
				stop("interrupted")
			}
		case name := <-c.o.Dead:
			for _, p := range c.workers {
				if p.Name == name && p.exited.IsZero() {
					p.exited = time.Now()
				}
			}
		case now := <-tick.C:
			_ = c.nc.Publish(c.subj.run(c.run, "cbeat"), nil)
			for _, p := range c.workers {
				if p.result == nil && p.dead == "" && !p.exited.IsZero() && now.Sub(p.exited) > exitGrace {
					p.dead = fmt.Sprintf("worker %s died (its process ended) %.1f s into the run", p.Name, p.exited.Sub(c.start).Seconds())
					stop(p.dead)
				}
				if p.result == nil && p.dead == "" && now.Sub(p.lastBeat) > c.o.DeadAfter {
					p.dead = fmt.Sprintf("worker %s died (silent for %v) %.1f s into the run", p.Name, now.Sub(p.lastBeat).Round(100*time.Millisecond), now.Sub(c.start).Seconds())
					stop(p.dead)
				}
			}
			if stopping && now.Sub(stopAt) > resultGrace+c.o.Driver.DrainTimeout {
				for _, p := range c.workers {
					if p.result == nil && p.dead == "" {
						p.dead = fmt.Sprintf("worker %s sent no results within %v of the stop", p.Name, now.Sub(stopAt).Round(time.Second))
					}
				}
			}
		case ev := <-events:
			switch ev.kind {
			case "beat":
				var b beatMsg
				if json.Unmarshal(ev.data, &b) == nil && b.Index >= 0 && b.Index < n {
					c.workers[b.Index].lastBeat = time.Now()
				}
			case "progress":
				var pm progressMsg
				if json.Unmarshal(ev.data, &pm) == nil && pm.Index >= 0 && pm.Index < n && c.o.Driver.Progress != nil {
					fmt.Fprintf(c.o.Driver.Progress, "[%s] %s\n", c.workers[pm.Index].Name, pm.Line)
				}
			case "barrier":
				var b barrierMsg
				if err := json.Unmarshal(ev.data, &b); err != nil || b.Index < 0 || b.Index >= n {
					continue
				}
				c.workers[b.Index].lastBeat = time.Now()
				if stopping {
					continue
				}
				if barrier[b.Phase] == nil {
					barrier[b.Phase] = make([][]int32, n)
				}
				barrier[b.Phase][b.Index] = b.Local
				if all := barrier[b.Phase]; !slices.ContainsFunc(all, func(l []int32) bool { return l == nil }) {
					delete(barrier, b.Phase)
					if err := c.release(b.Phase, all); err != nil {
						stop(err.Error())
					}
				}
			case "applied":
				var b barrierMsg
				if err := json.Unmarshal(ev.data, &b); err != nil || b.Index < 0 || b.Index >= n || stopping {
					continue
				}
				if applied[b.Phase] == nil {
					applied[b.Phase] = make([]bool, n)
				}
				applied[b.Phase][b.Index] = true
				if !slices.Contains(applied[b.Phase], false) {
					delete(applied, b.Phase)
					at := time.Now().Add(startLead)
					if err := publishBig(c.nc, c.subj.run(c.run, "go"), goMsg{Phase: b.Phase, AtNs: at.UnixNano()}); err != nil {
						stop(err.Error())
					}
				}
			case "result":
				var r resultMsg
				if err := json.Unmarshal(ev.data, &r); err != nil || r.Index < 0 || r.Index >= n {
					c.log.Warn("bad result", "err", err)
					continue
				}
				p := c.workers[r.Index]
				p.result = &r
				if r.Err != "" {
					failed = append(failed, fmt.Sprintf("worker %s: %s", p.Name, r.Err))
					unreachable = unreachable || r.Unreachable
					stop(fmt.Sprintf("worker %s failed: %s", p.Name, r.Err))
				}
			}
		}
	}
	if !stopping {
		c.stop("done")
	}
	res, werr := c.merge(s)
	var errs []error
	if werr != nil {
		errs = append(errs, werr)
	}
	if res != nil && res.Summary != nil && res.Summary.Incomplete {
		errs = append(errs, fmt.Errorf("run incomplete: %s", res.Summary.IncompleteReason))
	}
	if len(failed) > 0 {
		err := errors.New(strings.Join(failed, "; "))
		if unreachable {
			err = fmt.Errorf("%w: %v", driver.ErrUnreachable, err)
		}
		errs = append(errs, err)
	}
	if interrupted {
		errs = append(errs, ctx.Err())
	}
	return res, errors.Join(errs...)
}

// release starts phase with every worker's membership.
func (c *coord) release(phase int, locals [][]int32) error {
	s := c.o.Driver.Scenario
	global := make([]int32, s.Clients)
	for i, l := range locals {
		lo, hi := driver.Bounds(s.Clients, i, len(locals))
		if len(l) != hi-lo {
			return fmt.Errorf("worker %s sent the rooms of %d clients at the barrier before phase %d, want %d",
				c.workers[i].Name, len(l), phase, hi-lo)
		}
		copy(global[lo:hi], l)
	}
	return publishBig(c.nc, c.subj.run(c.run, "go"), goMsg{Phase: phase, Global: global})
}

// startLead is how far ahead a phase's common start is set: every worker
// should have the start message by then (one that has it later starts
// late, which its send lag shows).
const startLead = 200 * time.Millisecond

func (c *coord) stop(reason string) {
	b, _ := json.Marshal(stopMsg{Reason: reason})
	_ = c.nc.Publish(c.subj.run(c.run, "stop"), b)
	_ = c.nc.Flush()
}

// merge merges the workers' results (bench/metrics.Merge: lossless) and
// writes them under Driver.Out like a one-process run.
func (c *coord) merge(s *scenario.Scenario) (*driver.Result, error) {
	var parts []*metrics.Summary
	var got []*peer
	var missing []string
	res := &driver.Result{}
	for _, p := range c.workers {
		r := p.result
		if r == nil || r.Summary == nil {
			why := p.dead
			if why == "" {
				why = fmt.Sprintf("worker %s sent no summary", p.Name)
			}
			missing = append(missing, why)
			continue
		}
		parts = append(parts, r.Summary)
		got = append(got, p)
		res.Rooms = driver.AddRooms(res.Rooms, r.Rooms)
		res.MemoryPerClient = max(res.MemoryPerClient, r.MemoryPerClient)
		res.Connected += r.Connected
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("no worker sent results: %s", strings.Join(missing, "; "))
	}
	sum, err := metrics.MergeWith(metrics.MergeOptions{Force: true}, parts...)
	if err != nil {
		return nil, fmt.Errorf("merge the workers' results: %w", err)
	}
	// parts in worker order, the missing ones named in their place
	merged := sum.Parts
	sum.Parts = nil
	for _, p := range c.workers {
		pt := metrics.Part{Missing: true}
		if k := slices.Index(got, p); k >= 0 {
			pt = merged[k]
		}
		pt.Name, pt.Clock = p.Name, p.clock
		pt.ClockOffsetUs, pt.ClockErrorUs = p.offset/1000, p.clockErr/1000
		sum.ClockErrorUs = max(sum.ClockErrorUs, pt.ClockErrorUs)
		sum.Parts = append(sum.Parts, pt)
	}
	if len(missing) > 0 {
		sum.Incomplete = true
		sum.IncompleteReason = strings.Join(missing, "; ")
	}
	sum.Description = s.Description
	sum.Rooms = s.Rooms.Count
	driver.Evaluate(s, sum)
	res.Summary = sum
	if out := c.o.Driver.Out; out != "" {
		dir := filepath.Join(out, fmt.Sprintf("%s-%s", s.Name, c.start.Format("20060102-150405")))
		if err := sum.Write(dir); err != nil {
			return res, fmt.Errorf("write results: %w", err)
		}
		if err := driver.WriteRooms(dir, res.Rooms); err != nil {
			return res, fmt.Errorf("write results: %w", err)
		}
		res.Dir = dir
	}
	return res, nil
}
