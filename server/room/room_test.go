package room

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDispatchMatchesPomelo(t *testing.T) {
	for _, tc := range []struct {
		key string
		crc int32
	}{{"alice", 663665735}, {"bob", -171200192}} {
		if got := PomeloCRC32(tc.key); got != tc.crc {
			t.Errorf("PomeloCRC32(%q) = %d, want %d", tc.key, got, tc.crc)
		}
	}
	if got := Dispatch("alice", 3); got != 663665735%3 {
		t.Errorf("Dispatch(alice, 3) = %d", got)
	}
	if got := Dispatch("bob", 3); got != 171200192%3 {
		t.Errorf("Dispatch(bob, 3) = %d (abs of a negative crc)", got)
	}
	for i := range 1000 {
		if d := Dispatch(fmt.Sprintf("room%d", i), 7); d < 0 || d >= 7 {
			t.Fatalf("Dispatch out of range: %d", d)
		}
	}
}

func TestJoinLeaveBroadcast(t *testing.T) {
	g := NewRegistry[string](Limits{})
	var added []string
	users, err := g.Join("r", "alice", "conn1", func(r *Room[string]) { added = append(added, "alice") })
	if err != nil || !slices.Equal(users, []string{"alice"}) {
		t.Fatalf("join alice: %v %v", users, err)
	}
	users, _ = g.Join("r", "bob", "conn1", nil)
	users2, _ := g.Join("r", "carol", "conn2", nil)
	if !slices.Equal(users2, []string{"alice", "bob", "carol"}) || len(users) != 2 {
		t.Fatalf("users = %v", users2)
	}
	if _, err := g.Join("r", "bob", "conn2", nil); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate join err = %v", err)
	}
	var got []string
	if n := g.Broadcast("r", func(e string) { got = append(got, e) }); n != 3 {
		t.Fatalf("broadcast reached %d members", n)
	}
	if !slices.Equal(got, []string{"conn1", "conn2"}) {
		t.Fatalf("broadcast endpoints = %v, want one delivery per distinct endpoint", got)
	}
	if err := g.SendTo("r", "nobody", func(string) {}); !errors.Is(err, ErrNoMember) {
		t.Fatalf("SendTo unknown = %v", err)
	}
	if g.Leave("r", "bob", "conn2", nil) {
		t.Fatal("leave with the wrong endpoint succeeded")
	}
	var leftSeen int
	if !g.Leave("r", "bob", "conn1", func(r *Room[string]) { leftSeen = r.Len() }) || leftSeen != 2 {
		t.Fatalf("leave bob: callback saw %d members", leftSeen)
	}
	got = nil
	g.Broadcast("r", func(e string) { got = append(got, e) })
	if !slices.Equal(got, []string{"conn1", "conn2"}) {
		t.Fatalf("after bob left, endpoints = %v", got)
	}
	if n := g.LeaveEndpoint("conn1", nil); n != 1 {
		t.Fatalf("LeaveEndpoint removed %d", n)
	}
	g.Leave("r", "carol", "conn2", nil)
	if g.Len() != 0 || g.Get("r") != nil {
		t.Fatal("an empty room was not removed")
	}
}

func TestLimits(t *testing.T) {
	g := NewRegistry[int](Limits{MaxRooms: 1, MaxMembers: 1})
	if _, err := g.Join("a", "x", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Join("a", "y", 2, nil); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("second member: %v", err)
	}
	if _, err := g.Join("b", "y", 2, nil); !errors.Is(err, ErrTooManyRoom) {
		t.Fatalf("second room: %v", err)
	}
}

// Joins and leaves racing on one room never lose a member or leave a ghost.
func TestConcurrentJoinLeave(t *testing.T) {
	g := NewRegistry[int](Limits{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := fmt.Sprintf("w%d-%d", w, i%3)
				if _, err := g.Join("hot", name, w, nil); err == nil {
					g.Broadcast("hot", func(int) {})
					if !g.Leave("hot", name, w, nil) {
						t.Errorf("leave %s failed", name)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if g.Len() != 0 {
		t.Fatalf("rooms left: %v members %v", g.IDs(), g.Members("hot"))
	}
}

func BenchmarkBroadcast(b *testing.B) {
	for _, members := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			g := NewRegistry[int](Limits{})
			for i := range members {
				g.Join("r", fmt.Sprint(i), i, nil)
			}
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				g.Broadcast("r", func(int) { n++ })
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// With a fan-out that runs parts concurrently, a broadcast still reaches every
// distinct endpoint exactly once, and has reached all of them when it
// returns (the room's lock is held until then, so broadcasts stay ordered).
func TestBroadcastThroughFanout(t *testing.T) {
	g := NewRegistry[int](Limits{})
	const members = 37
	for i := range members {
		if _, err := g.Join("r", fmt.Sprint("m", i), i/2, nil); err != nil { // two members per endpoint
			t.Fatal(err)
		}
	}
	var parts atomic.Int32
	fan := func(n int, part func(lo, hi int)) {
		var wg sync.WaitGroup
		for lo := 0; lo < n; lo += 5 {
			wg.Add(1)
			go func() { defer wg.Done(); parts.Add(1); part(lo, min(lo+5, n)) }()
		}
		wg.Wait()
	}
	for round := range 3 {
		hits := make([]atomic.Int32, members/2+1)
		if n := g.BroadcastFanout("r", fan, func(e int) { hits[e].Add(1) }); n != members {
			t.Fatalf("round %d: broadcast reached %d members, want %d", round, n, members)
		}
		for e := range hits {
			if got := hits[e].Load(); got != 1 {
				t.Fatalf("round %d: endpoint %d delivered %d times, want 1", round, e, got)
			}
		}
	}
	if parts.Load() == 0 {
		t.Fatal("BroadcastFanout did not go through fan")
	}
}
