package driver

// seqTable maps a sender's index to the last sequence number a receiver got
// from it. A receiver hears from about one room of senders (more after room
// switches), and the lookup runs for every delivery: an open-addressed table
// of 8-byte slots costs one cache line per lookup, where the Go map it
// replaces was the largest single item of the driver's receive CPU.
type seqTable struct {
	slots []seqSlot
	n     int
}

type seqSlot struct {
	key uint32 // sender+1, 0: empty
	seq uint32
}

// slot returns the sender's last sequence number, inserting the sender when
// it is new (seen false); the pointer is valid until the next call.
func (t *seqTable) slot(sender int32) (last *uint32, seen bool) {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	key := uint32(sender) + 1
	mask := uint32(len(t.slots) - 1)
	for i := hashSender(key) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		switch s.key {
		case key:
			return &s.seq, true
		case 0:
			s.key = key
			t.n++
			return &s.seq, false
		}
	}
}

func (t *seqTable) grow() {
	old := t.slots
	t.slots = make([]seqSlot, max(16, 2*len(old)))
	mask := uint32(len(t.slots) - 1)
	for _, s := range old {
		if s.key == 0 {
			continue
		}
		i := hashSender(s.key) & mask
		for t.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// hashSender spreads sender indices, which rooms take with a stride (round
// robin), over the table (Fibonacci hashing: the high bits of the product).
func hashSender(key uint32) uint32 {
	return uint32((uint64(key) * 0x9e3779b97f4a7c15) >> 32)
}
