package gate

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/server/connector"
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
		out, err := h.Request(nil, chatproto.RouteQueryEntry, []byte(`{"uid":"`+uid+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Code, Port int }
		_ = json.Unmarshal(out, &r)
		if want := room.Dispatch(uid, 3) + 1; r.Code != 200 || r.Port != want {
			t.Errorf("%s -> %+v, want port %d", uid, r, want)
		}
	}
}

// Failures are errors, answered and counted by the connector like any other.
func TestQueryEntryErrors(t *testing.T) {
	up := &Handler{Connectors: func() []Entry { return []Entry{{ID: "c-1", Port: 1}} }}
	down := &Handler{Connectors: func() []Entry { return nil }}
	for _, tc := range []struct {
		name        string
		h           *Handler
		route, body string
		code        int
	}{
		{"no connectors", down, chatproto.RouteQueryEntry, `{"uid":"x"}`, chatproto.CodeFailed},
		{"missing uid", up, chatproto.RouteQueryEntry, `{}`, chatproto.CodeFailed},
		{"malformed body", up, chatproto.RouteQueryEntry, `{"uid":`, chatproto.CodeBadRequest},
		{"other route", up, chatproto.RouteEnter, `{"uid":"x"}`, chatproto.CodeNoRoute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.h.Request(nil, tc.route, []byte(tc.body))
			var e *connector.Error
			if !errors.As(err, &e) || e.Code != tc.code || out != nil {
				t.Fatalf("Request = %s, %v; want a *connector.Error with code %d", out, err, tc.code)
			}
		})
	}
}
