package scenario

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
)

// Assignment is the deterministic room of every client: the same scenario
// (clients, rooms, spread, seed) always gives the same assignment, in every
// process. It is immutable and safe for concurrent use.
type Assignment struct {
	room    []int32   // room of client i
	members [][]int   // clients of each room, ascending
	cdf     []float64 // cumulative room weights (zipf), nil for uniform
}

// Assign computes the room of every client of s. Uniform: client i is in
// room i mod Count. Zipf: room sizes proportional to 1/(r+1)^ZipfS, rounded
// by largest remainder so they add up to Clients exactly, and clients are
// placed by a permutation seeded by Seed.
func (s *Scenario) Assign() *Assignment {
	n, k := s.Clients, s.Rooms.Count
	a := &Assignment{room: make([]int32, n), members: make([][]int, k)}
	if s.Rooms.Spread != SpreadZipf {
		for i := range n {
			a.room[i] = int32(i % k)
		}
	} else {
		w := make([]float64, k)
		total := 0.0
		for r := range k {
			w[r] = 1 / math.Pow(float64(r+1), s.Rooms.ZipfS)
			total += w[r]
		}
		a.cdf = make([]float64, k)
		acc := 0.0
		for r := range k {
			acc += w[r] / total
			a.cdf[r] = acc
		}
		sizes := largestRemainder(w, total, n)
		slots := make([]int32, 0, n)
		for r, c := range sizes {
			for range c {
				slots = append(slots, int32(r))
			}
		}
		rng := rand.New(rand.NewPCG(mix(uint64(s.Seed)), mix(0x7a697066)))
		rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
		copy(a.room, slots)
	}
	for i, r := range a.room {
		a.members[r] = append(a.members[r], i)
	}
	return a
}

// largestRemainder splits n into len(w) integer parts proportional to w.
func largestRemainder(w []float64, total float64, n int) []int {
	sizes := make([]int, len(w))
	type rem struct {
		r int
		f float64
	}
	rems := make([]rem, len(w))
	used := 0
	for r := range w {
		exact := w[r] / total * float64(n)
		sizes[r] = int(exact)
		used += sizes[r]
		rems[r] = rem{r, exact - float64(sizes[r])}
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].f > rems[j].f })
	for i := 0; used < n; i++ {
		sizes[rems[i%len(rems)].r]++
		used++
	}
	return sizes
}

// RoomOf is the room index (0..Rooms.Count-1) of client i.
func (a *Assignment) RoomOf(i int) int { return int(a.room[i]) }

// Members lists the clients of room r, ascending. Do not modify it.
func (a *Assignment) Members(r int) []int { return a.members[r] }

// Rooms is the number of rooms.
func (a *Assignment) Rooms() int { return len(a.members) }

// RoomID is the rid sent to the server for room r ("room-0007").
func RoomID(r int) string { return fmt.Sprintf("room-%04d", r) }

// UserName is the username client i enters with ("u000042").
func UserName(i int) string { return fmt.Sprintf("u%06d", i) }

// mix is splitmix64's finalizer: decorrelates nearby seeds.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// ClientRand returns the random stream of client i (private-message choices,
// Poisson gaps, hop targets): independent per client, deterministic by seed.
// Not safe for concurrent use: one per client goroutine.
func (s *Scenario) ClientRand(i int) *rand.Rand {
	return rand.New(rand.NewPCG(mix(uint64(s.Seed)), mix(uint64(i)^0x636c69656e74)))
}

// Pick reports whether client i belongs to the given share (0..1) of
// clients for a named purpose (salt, e.g. the phase name): deterministic by
// seed, independent across salts. About share*Clients clients are picked.
func (s *Scenario) Pick(i int, share float64, salt string) bool {
	if share >= 1 {
		return true
	}
	if share <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(salt))
	x := mix(mix(uint64(s.Seed)^h.Sum64()) ^ uint64(i))
	return float64(x>>11)/(1<<53) < share
}

// HopTarget picks the room a hopping client in room cur moves to: by the
// spread's weights, never cur (unless there is a single room).
func (a *Assignment) HopTarget(cur int, r *rand.Rand) int {
	k := len(a.members)
	if k <= 1 {
		return cur
	}
	if a.cdf == nil {
		t := r.IntN(k - 1)
		if t >= cur {
			t++
		}
		return t
	}
	for range 64 {
		u := r.Float64()
		t := sort.SearchFloat64s(a.cdf, u)
		if t >= k {
			t = k - 1
		}
		if t != cur {
			return t
		}
	}
	return (cur + 1) % k
}

// Shape is the key of what a fan-out ceiling depends on: client count, room
// size (clients per room, rounded), spread and payload, e.g.
// "clients=2000,room=100,spread=uniform,payload=64". Calibrations are cached
// by machine fingerprint and Shape (metrics.Ceiling.Shape).
func (s *Scenario) Shape() string {
	size := 0
	if s.Rooms.Count > 0 {
		size = (s.Clients + s.Rooms.Count/2) / s.Rooms.Count
	}
	spread := string(s.Rooms.Spread)
	if s.Rooms.Spread == SpreadZipf {
		spread = fmt.Sprintf("zipf%g", s.Rooms.ZipfS)
	}
	return fmt.Sprintf("clients=%d,room=%d,spread=%s,payload=%d", s.Clients, size, spread, s.Payload)
}
