package driver

import (
	"sync"
	"sync/atomic"
)

// entry is the accounting record of one chat message. Fields without atomics
// are written by the sender before the message goes out, or under its room's
// lock; receivers touch only the atomics.
type entry struct {
	intended  int64
	last      atomic.Int64 // latest receipt (client.Now)
	delivered atomic.Int32 // unique deliveries seen
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
	id         string
	qid        string           // id as a JSON string
	members    map[int32]uint64 // stable members -> room message counter when they became stable
	transitIn  int32            // members switching into this room, not yet confirmed
	transitOut int32            // members switching out: the server may still count them in
	msgSeq     uint64
	inflight   []*entry // sent, not yet acknowledged

	// counters read at the end (atomics: receivers add to them)
	dup atomic.Int64
	ooo atomic.Int64

	// leave accounting
	leaveExpected atomic.Int64 // onLeave pushes expected by remaining members
	leaveSeen     atomic.Int64

	stats RoomStats // filled at finalize (control goroutine)
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

func (r *room) switchedAway() {
	r.mu.Lock()
	if r.transitOut > 0 {
		r.transitOut--
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
	for _, e := range r.inflight {
		if r.counted(e, m) {
			e.expected--
			e.maybe++
		}
	}
	delete(r.members, m)
	return len(r.members)
}

// arriving marks m as switching into the room: in-flight broadcasts may reach it.
func (r *room) arriving(m int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.transitIn++
	for _, e := range r.inflight {
		if e.target < 0 || e.target == m {
			e.maybe++
		}
	}
}

// arrived makes m a stable member (after its enter or switch response).
func (r *room) arrived(m int32, wasInTransit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if wasInTransit && r.transitIn > 0 {
		r.transitIn--
	}
	r.members[m] = r.msgSeq
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
	Extra      int64  `json:"extra"` // deliveries to members in transit (neither expected nor lost)
	Lost       int64  `json:"lost"`
	Duplicated int64  `json:"duplicated"`
	OutOfOrder int64  `json:"out_of_order"`
	Failed     int64  `json:"failed_sends"`
	LeaveMiss  int64  `json:"onleave_missing"`
	Ghosts     int64  `json:"ghosts"` // membership mismatches found by the probe
}
