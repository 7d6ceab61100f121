package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/pace"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/chatproto"
)

// arrivals runs fn for each item: open model (one start every 1/rate s at
// its intended time, however long the previous ones take) or closed model
// (conc at a time). fn gets the intended start (client.Now). It returns when
// every started fn has returned; limit > 0 stops starting new ones after it.
//
// maxInflight caps the open model's outstanding fns (each join holds a gate
// and a connector socket: unbounded, a slow server would run both processes
// out of file descriptors); an arrival that waits for a slot keeps its
// intended time, so the wait shows in its latency.
func arrivals(ctx context.Context, items []int32, rate float64, conc, maxInflight int, limit time.Duration, fn func(ctx context.Context, item int32, intended int64)) error {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	var wg sync.WaitGroup
	if rate > 0 {
		t0 := client.Now()
		gap := float64(time.Second) / rate
		sem := make(chan struct{}, max(maxInflight, 1))
		timer := pace.NewTimer()
		defer timer.Close()
		for k, it := range items {
			at := t0 + int64(float64(k)*gap)
			timer.Wait(ctx, time.Duration(at-client.Now())) // ctx is checked below
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				fn(ctx, it, at)
			}()
		}
	} else {
		if conc <= 0 {
			conc = 1
		}
		next := make(chan int32)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for it := range next {
					fn(ctx, it, client.Now())
				}
			}()
		}
	feed:
		for _, it := range items {
			select {
			case next <- it:
			case <-ctx.Done():
				break feed
			}
		}
		close(next)
	}
	wg.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil // the phase's time limit, not a failure
	}
	return ctx.Err()
}

func (d *driver) enterPhase(ctx context.Context, p scenario.Phase) error {
	var todo []int32
	for _, v := range d.clients {
		if v.c.Load() == nil && d.owns(v.idx) {
			todo = append(todo, v.idx)
		}
	}
	for _, i := range todo {
		d.clients[i].addExp.Store(0)
		d.clients[i].addSeen.Store(0)
	}
	// fail fast: when the first joins all fail to reach the target, stop
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.refused.Store(0)
	firstN := int64(min(unreachableAfter, len(todo)))
	joined := d.joined.Load()
	err := arrivals(ctx, todo, d.scaledRate(p.ArrivalRate), d.scaledConc(p.Concurrency), d.opts.MaxInflightJoins, p.Duration, func(ctx context.Context, i int32, intended int64) {
		if !d.join(ctx, d.clients[i], intended) && d.joined.Load() == joined && d.refused.Add(1) >= firstN {
			cancel(fmt.Errorf("%w: the first %d connections to %s all failed (%v)", ErrUnreachable, firstN, d.opts.Target, lastErr(&d.lastDialErr)))
		}
	})
	if cause := context.Cause(ctx); errors.Is(cause, ErrUnreachable) {
		return cause
	}
	if len(todo) > 0 && d.joined.Load() == joined && d.connected.Load() == 0 && err == nil {
		return fmt.Errorf("%w: no client connected to %s by the end of the enter phase (%v)", ErrUnreachable, d.opts.Target, lastErr(&d.lastDialErr))
	}
	// wait for the onAdd fan-out: every member already in must see the
	// newcomer's onAdd (the newcomer gets none of itself, as in stock pomelo)
	missing := func() (n int64) {
		for _, i := range todo {
			v := d.clients[i]
			if m := v.addExp.Load() - v.addSeen.Load(); m > 0 {
				n += int64(m)
			}
		}
		return n
	}
	deadline := time.Now().Add(d.opts.DrainTimeout)
	for missing() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	// one error per join whose onAdd fan-out is incomplete (a join is one
	// request), the missing pushes in the room stats
	for _, i := range todo {
		v := d.clients[i]
		if m := v.addExp.Load() - v.addSeen.Load(); m > 0 {
			r := d.rooms[v.home]
			r.mu.Lock()
			r.stats.AddMiss += int64(m)
			r.mu.Unlock()
			d.ctl.Error(metrics.OpEnter, 0, "onadd_missing")
		}
	}
	return err
}

// errBox holds errors of any type in an atomic.Value.
type errBox struct{ err error }

func (b errBox) String() string { return b.err.Error() }

func lastErr(v *atomic.Value) string {
	if b, ok := v.Load().(errBox); ok {
		return b.String()
	}
	return "no error recorded"
}

// ErrUnreachable: the run could not reach its target (the first joins all
// failed, or no client connected in an enter phase).
var ErrUnreachable = errors.New("target unreachable")

// unreachableAfter: this many failed joins in a row from the start of an
// enter phase, with none succeeding, mean the target cannot be reached.
const unreachableAfter = 20

// KindStalled is the error kind (errors_by_kind) of a client whose server
// stopped reading its socket (client.ErrSendStalled): the client failed, and
// so did its requests in flight.
const KindStalled = "stalled"

func errCode(err error) (int, string) {
	var re *client.ResponseError
	var se *client.StepError
	switch {
	case errors.As(err, &re):
		return re.Code, metrics.KindResponse
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return 0, metrics.KindTimeout
	case errors.Is(err, context.Canceled):
		return 0, "canceled"
	case errors.Is(err, client.ErrKicked):
		return 0, metrics.KindKicked
	case errors.Is(err, client.ErrSendStalled):
		return 0, KindStalled
	case errors.Is(err, client.ErrClosed):
		return 0, metrics.KindClosed
	case errors.As(err, &se) && se.Step == "connect":
		return 0, metrics.KindDial
	}
	return 0, metrics.KindProtocol
}

// join: queryEntry at the gate, connect to the connector, handshake, enter.
// It reports whether the client got as far as the connector (connected).
func (d *driver) join(ctx context.Context, v *vclient, intended int64) bool {
	rec := d.ctl // control-plane ops share one recorder: fewer histograms per run
	rec.Add(metrics.Requests, 1)
	t0 := time.Now()
	addr, err := d.fleet.QueryEntry(ctx, d.opts.Target, v.name)
	if err != nil {
		code, kind := errCode(err)
		if kind == metrics.KindProtocol {
			kind = metrics.KindDial
		}
		rec.Error(metrics.OpQueryEntry, code, kind)
		d.log.Debug("queryEntry", "user", v.name, "err", err)
		d.lastDialErr.Store(errBox{err})
		return false
	}
	rec.Record(metrics.OpQueryEntry, time.Since(t0))
	c, tm, err := d.fleet.DialAs(ctx, addr, &d.handl, v.idx) // ID before any push
	if err != nil {
		code, kind := errCode(err)
		rec.Error(metrics.OpConnect, code, kind)
		d.log.Debug("dial", "user", v.name, "err", err)
		d.lastDialErr.Store(errBox{err})
		return false
	}
	d.joined.Add(1)
	rec.Record(metrics.OpConnect, tm.Connect)
	rec.Record(metrics.OpHandshake, tm.Handshake)
	v.c.Store(c)
	v.localStop.Store(false)
	d.connected.Add(1)
	rec.Add(metrics.Connected, 1)

	r := d.rooms[v.home]
	body := chatproto.AppendEnter(nil, v.name, r.id)
	v.moveAt.Store(client.Now())
	r.mu.Lock()
	// the members already in (those whose enter answered: they are in the
	// server's room before this enter; one still entering may or may not
	// be, and is not counted); in a split run, those of this part
	v.addExp.Store(int32(d.ownedMembers(r)))
	r.mu.Unlock()
	t1 := time.Now()
	resp, err := c.Call(ctx, chatproto.RouteEnter, body)
	if err != nil {
		code, kind := errCode(err)
		rec.Error(metrics.OpEnter, code, kind)
		d.log.Debug("enter", "user", v.name, "err", err)
		v.addExp.Store(0)
		d.drop(v, c)
		return true
	}
	rec.Record(metrics.OpEnter, time.Since(t1))
	var users struct {
		Users []string `json:"users"`
	}
	if err := json.Unmarshal(resp, &users); err != nil || !slices.Contains(users.Users, v.name) {
		rec.Error(metrics.OpEnter, 0, metrics.KindProtocol)
		d.log.Debug("enter: user list without self", "user", v.name, "body", string(resp))
	}
	r.arrived(v.idx, false)
	v.cur.Store(v.home)
	rec.Record(d.opJoin, time.Duration(client.Now()-intended))
	return true
}

// drop closes a client that failed half-way (not a scenario leave).
func (d *driver) drop(v *vclient, c *client.Client) {
	v.localStop.Store(true)
	if v.c.CompareAndSwap(c, nil) {
		d.connected.Add(-1)
		v.rec.Add(metrics.Connected, -1)
	}
	if r := v.cur.Swap(-1); r >= 0 {
		d.rooms[r].leaveMember(v.idx)
	}
	c.Close()
}

func (d *driver) leavePhase(ctx context.Context, p scenario.Phase) error {
	share := p.Share
	if share <= 0 {
		share = 1
	}
	var todo, remote []int32
	leavers := make([]int64, len(d.rooms))
	for _, v := range d.clients {
		own := d.owns(v.idx)
		// another part's clients: in a room as the barrier published them
		if (own && v.c.Load() == nil) || v.cur.Load() < 0 {
			continue
		}
		if share >= 1 || d.s.Pick(int(v.idx), share, p.Name) {
			v.leaving.Store(true)
			if own {
				todo = append(todo, v.idx)
			} else {
				v.leftRoom.Store(v.cur.Load())
				remote = append(remote, v.idx)
			}
			leavers[v.cur.Load()]++
		}
	}
	// every member that stays must see one onLeave per leaver of its room
	// (in a split run: every member of this part)
	stays := make([]int32, len(d.rooms))
	for r, n := range leavers {
		if n == 0 {
			continue
		}
		stay := 0
		for _, m := range d.rooms[r].memberList() {
			if !d.clients[m].leaving.Load() && d.owns(m) {
				stay++
			}
		}
		d.rooms[r].leaveExpected.Add(n * int64(stay))
		stays[r] = int32(stay)
	}
	for _, i := range todo {
		v := d.clients[i]
		v.leaveSeen.Store(0)
		v.leaveExp.Store(stays[v.cur.Load()])
	}
	err := arrivals(ctx, todo, d.scaledRate(p.ArrivalRate), d.scaledConc(p.Concurrency), d.opts.MaxInflightJoins, p.Duration, func(ctx context.Context, i int32, intended int64) {
		d.leave(d.clients[i], intended)
	})
	// the other parts' leavers leave at the same time: out of this part's
	// copy of the rooms (the probe compares it with the server's)
	for _, i := range remote {
		v := d.clients[i]
		if r := v.cur.Swap(-1); r >= 0 {
			d.rooms[r].leaveMember(v.idx)
		}
	}
	// wait for the onLeave pushes
	deadline := time.Now().Add(d.opts.DrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, r := range d.rooms {
			if r.leaveSeen.Load() < r.leaveExpected.Load() {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range d.rooms {
		miss := r.leaveExpected.Load() - r.leaveSeen.Load()
		if miss > 0 {
			r.mu.Lock()
			r.stats.LeaveMiss += miss
			r.mu.Unlock()
		}
		r.leaveExpected.Store(0)
		r.leaveSeen.Store(0)
	}
	// one error per leaver whose onLeave did not reach every remaining
	// member (a leave is one request); the missing pushes are in the room stats
	for _, i := range todo {
		v := d.clients[i]
		if v.c.Load() == nil && v.leaveSeen.Load() < v.leaveExp.Load() {
			d.ctl.Error(metrics.OpLeave, 0, "onleave_missing")
		}
		v.leaving.Store(false)
	}
	for _, i := range remote {
		d.clients[i].leaving.Store(false)
	}
	if err != nil {
		return err
	}
	return d.probeRooms(ctx, p.Name)
}

func (d *driver) leave(v *vclient, intended int64) {
	c := v.c.Load()
	if c == nil {
		return
	}
	v.rec.Add(metrics.Requests, 1)
	r := v.cur.Swap(-1)
	v.leftRoom.Store(r)
	v.moveAt.Store(intended)
	if r >= 0 {
		d.rooms[r].leaveMember(v.idx)
	}
	v.localStop.Store(true)
	if v.c.CompareAndSwap(c, nil) {
		d.connected.Add(-1)
		v.rec.Add(metrics.Connected, -1)
	}
	c.Close()
}

// probeRooms checks that membership settled: a fresh client enters every
// room and compares the user list it gets with the members the driver
// knows; each name too many (ghost) or missing counts as a "ghost" error.
func (d *driver) probeRooms(ctx context.Context, phase string) error {
	if d.split != nil && d.split.Index != 0 {
		return nil // one part probes for all (the same probe names would collide)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for ri, r := range d.rooms {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			// closes reach the server asynchronously: membership must
			// settle within the drain timeout, so probe until it matches
			deadline := time.Now().Add(d.opts.DrainTimeout)
			var bad int
			var err error
			for try := 0; ; try++ {
				d.ctl.Add(metrics.Requests, 1) // each probe is a request (queryEntry, connect, enter)
				bad, err = d.probe(ctx, r, fmt.Sprintf("probe-%s-%d-%d", phase, ri, try))
				// retry only a membership that has not settled yet (or a
				// server busy or timing out): an unreachable server fails now
				retry := bad > 0 || (err != nil && retryable(err))
				if !retry || !time.Now().Before(deadline) || ctx.Err() != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				code, kind := errCode(err)
				d.ctl.Error(metrics.OpEnter, code, kind)
				d.log.Warn("probe", "room", r.id, "err", err)
				return
			}
			if bad > 0 {
				r.mu.Lock()
				r.stats.Ghosts += int64(bad)
				r.mu.Unlock()
				// one error per room (one probe request): the names are in the room stats
				d.ctl.Error(metrics.OpEnter, 0, metrics.KindGhost)
			}
		}()
	}
	wg.Wait()
	return nil
}

// retryable reports whether a probe error may go away by itself: a busy or
// timing-out server, not a refused connection.
func retryable(err error) bool {
	code, kind := errCode(err)
	return kind == metrics.KindTimeout || code == chatproto.CodeCapacity || code == chatproto.CodeUnavailable
}

func (d *driver) probe(ctx context.Context, r *room, name string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DrainTimeout)
	defer cancel()
	addr, err := d.fleet.QueryEntry(ctx, d.opts.Target, name)
	if err != nil {
		return 0, err
	}
	c, err := d.fleet.Dial(ctx, addr, &client.Handlers{})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	body := chatproto.AppendEnter(nil, name, r.id)
	resp, err := c.Call(ctx, chatproto.RouteEnter, body)
	if err != nil {
		return 0, err
	}
	var users struct {
		Users []string `json:"users"`
	}
	if err := json.Unmarshal(resp, &users); err != nil {
		return 0, fmt.Errorf("probe %s: %w", r.id, err)
	}
	want := map[string]bool{name: true}
	for _, m := range r.memberList() {
		want[d.clients[m].name] = true
	}
	bad := 0
	prefix := name[:strings.LastIndexByte(name, '-')+1] // earlier probes of this room may still be leaving
	for _, u := range users.Users {
		if !want[u] && strings.HasPrefix(u, prefix) {
			continue
		}
		if !want[u] {
			bad++ // a ghost: the server lists a member that left
			d.log.Warn("ghost member", "room", r.id, "user", u)
		}
		delete(want, u)
	}
	bad += len(want) // members the server does not list
	return bad, nil
}

// ownedMembers counts the room's stable members this process drives (room
// lock held).
func (d *driver) ownedMembers(r *room) int {
	if d.split == nil {
		return len(r.members)
	}
	n := 0
	for m := range r.members {
		if d.owns(m) {
			n++
		}
	}
	return n
}
