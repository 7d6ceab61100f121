package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/pace"
	"github.com/chatbench/chatbench/internal/natsopts"
)

// WorkerOptions configure Serve. Zero values mean the documented defaults.
type WorkerOptions struct {
	// NATS is how to reach NATS (URLs required; credentials, TLS and the
	// subject prefix as the split topology's servers take them).
	NATS natsopts.Options
	// Name identifies the worker to the coordinator; default host-pid.
	Name string
	// Version is this chatbench's commit: the coordinator refuses another.
	Version string
	// Once returns after one run (a local worker); otherwise the worker
	// waits for the next coordinator until ctx ends.
	Once bool
	// Ready is called once the worker is on NATS and announcing itself.
	Ready func(name string)
	// Logger is the worker's own log and, with the level the coordinator
	// asks for, its driver's; nil: stderr.
	Logger *slog.Logger
	// Stderr receives the driver's log (default os.Stderr).
	Stderr *os.File
}

// DefaultName is a worker's name when none is given: host-pid.
func DefaultName() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "worker"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// Serve runs a worker: it announces itself on NATS until a coordinator
// assigns it a part of a run, runs it, ships the results, and (unless
// Once) waits for the next run. It returns nil when ctx ends.
func Serve(ctx context.Context, o WorkerOptions) error {
	if len(o.NATS.URLs) == 0 {
		return errors.New("workers: no NATS URL")
	}
	if o.Name == "" {
		o.Name = DefaultName()
	}
	if strings.ContainsAny(o.Name, " .*>\t") {
		return fmt.Errorf("workers: name %q: use letters, digits, - and _ (no spaces, dots, * or >)", o.Name)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	nc, err := connect(o.NATS, "chatbench worker "+o.Name)
	if err != nil {
		return err
	}
	defer nc.Close()

	w := &worker{o: o, nc: nc, assigns: make(chan *assign, 1), subj: subjects{o.NATS.SubjectPrefix()}}
	sub, err := nc.Subscribe(w.subj.inbox(o.Name), w.onRequest)
	if err != nil {
		return fmt.Errorf("workers: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	host, _ := os.Hostname()
	hi, _ := json.Marshal(hello{Name: o.Name, Version: o.Version, Protocol: Protocol, Host: host, PID: os.Getpid(), BootID: bootID()})
	if err := nc.Publish(w.subj.hello(), hi); err != nil {
		return fmt.Errorf("workers: announce: %w", err)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("workers: announce: %w", err)
	}
	if o.Ready != nil {
		o.Ready(o.Name)
	}
	t := time.NewTicker(helloEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if !w.busy() {
				_ = nc.Publish(w.subj.hello(), hi)
			}
		case a := <-w.assigns:
			err := w.run(ctx, a)
			w.setBusy(false)
			if err != nil {
				o.Logger.Error("run", "run", a.Run, "err", err)
			}
			if o.Once {
				return err
			}
		}
	}
}

type worker struct {
	o       WorkerOptions
	subj    subjects
	nc      *nats.Conn
	assigns chan *assign
	mu      sync.Mutex
	running bool
}

func (w *worker) busy() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.running }

func (w *worker) setBusy(b bool) { w.mu.Lock(); w.running = b; w.mu.Unlock() }

// onRequest answers the coordinator: pings with this clock, assignments
// with an ack (or a refusal when busy).
func (w *worker) onRequest(m *nats.Msg) {
	var rq request
	if err := json.Unmarshal(m.Data, &rq); err != nil {
		respond(m, pong{Err: "bad request: " + err.Error()})
		return
	}
	switch rq.Kind {
	case "ping":
		respond(m, pong{WallNs: time.Now().UnixNano()})
	case "assign":
		if rq.Assign == nil {
			respond(m, pong{Err: "assign without a part"})
			return
		}
		w.mu.Lock()
		if w.running {
			w.mu.Unlock()
			respond(m, pong{Err: "busy with another run"})
			return
		}
		w.running = true
		w.mu.Unlock()
		w.assigns <- rq.Assign
		respond(m, pong{WallNs: time.Now().UnixNano()})
	default:
		respond(m, pong{Err: "unknown request " + rq.Kind})
	}
}

func respond(m *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	_ = m.Respond(b)
}

// run runs one part of a run.
func (w *worker) run(parent context.Context, a *assign) error {
	nc := w.nc
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	log := w.o.Logger.With("run", a.Run, "worker", w.o.Name)

	var asm assembler
	gos := make(chan goMsg, 4)
	receipts := make(chan []byte, 1024)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	sub := func(subj string, h nats.MsgHandler) error {
		s, err := nc.Subscribe(w.subj.run(a.Run, subj), h)
		if err != nil {
			return fmt.Errorf("workers: subscribe %s: %w", subj, err)
		}
		// receipts and membership must not be dropped as a slow consumer
		_ = s.SetPendingLimits(-1, -1)
		subs = append(subs, s)
		return nil
	}
	if err := sub("go", func(m *nats.Msg) {
		data, err := asm.add(m.Data)
		if err != nil || data == nil {
			return
		}
		var g goMsg
		if err := json.Unmarshal(data, &g); err != nil {
			cancel(fmt.Errorf("barrier message: %w", err))
			return
		}
		select {
		case gos <- g:
		case <-ctx.Done():
		}
	}); err != nil {
		return err
	}
	if err := sub("stop", func(m *nats.Msg) {
		var s stopMsg
		_ = json.Unmarshal(m.Data, &s)
		cancel(fmt.Errorf("%w: %s", errStopped, s.Reason))
	}); err != nil {
		return err
	}
	var coordBeat atomic.Int64
	coordBeat.Store(time.Now().UnixNano())
	if err := sub("cbeat", func(*nats.Msg) { coordBeat.Store(time.Now().UnixNano()) }); err != nil {
		return err
	}
	if err := sub(fmt.Sprintf("deliv.%d", a.Index), func(m *nats.Msg) {
		select {
		case receipts <- m.Data:
		case <-ctx.Done():
		}
	}); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("workers: %w", err)
	}

	// heartbeats until the results are out
	beatDone := make(chan struct{})
	var beats sync.WaitGroup
	beats.Add(1)
	go func() {
		defer beats.Done()
		b, _ := json.Marshal(beatMsg{Index: a.Index})
		t := time.NewTicker(beatEvery)
		defer t.Stop()
		for {
			_ = nc.Publish(w.subj.run(a.Run, "beat"), b)
			if silent := time.Since(time.Unix(0, coordBeat.Load())); silent > coordinatorGone {
				cancel(fmt.Errorf("the coordinator is gone (silent for %v)", silent.Round(time.Second)))
			}
			select {
			case <-beatDone:
				return
			case <-t.C:
			}
		}
	}()
	defer func() { close(beatDone); beats.Wait() }()

	// the run clock is the coordinator's wall clock
	shift := time.Now().UnixNano() - client.Now() - a.ClockOffsetNs
	split := &driver.Split{
		Index: a.Index, Count: a.Count, ClockShift: shift, Receipts: receipts,
		Send: func(owner int, batch []byte) {
			_ = nc.Publish(w.subj.run(a.Run, fmt.Sprintf("deliv.%d", owner)), batch)
		},
		Barrier: func(ctx context.Context, phase int, local []int32, apply func([]int32) error) error {
			if err := publishBig(nc, w.subj.run(a.Run, "barrier"), barrierMsg{Index: a.Index, Phase: phase, Local: local}); err != nil {
				return fmt.Errorf("barrier: %w", err)
			}
			// the membership, then (once every part applied it) the start
			applied := false
			for {
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case g := <-gos:
					switch {
					case g.Phase != phase:
						continue
					case !applied && g.Global != nil:
						if err := apply(g.Global); err != nil {
							return err
						}
						applied = true
						b, _ := json.Marshal(barrierMsg{Index: a.Index, Phase: phase})
						if err := nc.Publish(w.subj.run(a.Run, "applied"), b); err != nil {
							return fmt.Errorf("barrier: %w", err)
						}
					case applied && g.Global == nil:
						if err := pace.Sleep(ctx, time.Until(time.Unix(0, g.AtNs+a.ClockOffsetNs))); err != nil {
							return context.Cause(ctx)
						}
						return nil
					}
				}
			}
		},
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(a.LogLevel))
	dlog := slog.New(slog.NewTextHandler(w.o.Stderr, &slog.HandlerOptions{Level: level})).With("worker", w.o.Name)
	opts := driver.Options{
		Scenario: a.Scenario, Target: a.Target, Topology: a.Topology, ServerNice: a.ServerNice, Commit: a.Commit,
		SourceAddrs: a.SourceAddrs, FirstSourceAddr: a.FirstSourceAddr, LateThreshold: a.LateThreshold,
		DrainTimeout: a.DrainTimeout, Logger: dlog, Split: split,
		Progress: &progressWriter{nc: nc, subj: w.subj.run(a.Run, "progress"), index: a.Index},
	}
	log.Info("run", "part", a.Index, "of", a.Count, "target", a.Target)
	res, err := driver.Run(ctx, opts)
	out := resultMsg{Index: a.Index}
	if res != nil {
		out.Summary, out.Rooms, out.MemoryPerClient, out.Connected = res.Summary, res.Rooms, res.MemoryPerClient, res.Connected
	}
	if err != nil && !errors.Is(context.Cause(ctx), errStopped) {
		out.Err = err.Error()
		out.Unreachable = errors.Is(err, driver.ErrUnreachable)
	}
	if perr := publishBig(nc, w.subj.run(a.Run, "result"), out); perr != nil {
		return fmt.Errorf("workers: send results: %w", perr)
	}
	if ferr := nc.FlushTimeout(10 * time.Second); ferr != nil {
		return fmt.Errorf("workers: send results: %w", ferr)
	}
	if out.Err != "" {
		return errors.New(out.Err)
	}
	return nil
}

// errStopped: the coordinator stopped the run.
var errStopped = errors.New("stopped by the coordinator")

const beatEvery = 250 * time.Millisecond

// coordinatorGone: a worker whose coordinator is silent this long ends its part.
const coordinatorGone = 10 * time.Second

// progressWriter publishes the driver's progress lines.
type progressWriter struct {
	nc    *nats.Conn
	subj  string
	index int
}

func (p *progressWriter) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\n")
	m, _ := json.Marshal(progressMsg{Index: p.index, Line: line})
	_ = p.nc.Publish(p.subj, m)
	return len(b), nil
}

// connect dials NATS for the coordinator or a worker.
func connect(o natsopts.Options, name string) (*nats.Conn, error) {
	nc, err := o.Connect(
		nats.Name(name),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(200*time.Millisecond),
		nats.ReconnectBufSize(64<<20),
		nats.PingInterval(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	return nc, nil
}
