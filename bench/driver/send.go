package driver

import (
	"container/heap"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/pace"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/chatproto"
)

type evKind uint8

const (
	evChat evKind = iota
	evBurst
	evHop
)

type event struct {
	at   int64 // intended time (client.Now)
	cl   int32
	kind evKind
}

type evHeap []event

func (h evHeap) Len() int           { return len(h) }
func (h evHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h evHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *evHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *evHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func expGap(v *vclient, rate float64) int64 {
	return int64(v.rnd.ExpFloat64() / rate * float64(time.Second))
}

// sendPhase runs a chat, storm or hop phase: workers, each owning a share
// of the clients, fire events at their intended times; then the driver waits
// for the phase's messages to drain and accounts for them.
func (d *driver) sendPhase(ctx context.Context, pi int, p scenario.Phase) error {
	firstGid := d.tab.next.Load()
	start := client.Now()
	end := start + int64(p.Duration)
	nw := 4 * runtime.GOMAXPROCS(0)
	if nw > len(d.clients) {
		nw = len(d.clients)
	}
	if nw < 1 {
		nw = 1
	}
	var wg sync.WaitGroup
	for w := range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.worker(ctx, pi, p, w, nw, start, end)
		}()
	}
	wg.Wait()
	// The phase lasts its Duration, or until its sends drained if that takes
	// longer: deliveries_per_s is over the phase's wall time. The burst
	// throughput is over its active window (first scheduled send to last
	// delivery: active_s, active_deliveries_per_s).
	lastGid := d.tab.next.Load()
	d.drain(ctx, firstGid, lastGid)
	d.finalize(firstGid, lastGid)
	d.active[pi] = d.activeWindow(firstGid, lastGid)
	if wait := end - client.Now(); wait > 0 {
		if err := pace.Sleep(ctx, time.Duration(wait)); err != nil {
			return err
		}
	}
	if p.Kind == scenario.KindHop {
		return d.probeRooms(ctx, p.Name)
	}
	return nil
}

// activeWindow is the time from the first scheduled send of [from, to) to
// its last delivery (0 when nothing was delivered).
func (d *driver) activeWindow(from, to uint64) time.Duration {
	first, last := int64(0), int64(0)
	d.tab.each(from, to, func(gid uint64, e *entry) {
		if e.roomSeq == 0 {
			return // never sent
		}
		if first == 0 || e.intended < first {
			first = e.intended
		}
		last = max(last, e.last.Load())
	})
	if first == 0 || last <= first {
		return 0
	}
	return time.Duration(last - first)
}

func (d *driver) worker(ctx context.Context, pi int, p scenario.Phase, w, nw int, start, end int64) {
	h := evHeap{}
	hop := p.Kind == scenario.KindHop
	for i := w; i < len(d.clients); i += nw {
		if !d.owns(int32(i)) {
			continue
		}
		v := d.clients[i]
		if v.rnd == nil {
			v.rnd = d.s.ClientRand(i)
		}
		switch p.Kind {
		case scenario.KindStorm:
			h = append(h, event{at: start, cl: int32(i), kind: evBurst})
		case scenario.KindChat, scenario.KindHop:
			if p.Rate > 0 {
				h = append(h, event{at: start + expGap(v, p.Rate), cl: int32(i), kind: evChat})
			}
			if hop && p.HopRate > 0 && d.s.Pick(i, p.HopShare, p.Name) {
				h = append(h, event{at: start + expGap(v, p.HopRate), cl: int32(i), kind: evHop})
			}
		}
	}
	heap.Init(&h)
	sb := &sendBuf{}
	payload := p.PayloadBytes(d.s)
	timer := pace.NewTimer()
	defer timer.Close()
	for h.Len() > 0 {
		ev := h[0]
		if ev.at >= end {
			break
		}
		if timer.Wait(ctx, time.Duration(ev.at-client.Now())) != nil {
			return
		}
		v := d.clients[ev.cl]
		next := int64(-1)
		switch ev.kind {
		case evChat:
			d.send(v, ev.at, pi, p, payload, sb)
			next = ev.at + expGap(v, p.Rate)
		case evBurst:
			for range max(p.Burst, 1) {
				d.send(v, ev.at, pi, p, payload, sb)
			}
			if p.BurstEvery > 0 {
				next = ev.at + int64(p.BurstEvery)
			}
		case evHop:
			d.hop(v, ev.at)
			next = ev.at + expGap(v, p.HopRate)
		}
		if next >= 0 && next < end {
			h[0].at = next
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
}

type sendBuf struct{ body []byte }

// send schedules nothing: it sends one message now, stamped with its
// intended time, and accounts for it.
func (d *driver) send(v *vclient, intended int64, pi int, p scenario.Phase, payload int, sb *sendBuf) {
	c := v.c.Load()
	ri := v.cur.Load()
	if c == nil || ri < 0 || v.trans.Load() {
		d.skipped.Add(1)
		return
	}
	r := d.rooms[ri]
	rec := v.rec
	gid, e := d.tab.alloc()
	if e == nil {
		d.skipped.Add(1)
		return
	}
	e.intended = intended
	e.sender = v.idx
	e.target = -1
	e.room = ri
	e.phase = int16(pi)
	e.inflight = -1
	target := `"*"`
	if p.PrivateShare > 0 && v.rnd.Float64() < p.PrivateShare {
		if t := d.pickTarget(v, ri); t >= 0 {
			e.target = t
			target = d.clients[t].qname
		}
	}
	if !r.beginSend(e) {
		e.failed = true
		d.skipped.Add(1)
		return
	}
	v.seq++
	seq := v.seq
	now := client.Now()
	lag := time.Duration(now - intended)
	rec.Record(d.opLag, lag)
	late := lag > d.opts.LateThreshold
	if late {
		rec.Add(metrics.LateSends, 1)
	}
	if openModel(p.Kind) {
		d.openSent.Add(1)
		if late {
			d.openLate.Add(1)
		}
	}
	b := sb.body[:0]
	b = append(b, `{"rid":`...)
	b = append(b, r.qid...)
	b = append(b, `,"content":"`...)
	b = appendStamp(b, gid, v.idx, seq, intended+d.shift(), payload)
	b = append(b, `","from":`...)
	b = append(b, v.qname...)
	b = append(b, `,"target":`...)
	b = append(b, target...)
	b = append(b, '}')
	sb.body = b
	rec.Add(metrics.Sent, 1)
	rec.Add(metrics.Requests, 1)
	d.unacked.Add(1)
	err := c.Request(chatproto.RouteSend, b, func(body []byte, at int64, err error) {
		if err == nil {
			err = client.ParseError(chatproto.RouteSend, body)
		}
		if err != nil {
			code, kind := errCode(err)
			if code == chatproto.CodeFailed && e.target >= 0 && !r.isMember(e.target) {
				// the private message's target switched rooms meanwhile:
				// pomelo's "unknown target", a race of the scenario, not an error
				d.targetMoved.Add(1)
			} else {
				rec.Error(metrics.OpSendAck, code, kind)
			}
			r.endSend(e, true)
		} else {
			rec.Record(metrics.OpSendAck, time.Duration(at-intended))
			r.endSend(e, false)
		}
		e.acked.Store(true)
		d.unacked.Add(-1)
	})
	if err != nil {
		code, kind := errCode(err)
		rec.Error(metrics.OpSendAck, code, kind)
		r.endSend(e, true)
		e.acked.Store(true)
		d.unacked.Add(-1)
	}
}

// pickTarget picks another member of room ri for a private message.
func (d *driver) pickTarget(v *vclient, ri int32) int32 {
	r := d.rooms[ri]
	cands := d.asg.Members(int(v.home))
	for range 4 {
		if len(cands) < 2 {
			return -1
		}
		t := int32(cands[v.rnd.IntN(len(cands))])
		if t == v.idx {
			continue
		}
		r.mu.Lock()
		_, ok := r.members[t]
		r.mu.Unlock()
		if ok {
			return t
		}
	}
	return -1
}

// hop moves v to another room on the same socket (switchRoom).
func (d *driver) hop(v *vclient, intended int64) {
	c := v.c.Load()
	from := v.cur.Load()
	if c == nil || from < 0 || v.trans.Load() {
		return
	}
	to := int32(d.asg.HopTarget(int(from), v.rnd))
	if to == from {
		return
	}
	v.trans.Store(true)
	d.rooms[from].switchAway(v.idx)
	d.rooms[to].arriving(v.idx)
	v.moveAt.Store(intended)
	rec := v.rec
	rec.Add(metrics.Requests, 1)
	body := []byte(`{"rid":` + d.rooms[to].qid + `}`)
	done := func(at int64, err error) {
		d.rooms[from].switchedAway(v.idx, err == nil)
		if err != nil {
			code, kind := errCode(err)
			rec.Error(metrics.OpSwitch, code, kind)
			d.rooms[to].cancelArrival()
			v.cur.Store(-1) // where the server put it is unknown: it sends no more
		} else {
			rec.Record(metrics.OpSwitch, time.Duration(at-intended))
			d.rooms[to].arrived(v.idx, true)
			v.cur.Store(to)
		}
		v.trans.Store(false)
	}
	err := c.Request(chatproto.RouteSwitch, body, func(body []byte, at int64, err error) {
		if err == nil {
			err = client.ParseError(chatproto.RouteSwitch, body)
		}
		done(at, err)
	})
	if err != nil {
		done(client.Now(), err)
	}
}

// cancelArrival undoes arriving after a failed switch; m's transit stint
// stays open (where the server put it is unknown).
func (r *room) cancelArrival() {
	r.mu.Lock()
	if r.transitIn > 0 {
		r.transitIn--
	}
	r.mu.Unlock()
}

// drain waits until every message of [from, to) is acknowledged and has
// reached its expected recipients, or DrainTimeout passes without progress.
func (d *driver) drain(ctx context.Context, from, to uint64) {
	deadline := time.Now().Add(d.opts.DrainTimeout)
	for d.unacked.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	var open []uint64
	d.tab.each(from, to, func(gid uint64, e *entry) {
		open = append(open, gid)
	})
	for len(open) > 0 && ctx.Err() == nil {
		keep := open[:0]
		for _, gid := range open {
			e := d.tab.get(gid)
			r := d.rooms[e.room]
			r.mu.Lock()
			want := e.expected
			if e.failed {
				want = 0
			}
			r.mu.Unlock()
			if e.delivered.Load() < want || !e.acked.Load() {
				keep = append(keep, gid)
			}
		}
		open = keep
		if len(open) == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finalize turns the entries of [from, to) into per-room and run counts,
// and records the time to the last recipient of every complete broadcast.
func (d *driver) finalize(from, to uint64) {
	rec := d.ctl
	d.tab.each(from, to, func(gid uint64, e *entry) {
		r := d.rooms[e.room]
		r.mu.Lock()
		defer r.mu.Unlock()
		st := &r.stats
		deliv, extra := int64(e.delivered.Load()), int64(e.extra.Load())
		st.Delivered += deliv + extra
		if e.roomSeq == 0 {
			return // never sent (sender was not a member)
		}
		st.Sent++
		if e.failed {
			// nothing was expected: whatever arrived went to members anyway
			st.Failed++
			st.Extra += deliv + extra
			rec.Add(metrics.Extra, deliv+extra)
			return
		}
		exp := int64(e.expected)
		st.Expected += exp
		rec.Add(metrics.Expected, exp)
		st.Extra += extra
		rec.Add(metrics.Extra, extra)
		if deliv < exp {
			st.Lost += exp - deliv
			rec.Add(metrics.Lost, exp-deliv)
		} else if deliv > exp {
			// more expected recipients than counted: the receivers' view
			// (presence) and the sender's (expected) disagree; not a loss
			st.Extra += deliv - exp
			rec.Add(metrics.Extra, deliv-exp)
		}
		if e.target < 0 && exp > 0 && deliv >= exp {
			rec.Record(metrics.OpLastRecipient, time.Duration(e.last.Load()-e.intended))
		}
	})
}
