package driver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
)

// Split makes a run one part of a run split over several driver processes
// (bench/workers coordinates them over NATS). Part Index of Count owns the
// clients [Index*n/Count, (Index+1)*n/Count) of the scenario's n: it
// connects them and sends their messages. Rooms span parts.
//
// Accounting across parts: the sender's part owns a message's entry, as in
// a whole run. Its expected recipients are the room's stable members of
// every part, as the barrier before the phase published them. Receivers on
// other parts classify a delivery by their own membership and send the
// counts back to the owner (Send; Receipts brings them in), so drain and
// finalize work on the owner as in a whole run. Room switches (hop phases)
// are not accounted across parts, and Run refuses them: the expected
// recipients of a message are its room's members at the send, and during a
// hop phase the members on other parts move at any moment, while a part
// learns the other parts' rooms only at the barriers. Counting them would
// take every switch's ordering against every send across processes, which
// only the server knows.
//
// Latency: stamps carry the scheduled time on the run clock, this process's
// client.Now plus ClockShift (nanoseconds of the coordinator's wall clock),
// so a receiver on another part measures against the sender's schedule.
type Split struct {
	Index, Count int
	// ClockShift turns client.Now into the run clock (unix nanoseconds of
	// the coordinator's wall clock).
	ClockShift int64
	// Barrier is called before every phase (phase = its index) and once
	// after the last one (phase = len(Phases)), with the room of each of
	// this part's clients (-1: none; index 0 is the part's first client).
	// When every part has reached the same barrier, it calls apply with the
	// room of every client of the run (len = Clients); it returns at the
	// phase's common start, which it sets only once every part has applied
	// the membership (no part sends to rooms another part does not know
	// yet). An error ends the run.
	Barrier func(ctx context.Context, phase int, local []int32, apply func(global []int32) error) error
	// Send ships a batch of receipts (deliveries of messages part owner
	// sent) to that part. It must not block for long.
	Send func(owner int, batch []byte)
	// Receipts brings the batches the other parts sent for this part's
	// messages; Run reads it until the run ends.
	Receipts <-chan []byte
}

// Bounds returns the clients [lo, hi) that part index of count owns.
func Bounds(clients, index, count int) (lo, hi int) {
	return clients * index / count, clients * (index + 1) / count
}

// CheckSplit reports why s cannot run split over parts (nil when it can).
func CheckSplit(s *scenario.Scenario, parts int) error {
	if parts <= 1 {
		return nil
	}
	if s.Clients < parts {
		return fmt.Errorf("scenario %s has %d clients: fewer than the %d workers", s.Name, s.Clients, parts)
	}
	for _, p := range s.Phases {
		if p.Kind == scenario.KindHop {
			return fmt.Errorf("scenario %s cannot run over workers: its phase %q switches rooms (switchRoom), and a message's expected recipients are its room's members when it is sent, while a worker learns the other workers' rooms only at the barriers between phases; run it without --workers (one driver process drives up to about 19,900 clients)", s.Name, p.Name)
		}
	}
	return nil
}

// splitState is the driver's side of a Split.
type splitState struct {
	Split
	lo, hi  int32
	owner   []int32 // part of each client
	rc      []receiptShard
	stopc   chan struct{}
	done    sync.WaitGroup
	applied atomic.Int64 // receipts applied (deliveries of remote receivers)
}

const receiptShards = 16

// receiptShard aggregates the remote-owned deliveries of a shard of gids
// until the next flush.
type receiptShard struct {
	mu  sync.Mutex
	agg []map[uint64]*receipt // by owner part
}

type receipt struct {
	deliv, extra uint32
	last         int64 // latest receipt, run clock
}

// receiptFlush is how often receivers' counts go back to the senders'
// parts: it adds to the drain, not to any measured latency.
const receiptFlush = 20 * time.Millisecond

func newSplitState(sp *Split, clients int) *splitState {
	st := &splitState{Split: *sp, stopc: make(chan struct{})}
	lo, hi := Bounds(clients, sp.Index, sp.Count)
	st.lo, st.hi = int32(lo), int32(hi)
	st.owner = make([]int32, clients)
	for p := range sp.Count {
		a, b := Bounds(clients, p, sp.Count)
		for i := a; i < b; i++ {
			st.owner[i] = int32(p)
		}
	}
	st.rc = make([]receiptShard, receiptShards)
	for i := range st.rc {
		st.rc[i].agg = make([]map[uint64]*receipt, sp.Count)
		for p := range sp.Count {
			st.rc[i].agg[p] = map[uint64]*receipt{}
		}
	}
	return st
}

// owns reports whether client i is this process's (always, in a whole run).
func (d *driver) owns(i int32) bool {
	return d.split == nil || (i >= d.split.lo && i < d.split.hi)
}

// shift is the run clock's offset from client.Now (0 in a whole run).
func (d *driver) shift() int64 {
	if d.split == nil {
		return 0
	}
	return d.split.ClockShift
}

// ownedCount is the number of clients this process drives.
func (d *driver) ownedCount() int {
	if d.split == nil {
		return len(d.clients)
	}
	return int(d.split.hi - d.split.lo)
}

// barrier waits for every part before phase pi and applies the other parts'
// membership to this process's copy of the rooms.
func (d *driver) barrier(ctx context.Context, pi int) error {
	sp := d.split
	if sp == nil {
		return nil
	}
	local := make([]int32, sp.hi-sp.lo)
	for i := range local {
		local[i] = d.clients[sp.lo+int32(i)].cur.Load()
	}
	return sp.Barrier(ctx, pi, local, func(global []int32) error { return d.applyMembership(pi, global) })
}

// applyMembership makes this part's copy of the rooms hold the other
// parts' clients where global says they are.
func (d *driver) applyMembership(pi int, global []int32) error {
	if len(global) != len(d.clients) {
		return fmt.Errorf("barrier before phase %d: membership of %d clients, want %d", pi, len(global), len(d.clients))
	}
	for i, v := range d.clients {
		if d.owns(int32(i)) {
			continue
		}
		want := global[i]
		if want >= int32(len(d.rooms)) {
			return fmt.Errorf("barrier before phase %d: client %d in room %d of %d", pi, i, want, len(d.rooms))
		}
		cur := v.cur.Load()
		if cur == want {
			continue
		}
		if cur >= 0 {
			d.rooms[cur].leaveMember(v.idx)
		}
		if want >= 0 {
			d.rooms[want].arrived(v.idx, false)
		}
		v.cur.Store(want)
	}
	return nil
}

// onRemoteChat accounts a delivery of a message another part sent: the
// receiver classifies it by its own membership (rooms do not change while
// parts send), the count goes back to the owner.
func (d *driver) onRemoteChat(v *vclient, p *client.Push, st stamp, owner int32) {
	r, dup := d.checkSeq(v, st)
	if dup {
		return
	}
	room := d.clients[st.sender].cur.Load() // the sender's room, as the barrier published it
	_, _, target, ok := client.ChatFields(p)
	private := ok && string(target) != `*` && string(target) != `"*"`
	recipient := room >= 0 && r == room && !v.trans.Load() && (!private || string(target) == v.name || string(target) == v.qname)
	if !recipient {
		v.rec.Add(metrics.Misrouted, 1)
		if room >= 0 {
			d.rooms[room].misrouted.Add(1)
		}
		d.log.Debug("misrouted onChat", "to", v.name, "sender", st.sender, "gid", st.gid)
		return
	}
	at := p.At + d.shift()
	sh := &d.split.rc[st.gid%receiptShards]
	sh.mu.Lock()
	m := sh.agg[owner]
	rc := m[st.gid]
	if rc == nil {
		rc = &receipt{}
		m[st.gid] = rc
	}
	rc.deliv++
	rc.last = max(rc.last, at)
	sh.mu.Unlock()
	v.rec.Record(metrics.OpDelivery, time.Duration(at-st.intended))
}

// startSplit runs the receipt flusher and the receipt applier.
func (d *driver) startSplit() (stop func()) {
	sp := d.split
	if sp == nil {
		return func() {}
	}
	sp.done.Add(2)
	go func() {
		defer sp.done.Done()
		t := time.NewTicker(receiptFlush)
		defer t.Stop()
		for {
			select {
			case <-sp.stopc:
				d.flushReceipts()
				return
			case <-t.C:
				d.flushReceipts()
			}
		}
	}()
	go func() {
		defer sp.done.Done()
		for {
			select {
			case <-sp.stopc:
				return
			case b, ok := <-sp.Receipts:
				if !ok {
					return
				}
				if err := d.applyReceipts(b); err != nil {
					d.protoErrs.Add(1)
					d.ctl.Error(metrics.OpDelivery, 0, metrics.KindProtocol)
					d.log.Warn("receipts", "err", err)
				}
			}
		}
	}()
	return func() { close(sp.stopc); sp.done.Wait() }
}

// flushReceipts sends every part the deliveries of its messages seen here
// since the last flush.
func (d *driver) flushReceipts() {
	sp := d.split
	for owner := range sp.Count {
		var b []byte
		for i := range sp.rc {
			sh := &sp.rc[i]
			sh.mu.Lock()
			m := sh.agg[owner]
			if len(m) > 0 {
				for gid, r := range m {
					b = appendReceipt(b, gid, r)
				}
				sh.agg[owner] = make(map[uint64]*receipt, len(m))
			}
			sh.mu.Unlock()
		}
		if len(b) > 0 {
			sp.Send(owner, b)
		}
	}
}

// A receipt batch is a sequence of uvarints: gid, deliveries, extra
// deliveries, latest receipt (run clock).
func appendReceipt(b []byte, gid uint64, r *receipt) []byte {
	b = binary.AppendUvarint(b, gid)
	b = binary.AppendUvarint(b, uint64(r.deliv))
	b = binary.AppendUvarint(b, uint64(r.extra))
	return binary.AppendUvarint(b, uint64(max(r.last, 0)))
}

var errReceipt = errors.New("malformed receipt batch")

// applyReceipts adds another part's deliveries of this part's messages.
func (d *driver) applyReceipts(b []byte) error {
	for len(b) > 0 {
		var v [4]uint64
		for k := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return errReceipt
			}
			v[k], b = x, b[n:]
		}
		e := d.tab.get(v[0])
		if e == nil || v[1] > 1<<31 || v[2] > 1<<31 {
			return fmt.Errorf("%w: gid %d (deliveries %d, extra %d)", errReceipt, v[0], v[1], v[2])
		}
		e.delivered.Add(int32(v[1]))
		e.extra.Add(int32(v[2]))
		at := int64(v[3]) - d.shift()
		for {
			l := e.last.Load()
			if at <= l || e.last.CompareAndSwap(l, at) {
				break
			}
		}
		d.split.applied.Add(int64(v[1] + v[2]))
	}
	return nil
}

// scaledRate is an enter or leave phase's arrival rate for this part: the
// parts share the scenario's rate.
func (d *driver) scaledRate(rate float64) float64 {
	if d.split == nil {
		return rate
	}
	return rate / float64(d.split.Count)
}

// scaledConc is an enter or leave phase's concurrency for this part.
func (d *driver) scaledConc(conc int) int {
	if d.split == nil || conc <= 0 {
		return conc
	}
	return max(1, (conc+d.split.Count-1)/d.split.Count)
}
