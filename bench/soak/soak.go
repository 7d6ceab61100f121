// Package soak runs a long churn load against a chat server and watches the
// server's own gauges for leaks: resident memory, goroutines and open file
// descriptors, read from each server process's Prometheus /metrics before,
// during and after the load.
//
// The load is a fixed number of client slots. Each slot loops: ask the gate
// for a connector, connect, enter a room, chat, hop to another room
// (switchRoom), chat, leave (close), and connect again as a new user. So the
// number of connected clients stays about constant while every session
// path (enter, chat, hop, leave, reconnect) runs thousands of times.
//
// A run fails when, once the load has stopped, a gauge does not come back to
// within its margin of the baseline taken before the load, or when a gauge
// grows steadily under the constant load (its least-squares trend over the
// load, after a warm-up, projects more growth than the margin).
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/pace"
	"github.com/chatbench/chatbench/chatproto"
)

// Margins say how far a gauge may be from its baseline once the load has
// stopped, and how much it may grow (by its trend) during the load. Zero
// values mean the documented defaults.
type Margins struct {
	// RSSBytes is the resident memory allowed above the baseline; default
	// 64 MiB. Go keeps freed heap for a while and returns it to the system
	// gradually, so this is not zero even without a leak.
	RSSBytes float64
	// Goroutines allowed above the baseline; default 20.
	Goroutines float64
	// FDs (open file descriptors) allowed above the baseline; default 10.
	FDs float64
}

func (m *Margins) setDefaults() {
	if m.RSSBytes <= 0 {
		m.RSSBytes = 64 << 20
	}
	if m.Goroutines <= 0 {
		m.Goroutines = 20
	}
	if m.FDs <= 0 {
		m.FDs = 10
	}
}

// Options configure a soak run. Zero values mean the documented defaults.
type Options struct {
	Gate    string   // the gate's host:port; required
	Metrics []string // /metrics URL of every server process; required
	// Duration of the load; default 10 minutes.
	Duration time.Duration
	Clients  int // client slots churning at once; default 200
	Rooms    int // rooms the clients enter and hop between; default 20
	// Chats each client sends in a room before it hops or leaves; default 5.
	Chats int
	// Hops per connection (switchRoom) before the client leaves; default 2.
	Hops int
	// ChatInterval is the pause between two chats of one client; default
	// 500ms. With the defaults a slot makes one connection about every 8 s.
	ChatInterval time.Duration
	// Sample is the interval between two reads of every /metrics; default 5s.
	Sample time.Duration
	// Baseline is how long the idle server is sampled before the load;
	// default 3 samples' time (the median of those samples is the baseline).
	Baseline time.Duration
	// Settle bounds the wait, after the load, for every gauge to come back
	// within its margin; default 90s.
	Settle time.Duration
	// Warmup is the start of the load left out of the growth trend (the
	// server's pools and heap grow to their working size); default a
	// quarter of Duration.
	Warmup   time.Duration
	Margins  Margins
	Seed     uint64       // 0: 1
	Progress io.Writer    // a line per sample; nil: none
	Logger   *slog.Logger // nil: discard
}

func (o *Options) setDefaults() error {
	if o.Gate == "" {
		return errors.New("soak: no gate address")
	}
	if len(o.Metrics) == 0 {
		return errors.New("soak: no /metrics URL to watch")
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Clients <= 0 {
		o.Clients = 200
	}
	if o.Rooms <= 0 {
		o.Rooms = 20
	}
	if o.Rooms < 2 && o.Hops >= 0 {
		return errors.New("soak: hopping needs at least 2 rooms (set Rooms to 2 or more, or Hops negative for none)")
	}
	if o.Chats <= 0 {
		o.Chats = 5
	}
	if o.Hops < 0 {
		o.Hops = 0
	} else if o.Hops == 0 {
		o.Hops = 2
	}
	if o.ChatInterval <= 0 {
		o.ChatInterval = 500 * time.Millisecond
	}
	if o.Sample <= 0 {
		o.Sample = 5 * time.Second
	}
	if o.Baseline <= 0 {
		o.Baseline = 3 * o.Sample
	}
	if o.Settle <= 0 {
		o.Settle = 90 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = o.Duration / 4
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Margins.setDefaults()
	return nil
}

// Load counts what the clients did.
type Load struct {
	Connections uint64 // sessions opened (each entered a room)
	Enters      uint64
	Hops        uint64
	Chats       uint64 // chat requests answered without error
	Pushes      uint64 // pushes received (onChat, onAdd, onLeave)
	Errors      uint64 // failed steps (connect, enter, hop, chat)
	LastError   string
}

// Result is a finished run.
type Result struct {
	Samples  []Sample
	Targets  []string // the /metrics URLs, in Options order
	Baseline []Gauges // per target: the median of the samples before the load
	Final    []Gauges // per target: the last sample after the load
	Growth   []Gauges // per target: the trend over the load after the warm-up, projected over that window
	Load     Load
	Failures []string // why the run failed; empty when it passed
	Start    time.Time
}

// Passed reports whether no gauge leaked.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Run soaks the server: baseline, load, settle. It returns an error only
// when the run could not be made (a /metrics URL unreadable before the
// load, ctx ended); a leak is a Result that did not pass.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	r := &runner{o: o, res: &Result{Targets: o.Metrics, Start: time.Now()}}
	for _, u := range o.Metrics { // fail early on a wrong URL
		if _, err := Scrape(ctx, u); err != nil {
			return nil, fmt.Errorf("soak: before the load: %w", err)
		}
	}
	// Before: sample the idle server.
	if err := r.sampleFor(ctx, PhaseBefore, o.Baseline, nil); err != nil {
		return nil, err
	}
	r.res.Baseline = medians(r.res.Samples, len(o.Metrics), PhaseBefore)

	// During: the churn.
	loadCtx, stop := context.WithTimeout(ctx, o.Duration)
	var wg sync.WaitGroup
	fleet := client.NewFleet(client.Options{RequestTimeout: 10 * time.Second, Logger: o.Logger})
	r.fleet = fleet
	r.loadStart = time.Now()
	for i := range o.Clients {
		wg.Add(1)
		go func() { defer wg.Done(); r.slot(loadCtx, i) }()
	}
	err := r.sampleFor(loadCtx, PhaseLoad, o.Duration, nil)
	stop()
	wg.Wait()
	fleet.Close()
	if ctx.Err() != nil {
		return r.res, ctx.Err()
	}
	_ = err // the load context ending is the end of the load
	r.loadEnd = time.Now()
	r.res.Load = r.load()

	// After: wait until every gauge is back within its margin, or Settle.
	settled := func() bool {
		last := lastSamples(r.res.Samples, len(o.Metrics))
		return len(r.backFailures(last)) == 0
	}
	if err := r.sampleFor(ctx, PhaseAfter, o.Settle, settled); err != nil {
		return r.res, err
	}
	r.verdict()
	return r.res, nil
}

// Phases of a run.
const (
	PhaseBefore = "before"
	PhaseLoad   = "load"
	PhaseAfter  = "after"
)

type runner struct {
	o         Options
	res       *Result
	fleet     *client.Fleet
	loadStart time.Time
	loadEnd   time.Time

	connections, enters, hops, chats, pushes, errs atomic.Uint64
	lastErr                                        atomic.Pointer[string]
}

func (r *runner) load() Load {
	l := Load{
		Connections: r.connections.Load(), Enters: r.enters.Load(), Hops: r.hops.Load(),
		Chats: r.chats.Load(), Pushes: r.pushes.Load(), Errors: r.errs.Load(),
	}
	if p := r.lastErr.Load(); p != nil {
		l.LastError = *p
	}
	return l
}

func (r *runner) fail(ctx context.Context, step string, err error) {
	if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
		// the load ended: not a failure of the server (a dial whose socket
		// deadline is the load's end times out a moment before ctx reports it)
		return
	}
	r.errs.Add(1)
	s := step + ": " + err.Error()
	r.lastErr.Store(&s)
	r.o.Logger.Debug("soak step failed", "step", step, "err", err)
}

// sampleFor samples every Sample for d (or until ctx ends, or until done
// reports true after a sample).
func (r *runner) sampleFor(ctx context.Context, phase string, d time.Duration, done func() bool) error {
	end := time.Now().Add(d)
	t := time.NewTicker(r.o.Sample)
	defer t.Stop()
	for {
		if err := r.sample(ctx, phase); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.o.Logger.Warn("scrape", "err", err)
		}
		if done != nil && done() {
			return nil
		}
		if !time.Now().Add(r.o.Sample / 2).Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *runner) sample(ctx context.Context, phase string) error {
	now := time.Now()
	var errs []error
	var line []any
	for i, u := range r.o.Metrics {
		g, err := Scrape(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.res.Samples = append(r.res.Samples, Sample{At: now.Sub(r.res.Start), Phase: phase, Target: i, Gauges: g})
		line = append(line, fmt.Sprintf("[%d] rss=%.1fMiB goroutines=%.0f fds=%.0f", i, g.RSS/(1<<20), g.Goroutines, g.FDs))
	}
	l := r.load()
	fmt.Fprintf(r.o.Progress, "soak %6.0fs %-6s conns=%d chats=%d errors=%d %v\n",
		now.Sub(r.res.Start).Seconds(), phase, l.Connections, l.Chats, l.Errors, line)
	return errors.Join(errs...)
}

// slot is one churning client: connect, enter, chat, hop, chat, leave,
// again, until ctx ends.
func (r *runner) slot(ctx context.Context, i int) {
	o := &r.o
	rng := rand.New(rand.NewPCG(o.Seed, uint64(i)))
	h := &client.Handlers{Push: func(*client.Push) { r.pushes.Add(1) }}
	// Spread the first connections over one chat interval.
	if !pause(ctx, time.Duration(rng.Int64N(int64(o.ChatInterval)+1))) {
		return
	}
	for gen := 0; ctx.Err() == nil; gen++ {
		name := "soak" + strconv.Itoa(i) + "-" + strconv.Itoa(gen)
		addr, err := r.fleet.QueryEntry(ctx, o.Gate, name)
		if err != nil {
			r.fail(ctx, "queryEntry", err)
			pause(ctx, time.Second)
			continue
		}
		c, err := r.fleet.Dial(ctx, addr, h)
		if err != nil {
			r.fail(ctx, "connect", err)
			pause(ctx, time.Second)
			continue
		}
		r.connections.Add(1)
		r.session(ctx, c, rng, name)
		_ = c.Close()
		<-c.Done()
	}
}

// session runs one connection's life: enter, chat, hops with chats.
func (r *runner) session(ctx context.Context, c *client.Client, rng *rand.Rand, name string) {
	o := &r.o
	rid := "soak-room-" + strconv.Itoa(rng.IntN(o.Rooms))
	if _, err := c.Call(ctx, chatproto.RouteEnter, chatproto.AppendEnter(nil, name, rid)); err != nil {
		r.fail(ctx, "enter", err)
		return
	}
	r.enters.Add(1)
	for hop := 0; ; hop++ {
		for k := range o.Chats {
			if !pause(ctx, o.ChatInterval) {
				return
			}
			body := chatproto.AppendSend(nil, rid, "soak "+strconv.Itoa(k), name, "*")
			if _, err := c.Call(ctx, chatproto.RouteSend, body); err != nil {
				r.fail(ctx, "chat", err)
				return
			}
			r.chats.Add(1)
		}
		if hop == o.Hops {
			return
		}
		rid = otherRoom(rng, o.Rooms, rid)
		if _, err := c.Call(ctx, chatproto.RouteSwitch, chatproto.AppendSwitch(nil, rid)); err != nil {
			r.fail(ctx, "hop", err)
			return
		}
		r.hops.Add(1)
	}
}

// otherRoom picks a room other than cur (when there are two or more).
func otherRoom(rng *rand.Rand, rooms int, cur string) string {
	for {
		rid := "soak-room-" + strconv.Itoa(rng.IntN(rooms))
		if rid != cur || rooms < 2 {
			return rid
		}
	}
}

// pause waits d or until ctx ends; it reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool { return pace.Sleep(ctx, d) == nil }
