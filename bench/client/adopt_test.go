package client

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatbench/chatbench/pomelo"
)

// The handshake answers in testdata/handshake were captured from a stock
// pomelo 2.2.7 chat cluster (connectors with heartbeat, useDict and
// useProtobuf; a gate with useProtobuf only), one per shape pomelo sends:
//
//	connector-fresh   nothing announced: dictionary and protos
//	connector-zero    protoVersion 0 (a fresh stock page): the same
//	connector-both    both versions match: useDict and useProto alone
//	connector-dict    dictVersion matches: protos only
//	connector-protos  protoVersion matches, dictVersion stale: dictionary only
//	gate-fresh        the gate: protos, no heartbeat, no dictionary
//	gate-protos       the gate, protoVersion matches: useProto alone
//	nosys             a handshake without sys: code 500
const (
	dictV  = "s2r1qfKDrbhWCkA6uf+PTA=="
	protoV = `"2zWPnSlRsRxjqgcU215Uxg=="`
)

func answer(t *testing.T, name string) pomelo.HandshakeResponse {
	t.Helper()
	var r pomelo.HandshakeResponse
	b := []byte(name)
	if name[0] != '{' {
		var err error
		if b, err = os.ReadFile(filepath.Join("testdata", "handshake", name+".json")); err != nil {
			t.Fatal(err)
		}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func TestAdoptHandshake(t *testing.T) {
	type step struct {
		answer   string   // testdata name or inline JSON
		sent     versions // announced; "prev" in [0] means what the previous step adopted
		dict     bool     // a dictionary is in use
		protos   bool
		sameDict bool // the very dictionary the first step adopted (shared, not parsed again)
		sameProt bool
		hb       int
		err      error
		vers     versions
	}
	prev := versions{"prev"}
	cases := []struct {
		name  string
		steps []step
	}{
		{"connector, nothing announced", []step{
			{answer: "connector-fresh", dict: true, protos: true, hb: 3, vers: versions{dictV, protoV}},
		}},
		{"connector, protoVersion 0 announced", []step{
			{answer: "connector-zero", sent: versions{"", "0"}, dict: true, protos: true, hb: 3, vers: versions{dictV, protoV}},
		}},
		{"connector, both versions match: kept from the first answer", []step{
			{answer: "connector-fresh", dict: true, protos: true, hb: 3, vers: versions{dictV, protoV}},
			{answer: "connector-both", sent: prev, dict: true, protos: true, sameDict: true, sameProt: true, hb: 3, vers: versions{dictV, protoV}},
			{answer: "connector-both", sent: prev, dict: true, protos: true, sameDict: true, sameProt: true, hb: 3, vers: versions{dictV, protoV}},
		}},
		{"connector, dictionary matches, protos sent again", []step{
			{answer: "connector-fresh", dict: true, protos: true, hb: 3, vers: versions{dictV, protoV}},
			{answer: "connector-dict", sent: versions{dictV, ""}, dict: true, protos: true, sameDict: true, sameProt: true, hb: 3, vers: versions{dictV, protoV}},
		}},
		{"connector, protos match, dictionary sent again", []step{
			{answer: "connector-fresh", dict: true, protos: true, hb: 3, vers: versions{dictV, protoV}},
			{answer: "connector-protos", sent: versions{"stale", protoV}, dict: true, protos: true, sameDict: true, sameProt: true, hb: 3, vers: versions{dictV, protoV}},
		}},
		{"gate, nothing announced", []step{
			{answer: "gate-fresh", protos: true, vers: versions{"", protoV}},
		}},
		{"gate, protoVersion matches", []step{
			{answer: "gate-fresh", protos: true, vers: versions{"", protoV}},
			{answer: "gate-protos", sent: prev, protos: true, sameProt: true, vers: versions{"", protoV}},
		}},
		{"the gate's protos serve a connector that omits them", []step{
			{answer: "gate-fresh", protos: true, vers: versions{"", protoV}},
			{answer: "connector-protos", sent: prev, dict: true, protos: true, sameProt: true, hb: 3, vers: versions{dictV, protoV}},
		}},
		{"no sys: nothing to adopt", []step{
			{answer: "nosys"},
		}},
		{"dictionary omitted, nothing announced: a real mismatch", []step{
			{answer: "connector-both", err: ErrHandshakeMismatch},
		}},
		{"dictionary omitted for a version this fleet never parsed", []step{
			{answer: "connector-both", sent: versions{dictV, protoV}, err: ErrHandshakeMismatch},
		}},
		{"protos omitted, nothing announced", []step{
			{answer: "gate-protos", err: ErrHandshakeMismatch},
		}},
		{"a new dictionary version is parsed anew", []step{
			{answer: "connector-fresh", dict: true, protos: true, hb: 3, vers: versions{dictV, protoV}},
			{answer: `{"code":200,"sys":{"heartbeat":3,"dict":{"chat.chatHandler.send":1,"x.y.z":2},"routeToCode":{"chat.chatHandler.send":1,"x.y.z":2},"dictVersion":"v2","useDict":true,"useProto":true}}`,
				sent: prev, dict: true, protos: true, sameProt: true, hb: 3, vers: versions{"v2", protoV}},
		}},
		{"a dictionary without a version (older pomelo): used, not announced", []step{
			{answer: `{"code":200,"sys":{"heartbeat":3,"dict":{"chat.chatHandler.send":1},"useDict":true}}`, dict: true, hb: 3},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &Fleet{dicts: map[string]*pomelo.Dict{}, protos: map[string]*protoSet{}, lastVer: map[string]versions{}}
			var first adopted
			var last versions
			for i, st := range tc.steps {
				r := answer(t, st.answer)
				sent := st.sent
				if sent == prev {
					sent = last
				}
				a, err := f.adoptSys(r.Sys, sent)
				if !errors.Is(err, st.err) || (err != nil) != (st.err != nil) {
					t.Fatalf("step %d (%s): err %v, want %v", i, st.answer, err, st.err)
				}
				if err != nil {
					continue
				}
				if i == 0 {
					first = a
				}
				hb := 0
				if r.Sys != nil {
					hb = r.Sys.Heartbeat
				}
				switch {
				case (a.dict != nil) != st.dict:
					t.Errorf("step %d: dictionary %v, want %v", i, a.dict != nil, st.dict)
				case (a.protos != nil) != st.protos:
					t.Errorf("step %d: protos %v, want %v", i, a.protos != nil, st.protos)
				case st.sameDict && a.dict != first.dict:
					t.Errorf("step %d: dictionary parsed again, want the shared one", i)
				case st.sameProt && a.protos != first.protos:
					t.Errorf("step %d: protos parsed again, want the shared ones", i)
				case !st.sameDict && i > 0 && st.dict && a.dict == first.dict:
					t.Errorf("step %d: kept the old dictionary, want the new one", i)
				case a.vers != st.vers:
					t.Errorf("step %d: announces %q next, want %q", i, a.vers, st.vers)
				case hb != st.hb:
					t.Errorf("step %d: heartbeat %d, want %d", i, hb, st.hb)
				}
				if a.dict != nil {
					if c, ok := a.dict.Code("chat.chatHandler.send"); !ok || c != 1 {
						t.Errorf("step %d: chat.chatHandler.send -> %d %v, want 1", i, c, ok)
					}
				}
				if a.protos != nil && (!a.protos.server["onChat"] || a.protos.chatTags != [3]uint64{1, 2, 3}) {
					t.Errorf("step %d: protos without the stock onChat (tags %v)", i, a.protos.chatTags)
				}
				last = a.vers
			}
		})
	}
}

// TestHandshakeAnnouncesVersions: after a first handshake with a server, a
// client announces the versions it holds, as pomelo's own client does.
func TestHandshakeAnnouncesVersions(t *testing.T) {
	f := &Fleet{dicts: map[string]*pomelo.Dict{}, protos: map[string]*protoSet{}, lastVer: map[string]versions{}}
	c := &Client{f: f, addr: "127.0.0.1:3050"}
	if err := c.adopt(answer(t, "connector-fresh").Sys, versions{}); err != nil {
		t.Fatal(err)
	}
	if got := f.lastVer[c.addr]; got != (versions{dictV, protoV}) {
		t.Fatalf("versions held for %s: %q", c.addr, got)
	}
	c2 := &Client{f: f, addr: c.addr}
	if err := c2.adopt(answer(t, "connector-both").Sys, f.lastVer[c.addr]); err != nil {
		t.Fatalf("the short answer to a client that announced its versions: %v", err)
	}
	if c2.dict != c.dict || c2.protos != c.protos || c2.hb != 3e9 {
		t.Fatalf("second client: dict %p protos %p hb %v; want the first's %p %p and 3s", c2.dict, c2.protos, c2.hb, c.dict, c.protos)
	}
}
