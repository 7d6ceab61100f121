package driver

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/scenario"
)

func testDriver(tb testing.TB, clients, rooms int) *driver {
	tb.Helper()
	s, err := scenario.Parse("t.yaml", []byte(fmt.Sprintf(
		"clients: %d\nrooms: {count: %d}\nphases:\n  - {kind: enter, arrival_rate: 100}\n", clients, rooms)))
	if err != nil {
		tb.Fatal(err)
	}
	d := newDriver(Options{Scenario: s, Logger: slog.New(slog.DiscardHandler), MaxMessages: 1 << 20}, time.Now())
	tb.Cleanup(d.fleet.Close)
	for _, v := range d.clients {
		v.cur.Store(v.home)
		d.rooms[v.home].arrived(v.idx, false)
	}
	return d
}

func TestStampRoundTrip(t *testing.T) {
	tests := []struct {
		gid      uint64
		sender   int32
		seq      uint32
		intended int64
		payload  int
	}{
		{0, 0, 0, 0, 0},
		{1, 2, 3, 4, 64},
		{1<<40 + 7, 1<<31 - 1, 1<<32 - 1, int64(100 * time.Hour), 16},
	}
	for _, tc := range tests {
		b := appendStamp(nil, tc.gid, tc.sender, tc.seq, tc.intended, tc.payload)
		if len(b) < tc.payload {
			t.Errorf("stamp %q shorter than payload %d", b, tc.payload)
		}
		st, ok := parseStamp(b)
		if !ok || st != (stamp{tc.gid, tc.sender, tc.seq, tc.intended}) {
			t.Errorf("parseStamp(%q) = %+v, %v", b, st, ok)
		}
	}
	for _, bad := range []string{"", "~", "hello", "~1.2.3~", "~1.2.3.4", "~1.2.3.4.5~", "~1..3.4~", "~zzzzzzzzzzzzzzz.1.1.1~"} {
		if _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) accepted", bad)
		}
	}
}

// chatPush builds an onChat push the way the server sends it (JSON).
func chatPush(d *driver, to int32, sender int32) (*client.Push, *entry) {
	return chatPushSeq(d, to, sender, 1)
}

func chatPushSeq(d *driver, to, sender int32, seq uint32) (*client.Push, *entry) {
	gid, e := d.tab.alloc()
	e.sender, e.target, e.room, e.intended = sender, -1, d.clients[sender].home, client.Now()
	d.rooms[e.room].beginSend(e)
	msg := appendStamp(nil, gid, sender, seq, e.intended, 64)
	body := fmt.Sprintf(`{"msg":"%s","from":"%s","target":"*"}`, msg, d.clients[sender].name)
	c := &client.Client{ID: to}
	return &client.Push{Client: c, Route: []byte("onChat"), Body: []byte(body), At: client.Now()}, e
}

func TestReceiveAccounting(t *testing.T) {
	d := testDriver(t, 4, 1)
	p, e := chatPush(d, 1, 0)
	d.onPush(p)
	d.onPush(p) // duplicate: same sender, same seq
	p2, e2 := chatPush(d, 2, 0)
	d.onPush(p2)
	if got := e.delivered.Load(); got != 1 {
		t.Errorf("delivered %d, want 1 (the duplicate must not count)", got)
	}
	if got := d.rooms[0].dup.Load(); got != 1 {
		t.Errorf("room duplicates %d, want 1", got)
	}
	if e2.delivered.Load() != 1 || e.last.Load() == 0 {
		t.Errorf("second message not delivered or last not set")
	}
	r := d.rooms[0]
	r.endSend(e, false)
	r.endSend(e2, false)
	e.acked.Store(true)
	e2.acked.Store(true)
	d.finalize(0, d.tab.next.Load())
	st := d.roomStats()[0]
	if st.Expected != 8 || st.Delivered != 2 || st.Lost != 6 {
		t.Errorf("room stats %+v: want expected 8 (2 x 4 members), delivered 2, lost 6", st)
	}
}

func TestHopTransitAccounting(t *testing.T) {
	d := testDriver(t, 4, 2) // uniform: room 0 = {0, 2}, room 1 = {1, 3}
	r0, r1 := d.rooms[0], d.rooms[1]
	_, e := chatPush(d, 2, 0) // in flight in room 0, counts members 0 and 2
	if e.expected != 2 || e.maybe != 0 {
		t.Fatalf("expected %d maybe %d, want 2, 0", e.expected, e.maybe)
	}
	r0.leaveMember(2) // 2 switches away while the message is in flight
	r1.arriving(2)
	if e.expected != 1 || e.maybe != 1 {
		t.Errorf("after leave: expected %d maybe %d, want 1, 1", e.expected, e.maybe)
	}
	_, e3 := chatPush(d, 1, 1) // room 1 while 2 is arriving
	if e3.expected != 2 || e3.maybe != 1 {
		t.Errorf("arriving: expected %d maybe %d, want 2, 1", e3.expected, e3.maybe)
	}
	r1.arrived(2, true)
	if r1.transitIn != 0 || len(r1.members) != 3 {
		t.Errorf("after arrival: transit %d members %d", r1.transitIn, len(r1.members))
	}
}

// BenchmarkReceive is the driver's receive path for one onChat push: parse
// the push, read the stamp, dedupe, account, record the latency. The receiver
// hears from a room of 100 senders, each push its sender's next message.
func BenchmarkReceive(b *testing.B) {
	const senders, rounds = 100, 100
	d := testDriver(b, senders, 1)
	var pushes []*client.Push
	for seq := range uint32(rounds) {
		for s := range int32(senders) {
			p, _ := chatPushSeq(d, 0, s, seq+1)
			pushes = append(pushes, p)
		}
	}
	v := d.clients[0]
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(pushes)
		if k == 0 {
			v.lastSeq = seqTable{} // the pushes start over: forget their sequence numbers
		}
		d.onPush(pushes[k])
	}
}

// TestPresenceClass: a delivery is expected for a member of the sender's
// room at send time, extra for a member in transit (switching in or out, or
// a stable member a message was in flight to when it started switching
// away), misrouted otherwise.
func TestPresenceClass(t *testing.T) {
	d := testDriver(t, 4, 2) // room 0 = {0, 2}, room 1 = {1, 3}
	r0, r1 := d.rooms[0], d.rooms[1]
	_, before := chatPush(d, 2, 0) // room 0 seq 1, in flight while 2 leaves
	r0.endSend(before, false)      // acked: 2 was a certain recipient
	_, inflight := chatPush(d, 2, 0)
	r0.switchAway(2) // 2 switches to room 1 with seq 2 in flight
	r1.arriving(2)
	_, during := chatPush(d, 0, 0) // room 0 seq 3: 2 is leaving
	_, r1during := chatPush(d, 1, 1)
	r0.switchedAway(2, true)
	r1.arrived(2, true)
	_, after0 := chatPush(d, 0, 0) // room 0 seq 4: 2 is gone
	_, after1 := chatPush(d, 1, 1) // room 1: 2 is a member
	tests := []struct {
		name string
		who  int32
		e    *entry
		want int
	}{
		{"member at send", 2, before, expectedRecipient},
		{"in flight when it switched away", 2, inflight, transitRecipient},
		{"sent while it switched away", 2, during, transitRecipient},
		{"sent while it switched in", 2, r1during, transitRecipient},
		{"sent after it left", 2, after0, notRecipient},
		{"sent after it arrived", 2, after1, expectedRecipient},
		{"never a member", 1, before, notRecipient},
		{"stable member", 0, after0, expectedRecipient},
	}
	for _, tc := range tests {
		if got := d.pres[tc.who].class(tc.e.room, tc.e.pub.Load()); got != tc.want {
			t.Errorf("%s: class %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestOnAddAccounting: an onAdd counts for the member it names when another
// member receives it; a newcomer's onAdd of itself (stock pomelo sends none,
// but can once, on a connector's first push over a new link) does not count.
func TestOnAddAccounting(t *testing.T) {
	d := testDriver(t, 3, 1)
	add := func(to, about int32) {
		body := fmt.Sprintf(`{"route":"onAdd","user":"%s"}`, d.clients[about].name)
		d.onPush(&client.Push{Client: &client.Client{ID: to}, Route: []byte("onAdd"), Body: []byte(body), At: client.Now()})
	}
	newcomer := d.clients[2]
	newcomer.addExp.Store(2) // members 0 and 1 were in
	add(2, 2)                // its own: not counted
	if got := newcomer.addSeen.Load(); got != 0 {
		t.Fatalf("a newcomer's own onAdd counted: seen %d", got)
	}
	add(0, 2)
	add(1, 2)
	if got := newcomer.addSeen.Load(); got != 2 {
		t.Fatalf("seen %d onAdd of the newcomer, want 2 (members 0 and 1)", got)
	}
}
