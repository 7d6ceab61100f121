package bus

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	cases := []Request{
		{Op: OpEnter, Conn: "connector-1", Epoch: 1 << 62, SID: 7, RID: "room", Name: "alice"},
		{Op: OpLeave, Conn: "c", SID: 0, RID: "", Name: "bob"},
		{Op: OpSend, Conn: "connector-2", Epoch: 3, SID: 300, RID: "r", Name: "carol", Content: "hi\x00 \u00e9", Target: "*"},
		{Op: OpSync, Conn: "connector-1", Epoch: 9, RID: "r", Members: []Member{{SID: 1, Name: "al"}, {SID: 1 << 40, Name: "bo"}}},
	}
	for _, want := range cases {
		b := AppendRequest(nil, &want)
		got, err := DecodeRequest(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip %+v = %+v, %v", want, got, err)
		}
		rid, err := RequestRID(b)
		if err != nil || string(rid) != want.RID {
			t.Errorf("RequestRID = %q, %v; want %q", rid, err, want.RID)
		}
		for i := range len(b) { // every truncation is an error, never a panic
			if _, err := DecodeRequest(b[:i]); !errors.Is(err, ErrMalformed) {
				t.Errorf("truncated to %d: err = %v", i, err)
			}
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	cases := []Reply{
		{},
		{Users: []string{"alice", "bob"}},
		{Code: 504, Message: "chat shard chat-1 unavailable"},
	}
	for _, want := range cases {
		got, err := DecodeReply(AppendReply(nil, &want))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip %+v = %+v, %v", want, got, err)
		}
	}
	if _, err := DecodeReply([]byte{byte(OpReply), 0, 0, 0xff, 0xff, 0x03}); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge user count: err = %v", err)
	}
}

func TestDeliveryRoundTrip(t *testing.T) {
	pkt := []byte{4, 0, 0, 3, 6, 1, 'x'}
	cases := []struct {
		name string
		b    []byte
		want Delivery
	}{
		{"push to room", AppendPush(AppendSeq(nil, 9), "r", "", pkt), Delivery{Seq: 9, Op: OpPush, RID: []byte("r"), Name: []byte{}, Packet: pkt}},
		{"push to member", AppendPush(AppendSeq(nil, 9), "r", "bob", pkt), Delivery{Seq: 9, Op: OpPush, RID: []byte("r"), Name: []byte("bob"), Packet: pkt}},
		{"joined", AppendMember(AppendSeq(nil, 9), OpJoined, "r", "al", 42, 7), Delivery{Seq: 9, Op: OpJoined, RID: []byte("r"), Name: []byte("al"), SID: 42, Epoch: 7}},
		{"resync", AppendMember(AppendSeq(nil, 9), OpResync, "", "chat-1", 0, 5), Delivery{Seq: 9, Op: OpResync, RID: []byte{}, Name: []byte("chat-1"), Epoch: 5}},
		{"left", AppendMember(AppendSeq(nil, 9), OpLeft, "r", "al", 0, 7), Delivery{Seq: 9, Op: OpLeft, RID: []byte("r"), Name: []byte("al"), Epoch: 7}},
	}
	for _, tc := range cases {
		got, err := DecodeDelivery(tc.b)
		if err != nil || got.Seq != tc.want.Seq || got.Op != tc.want.Op || !bytes.Equal(got.RID, tc.want.RID) || !bytes.Equal(got.Name, tc.want.Name) ||
			got.SID != tc.want.SID || got.Epoch != tc.want.Epoch || !bytes.Equal(got.Packet, tc.want.Packet) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, b := range [][]byte{nil, {1}, {1, 'p'}, {1, 'p', 1, 'r', 0}, {1, 'j', 1, 'r', 1, 'a', 1}, {1, '?', 0, 0}} {
		if _, err := DecodeDelivery(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeDelivery(%q) err = %v, want ErrMalformed", b, err)
		}
	}
}

func TestLivenessRoundTrip(t *testing.T) {
	for _, want := range []Liveness{{Op: OpHeartbeat, Conn: "connector-1", Epoch: 99}, {Op: OpBye, Conn: "x"}} {
		got, err := DecodeLiveness(AppendLiveness(nil, &want))
		if err != nil || got != want {
			t.Errorf("round trip %+v = %+v, %v", want, got, err)
		}
	}
}

func BenchmarkAppendPush(b *testing.B) {
	pkt := make([]byte, 100)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPush(buf[:0], "room42", "", pkt)
	}
}
