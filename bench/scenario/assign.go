package scenario

import "math/rand/v2"

// Assignment is the deterministic room of every client: the same scenario
// (clients, rooms, spread, seed) always gives the same assignment, in every
// process. It is immutable and safe for concurrent use.
type Assignment struct {
	room    []int32 // room of client i
	members [][]int // clients of each room, ascending
}

// Assign computes the room of every client of s.
func (s *Scenario) Assign() *Assignment { return &Assignment{} }

// RoomOf is the room index (0..Rooms.Count-1) of client i.
func (a *Assignment) RoomOf(i int) int { return int(a.room[i]) }

// Members lists the clients of room r, ascending. Do not modify it.
func (a *Assignment) Members(r int) []int { return a.members[r] }

// Rooms is the number of rooms.
func (a *Assignment) Rooms() int { return len(a.members) }

// RoomID is the rid sent to the server for room r ("room-0007").
func RoomID(r int) string { return "" }

// UserName is the username client i enters with ("u000042").
func UserName(i int) string { return "" }

// ClientRand returns the random stream of client i (private-message choices,
// Poisson gaps, hop targets): independent per client, deterministic by seed.
// Not safe for concurrent use: one per client goroutine.
func (s *Scenario) ClientRand(i int) *rand.Rand { return nil }

// Pick reports whether client i belongs to the given share (0..1) of
// clients for a named purpose (salt, e.g. the phase name): deterministic by
// seed, independent across salts.
func (s *Scenario) Pick(i int, share float64, salt string) bool { return false }

// HopTarget picks the room a hopping client in room cur moves to: by the
// spread's weights, never cur (unless there is a single room).
func (a *Assignment) HopTarget(cur int, r *rand.Rand) int { return cur }
