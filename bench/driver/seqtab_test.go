package driver

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSeqTable checks the table against a map through its growth, with the
// extreme sender indices.
func TestSeqTable(t *testing.T) {
	var tab seqTable
	want := map[int32]uint32{}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var sender int32
		switch i % 4 {
		case 0:
			sender = int32(rnd.IntN(3)) * (math.MaxInt32 / 2) // 0, MaxInt32/2, MaxInt32-1
		case 1:
			sender = math.MaxInt32
		default:
			sender = int32(rnd.IntN(1000)) * 50 // a room's stride
		}
		seq := rnd.Uint32()
		last, seen := tab.slot(sender)
		w, ok := want[sender]
		if seen != ok || (seen && *last != w) {
			t.Fatalf("op %d sender %d: got %d, %v, want %d, %v", i, sender, *last, seen, w, ok)
		}
		*last = seq
		want[sender] = seq
	}
	if tab.n != len(want) {
		t.Errorf("table holds %d senders, want %d", tab.n, len(want))
	}
}
