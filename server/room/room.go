// Package room owns chat rooms and their members: who is in which room, the
// order members joined, and which distinct endpoints a broadcast must reach.
// It knows nothing of sockets or buses, so the single-process server (an
// endpoint is a session) and a split chat shard (an endpoint is the connector
// that holds the member) share it unchanged.
//
// Each room has its own lock; there is no global lock on the broadcast path.
// Broadcast and SendTo run their callback while holding the room's lock, so
// deliveries to one room are totally ordered: every member sees the room's
// pushes in the same order, and a member that has left sees none after.
// Callbacks must therefore never block (enqueue, don't write).
package room

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Errors returned by Registry operations; test with errors.Is.
var (
	ErrDuplicate   = errors.New("name already in the room")
	ErrTooManyRoom = errors.New("too many rooms")
	ErrRoomFull    = errors.New("room is full")
	ErrNoMember    = errors.New("no such member in the room")
)

// Limits caps the registry. Zero values mean no limit.
type Limits struct {
	MaxRooms   int // rooms that may exist at once
	MaxMembers int // members per room
}

// Registry holds every room of one server (or shard). E identifies where a
// member's pushes go; members that share an E get one delivery per push.
type Registry[E comparable] struct {
	limits Limits

	mu    sync.RWMutex
	rooms map[string]*Room[E]
}

// NewRegistry returns an empty registry.
func NewRegistry[E comparable](l Limits) *Registry[E] {
	return &Registry[E]{limits: l, rooms: make(map[string]*Room[E])}
}

// Room is one chat room. Its fields are guarded by mu.
type Room[E comparable] struct {
	ID string

	mu        sync.Mutex
	members   map[string]E // name -> endpoint
	names     []string     // join order
	endpoints []E          // distinct endpoints, for broadcast
	refs      map[E]int    // members per endpoint
	dead      bool         // removed from the registry; Join must retry
}

// Len returns how many rooms exist.
func (g *Registry[E]) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.rooms)
}

// Get returns the room with id, or nil.
func (g *Registry[E]) Get(id string) *Room[E] {
	g.mu.RLock()
	r := g.rooms[id]
	g.mu.RUnlock()
	return r
}

func (g *Registry[E]) getOrCreate(id string) (*Room[E], error) {
	if r := g.Get(id); r != nil {
		return r, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.rooms[id]; r != nil {
		return r, nil
	}
	if g.limits.MaxRooms > 0 && len(g.rooms) >= g.limits.MaxRooms {
		return nil, fmt.Errorf("room %q: %w (limit %d)", id, ErrTooManyRoom, g.limits.MaxRooms)
	}
	r := &Room[E]{ID: id, members: make(map[string]E), refs: make(map[E]int)}
	g.rooms[id] = r
	return r, nil
}

// Join adds name to room id (creating the room) with endpoint e. While the
// room lock is held it calls then(r), if not nil, so the caller can announce
// the join (onAdd) in order with the room's other pushes. It returns the
// member names, the new one included, in join order.
func (g *Registry[E]) Join(id, name string, e E, then func(r *Room[E])) ([]string, error) {
	for {
		r, err := g.getOrCreate(id)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		if r.dead { // emptied and removed between lookup and lock
			r.mu.Unlock()
			continue
		}
		if _, dup := r.members[name]; dup {
			r.mu.Unlock()
			return nil, fmt.Errorf("join %q as %q: %w", id, name, ErrDuplicate)
		}
		if g.limits.MaxMembers > 0 && len(r.members) >= g.limits.MaxMembers {
			r.mu.Unlock()
			return nil, fmt.Errorf("join %q: %w (limit %d)", id, ErrRoomFull, g.limits.MaxMembers)
		}
		r.members[name] = e
		r.names = append(r.names, name)
		if r.refs[e] == 0 {
			r.endpoints = append(r.endpoints, e)
		}
		r.refs[e]++
		if then != nil {
			then(r)
		}
		users := append([]string(nil), r.names...)
		r.mu.Unlock()
		return users, nil
	}
}

// Leave removes name from room id if its endpoint is e. While the room lock
// is held it calls then(r) so the caller can announce the departure (onLeave)
// to those left. It reports whether the member was there.
func (g *Registry[E]) Leave(id, name string, e E, then func(r *Room[E])) bool {
	r := g.Get(id)
	if r == nil {
		return false
	}
	r.mu.Lock()
	cur, ok := r.members[name]
	if !ok || cur != e {
		r.mu.Unlock()
		return false
	}
	r.remove(name, e)
	if then != nil && len(r.members) > 0 {
		then(r)
	}
	empty := len(r.members) == 0
	if empty {
		r.dead = true
	}
	r.mu.Unlock()
	if empty {
		g.mu.Lock()
		if g.rooms[id] == r {
			delete(g.rooms, id)
		}
		g.mu.Unlock()
	}
	return true
}

// LeaveEndpoint removes every member whose endpoint is e from every room,
// calling then(r, name) under each room's lock after each removal. A split
// shard uses it when a connector dies. It returns how many members left.
func (g *Registry[E]) LeaveEndpoint(e E, then func(r *Room[E], name string)) int {
	g.mu.RLock()
	rooms := make([]*Room[E], 0, len(g.rooms))
	for _, r := range g.rooms {
		rooms = append(rooms, r)
	}
	g.mu.RUnlock()
	n := 0
	for _, r := range rooms {
		r.mu.Lock()
		var gone []string
		for _, name := range r.names {
			if r.members[name] == e {
				gone = append(gone, name)
			}
		}
		for _, name := range gone {
			r.remove(name, e)
			n++
			if then != nil && len(r.members) > 0 {
				then(r, name)
			}
		}
		empty := len(r.members) == 0 && len(gone) > 0
		if empty {
			r.dead = true
		}
		r.mu.Unlock()
		if empty {
			g.mu.Lock()
			if g.rooms[r.ID] == r {
				delete(g.rooms, r.ID)
			}
			g.mu.Unlock()
		}
	}
	return n
}

// remove drops name (endpoint e) from r; r.mu must be held.
func (r *Room[E]) remove(name string, e E) {
	delete(r.members, name)
	for i, n := range r.names {
		if n == name {
			r.names = append(r.names[:i], r.names[i+1:]...)
			break
		}
	}
	if r.refs[e]--; r.refs[e] <= 0 {
		delete(r.refs, e)
		for i, x := range r.endpoints {
			if x == e {
				r.endpoints = append(r.endpoints[:i], r.endpoints[i+1:]...)
				break
			}
		}
	}
}

// Broadcast calls deliver once per distinct endpoint of room id while holding
// the room's lock. It reports the number of members reached (0 when the room
// does not exist).
func (g *Registry[E]) Broadcast(id string, deliver func(e E)) int {
	r := g.Get(id)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	for _, e := range r.endpoints {
		deliver(e)
	}
	n := len(r.members)
	r.mu.Unlock()
	return n
}

// BroadcastFanout is Broadcast with the deliveries run by fan: part(lo, hi)
// delivers to endpoints [lo, hi), and fan returns when all of [0, n) are
// done (it may run parts concurrently; the room's lock is held throughout,
// so broadcasts stay totally ordered). A separate method because deliver
// escapes here: Broadcast allocates nothing.
func (g *Registry[E]) BroadcastFanout(id string, fan func(n int, part func(lo, hi int)), deliver func(e E)) int {
	r := g.Get(id)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	eps := r.endpoints
	fan(len(eps), func(lo, hi int) {
		for _, e := range eps[lo:hi] {
			deliver(e)
		}
	})
	n := len(r.members)
	r.mu.Unlock()
	return n
}

// SendTo calls deliver with the endpoint of member name in room id, under the
// room's lock. It returns ErrNoMember when name is not in the room.
func (g *Registry[E]) SendTo(id, name string, deliver func(e E)) error {
	r := g.Get(id)
	if r == nil {
		return fmt.Errorf("room %q: %w %q", id, ErrNoMember, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.members[name]
	if !ok || r.dead {
		return fmt.Errorf("room %q: %w %q", id, ErrNoMember, name)
	}
	deliver(e)
	return nil
}

// Members returns the names in room id in join order.
func (g *Registry[E]) Members(id string) []string {
	r := g.Get(id)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.names...)
}

// Endpoints calls fn for each distinct endpoint of r; r.mu must be held (it
// is, inside the callbacks of Join and Leave).
func (r *Room[E]) Endpoints(fn func(e E)) {
	for _, e := range r.endpoints {
		fn(e)
	}
}

// Count returns how many members of r are behind endpoint e; r.mu must be held.
func (r *Room[E]) Count(e E) int { return r.refs[e] }

// Has reports whether name is a member of r; r.mu must be held.
func (r *Room[E]) Has(name string) bool { _, ok := r.members[name]; return ok }

// Len returns the member count of r; r.mu must be held.
func (r *Room[E]) Len() int { return len(r.members) }

// Stats is a snapshot for metrics.
type Stats struct {
	Rooms, Members int
}

// Stats counts rooms and members.
func (g *Registry[E]) Stats() Stats {
	g.mu.RLock()
	rooms := make([]*Room[E], 0, len(g.rooms))
	for _, r := range g.rooms {
		rooms = append(rooms, r)
	}
	g.mu.RUnlock()
	s := Stats{Rooms: len(rooms)}
	for _, r := range rooms {
		r.mu.Lock()
		s.Members += len(r.members)
		r.mu.Unlock()
	}
	return s
}

// IDs returns the room ids, sorted.
func (g *Registry[E]) IDs() []string {
	g.mu.RLock()
	ids := make([]string, 0, len(g.rooms))
	for id := range g.rooms {
		ids = append(ids, id)
	}
	g.mu.RUnlock()
	sort.Strings(ids)
	return ids
}
