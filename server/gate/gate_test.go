package gate

import (
	"encoding/json"
	"testing"

	"github.com/chatbench/chatbench/server/room"
)

func TestSortedIsNatural(t *testing.T) {
	in := []Entry{{ID: "connector-10"}, {ID: "connector-2"}, {ID: "connector-1"}, {ID: "connector-9"}}
	got := Sorted(in)
	want := []string{"connector-1", "connector-2", "connector-9", "connector-10"}
	for i, e := range got {
		if e.ID != want[i] {
			t.Fatalf("Sorted = %v, want %v", got, want)
		}
	}
}

func TestQueryEntryDispatch(t *testing.T) {
	entries := []Entry{{ID: "c-3", Port: 3}, {ID: "c-1", Port: 1}, {ID: "c-2", Port: 2}}
	h := &Handler{Connectors: func() []Entry { return entries }}
	for _, uid := range []string{"alice", "bob", "carol"} {
		out, err := h.Request(nil, "gate.gateHandler.queryEntry", []byte(`{"uid":"`+uid+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Code, Port int }
		_ = json.Unmarshal(out, &r)
		if want := room.Dispatch(uid, 3) + 1; r.Code != 200 || r.Port != want {
			t.Errorf("%s -> %+v, want port %d", uid, r, want)
		}
	}
	h.Connectors = func() []Entry { return nil }
	out, _ := h.Request(nil, "gate.gateHandler.queryEntry", []byte(`{"uid":"x"}`))
	var r struct{ Code int }
	if _ = json.Unmarshal(out, &r); r.Code != 500 {
		t.Fatalf("no connectors: %s", out)
	}
}
