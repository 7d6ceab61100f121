package driver

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// entry is the accounting record of one chat message. Fields without atomics
// are written by the sender before the message goes out, or under its room's
// lock; receivers touch only the atomics.
type entry struct {
	intended  int64
	last      atomic.Int64  // latest receipt (client.Now)
	delivered atomic.Int32  // unique deliveries to expected recipients
	extra     atomic.Int32  // unique deliveries to members in transit (room switch)
	pub       atomic.Uint64 // roomSeq, stored once room/target/roomSeq are set (receivers read them after it)
	acked     atomic.Bool
	failed    bool  // the send got an error: nothing is expected (room lock)
	expected  int32 // recipients certain at send time (room lock)
	maybe     int32 // recipients in transit: may or may not receive (room lock)
	sender    int32
	target    int32 // -1: the whole room
	room      int32
	roomSeq   uint64 // room's message counter at send (room lock)
	phase     int16
	inflight  int32 // index in the room's in-flight list, -1 when acked (room lock)
}

const chunkBits = 12

type chunk [1 << chunkBits]entry

// table holds every message entry of a run, indexed by gid, without locks
// on lookups: chunks are published atomically before their messages are sent.
type table struct {
	next   atomic.Uint64
	mu     sync.Mutex
	chunks []atomic.Pointer[chunk]
}

func newTable(maxMessages uint64) *table {
	n := maxMessages>>chunkBits + 1
	return &table{chunks: make([]atomic.Pointer[chunk], n)}
}

// alloc returns a new entry and its gid, or nil when the table is full.
func (t *table) alloc() (uint64, *entry) {
	gid := t.next.Add(1) - 1
	ci := gid >> chunkBits
	if ci >= uint64(len(t.chunks)) {
		return gid, nil
	}
	c := t.chunks[ci].Load()
	if c == nil {
		t.mu.Lock()
		if c = t.chunks[ci].Load(); c == nil {
			c = new(chunk)
			t.chunks[ci].Store(c)
		}
		t.mu.Unlock()
	}
	return gid, &c[gid&(1<<chunkBits-1)]
}

// get returns the entry of gid, or nil for an id never allocated.
func (t *table) get(gid uint64) *entry {
	if gid >= t.next.Load() {
		return nil
	}
	ci := gid >> chunkBits
	if ci >= uint64(len(t.chunks)) {
		return nil
	}
	c := t.chunks[ci].Load()
	if c == nil {
		return nil
	}
	return &c[gid&(1<<chunkBits-1)]
}

// each calls fn for entries [from, to).
func (t *table) each(from, to uint64, fn func(gid uint64, e *entry)) {
	for gid := from; gid < to; gid++ {
		if e := t.get(gid); e != nil {
			fn(gid, e)
		}
	}
}

// room is the driver's knowledge of one room's membership.
type room struct {
	mu         sync.Mutex
	idx        int
	id         string
	qid        string           // id as a JSON string
	members    map[int32]uint64 // stable members -> room message counter when they became stable
	transitIn  int32            // members switching into this room, not yet confirmed
	transitOut int32            // members switching out: the server may still count them in
	msgSeq     uint64
	inflight   []*entry // sent, not yet acknowledged

	// counters read at the end (atomics: receivers add to them)
	dup       atomic.Int64
	ooo       atomic.Int64
	misrouted atomic.Int64 // this room's messages delivered to non-recipients

	// leave accounting
	leaveExpected atomic.Int64 // onLeave pushes expected by remaining members
	leaveSeen     atomic.Int64

	stats RoomStats // filled at finalize (control goroutine)

	pres []presence // every client's presence, by client index (shared by all rooms)
}

// stint is a span of one client's presence in a room, in the room's message
// counter: messages with from < roomSeq <= to were sent during it. A stable
// stint makes the client an expected recipient of those messages, except
// the ones in maybe (in flight when it started switching away); a transit
// stint (switching in or out) makes it a possible one, as do the messages
// in maybe of a transit stint (in flight when it started switching in).
type stint struct {
	room     int32
	transit  bool
	from, to uint64
	maybe    []uint64
}

const openSeq = math.MaxUint64

// maxStints bounds a client's presence history (its oldest stints go).
const maxStints = 8

// presence is a client's recent room history: written under the rooms'
// locks by the control and sender goroutines, read by its reader goroutine
// for every onChat. Writers (rare: room changes) publish a new copy, so the
// reader takes no lock.
type presence struct {
	mu     sync.Mutex // writers
	stints atomic.Pointer[[]stint]
}

// update publishes a copy of the stints changed by fn (p.mu held).
func (p *presence) update(fn func([]stint) []stint) {
	var cur []stint
	if s := p.stints.Load(); s != nil {
		cur = *s
	}
	next := fn(slices.Clone(cur))
	p.stints.Store(&next)
}

func (p *presence) begin(s stint) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.update(func(stints []stint) []stint {
		if len(stints) >= maxStints {
			stints = slices.Delete(stints, 0, 1)
		}
		s.to = openSeq
		return append(stints, s)
	})
	p.mu.Unlock()
}

// end closes the open stint of room (stable or transit) at seq, adding the
// in-flight messages that became uncertain for it.
func (p *presence) end(room int32, transit bool, seq uint64, maybe []uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.update(func(stints []stint) []stint {
		for i := len(stints) - 1; i >= 0; i-- {
			st := &stints[i]
			if st.room == room && st.transit == transit && st.to == openSeq {
				st.to = seq
				// clipped: the published copy shares the array
				st.maybe = append(slices.Clip(st.maybe), maybe...)
				break
			}
		}
		return stints
	})
	p.mu.Unlock()
}

// recipient classes of one delivery
const (
	notRecipient = iota // misrouted
	expectedRecipient
	transitRecipient // extra
)

// class tells whether the client was an expected recipient of the message
// roomSeq of room, a possible one (in transit), or neither.
func (p *presence) class(room int32, seq uint64) int {
	s := p.stints.Load()
	if s == nil {
		return notRecipient
	}
	c := notRecipient
	// newest first: the current stint decides most deliveries
	for i := len(*s) - 1; i >= 0; i-- {
		st := &(*s)[i]
		if st.room != room {
			continue
		}
		in := st.from < seq && seq <= st.to
		switch {
		case in && !st.transit && !slices.Contains(st.maybe, seq):
			return expectedRecipient
		case in || slices.Contains(st.maybe, seq):
			c = transitRecipient
		}
	}
	return c
}

func (r *room) presence(m int32) *presence {
	if int(m) < 0 || int(m) >= len(r.pres) {
		return nil
	}
	return &r.pres[m]
}

// counted reports whether member m was a certain recipient of e (room lock held).
func (r *room) counted(e *entry, m int32) bool {
	joined, ok := r.members[m]
	if !ok || joined >= e.roomSeq {
		return false
	}
	return e.target < 0 || e.target == m
}

// beginSend fills expected/maybe for a message to this room and marks it in flight.
func (r *room) beginSend(e *entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.members[e.sender]; !ok {
		return false // the sender is not (or no longer) a stable member
	}
	r.msgSeq++
	e.roomSeq = r.msgSeq
	if e.target < 0 {
		e.expected = int32(len(r.members))
		e.maybe = r.transitIn + r.transitOut
	} else {
		if _, ok := r.members[e.target]; ok {
			e.expected = 1
		} else {
			e.expected = 0
			e.maybe = 1
		}
	}
	e.inflight = int32(len(r.inflight))
	r.inflight = append(r.inflight, e)
	e.pub.Store(e.roomSeq)
	return true
}

// endSend removes e from the in-flight list (acknowledged or failed).
func (r *room) endSend(e *entry, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if failed {
		e.failed = true
	}
	i := e.inflight
	if i < 0 {
		return
	}
	last := int32(len(r.inflight) - 1)
	if i != last {
		r.inflight[i] = r.inflight[last]
		r.inflight[i].inflight = i
	}
	r.inflight[last] = nil
	r.inflight = r.inflight[:last]
	e.inflight = -1
}

// leaveMember removes m (switching away or leaving): messages still in flight
// that counted m become uncertain for it.
func (r *room) leaveMember(m int32) int { return r.removeMember(m, false) }

// switchAway removes m as it starts switching to another room: until the
// switch completes (switchedAway), messages sent here may still reach it.
func (r *room) switchAway(m int32) { r.removeMember(m, true) }

// switchedAway ends m's switch away from the room; after a failed switch
// (ok false) where the server put m is unknown: its transit stays open, so
// later deliveries from this room count as extra, not misrouted.
func (r *room) switchedAway(m int32, ok bool) {
	r.mu.Lock()
	if r.transitOut > 0 {
		r.transitOut--
	}
	if ok {
		r.presence(m).end(int32(r.idx), true, r.msgSeq, nil)
	}
	r.mu.Unlock()
}

func (r *room) isMember(m int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.members[m]
	return ok
}

func (r *room) removeMember(m int32, switching bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.members[m]; !ok {
		return len(r.members)
	}
	if switching {
		r.transitOut++
	}
	var maybe []uint64
	for _, e := range r.inflight {
		if r.counted(e, m) {
			e.expected--
			e.maybe++
			maybe = append(maybe, e.roomSeq)
		}
	}
	delete(r.members, m)
	p := r.presence(m)
	p.end(int32(r.idx), false, r.msgSeq, maybe)
	if switching {
		p.begin(stint{room: int32(r.idx), transit: true, from: r.msgSeq})
	}
	return len(r.members)
}

// arriving marks m as switching into the room: in-flight broadcasts may reach it.
func (r *room) arriving(m int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.transitIn++
	var maybe []uint64
	for _, e := range r.inflight {
		if e.target < 0 || e.target == m {
			e.maybe++
			maybe = append(maybe, e.roomSeq)
		}
	}
	r.presence(m).begin(stint{room: int32(r.idx), transit: true, from: r.msgSeq, maybe: maybe})
}

// arrived makes m a stable member (after its enter or switch response).
func (r *room) arrived(m int32, wasInTransit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if wasInTransit && r.transitIn > 0 {
		r.transitIn--
	}
	p := r.presence(m)
	if wasInTransit {
		p.end(int32(r.idx), true, r.msgSeq, nil)
	}
	r.members[m] = r.msgSeq
	p.begin(stint{room: int32(r.idx), from: r.msgSeq})
}

// memberList returns the stable members (room lock taken).
func (r *room) memberList() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int32, 0, len(r.members))
	for m := range r.members {
		out = append(out, m)
	}
	return out
}

// RoomStats are the counts of one room over a run.
type RoomStats struct {
	Room       string `json:"room"`
	Members    int    `json:"members"` // stable members at the end
	Sent       int64  `json:"sent"`
	Expected   int64  `json:"expected"`
	Delivered  int64  `json:"delivered"`
	Extra      int64  `json:"extra"`     // deliveries to members in transit (neither expected nor lost)
	Misrouted  int64  `json:"misrouted"` // deliveries to clients that were not recipients (not in Delivered)
	Lost       int64  `json:"lost"`
	Duplicated int64  `json:"duplicated"`
	OutOfOrder int64  `json:"out_of_order"`
	Failed     int64  `json:"failed_sends"`
	LeaveMiss  int64  `json:"onleave_missing"`
	Ghosts     int64  `json:"ghosts"`        // membership mismatches found by the probe
	AddMiss    int64  `json:"onadd_missing"` // onAdd pushes that never arrived
}
