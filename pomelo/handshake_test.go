package pomelo

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var chatRoutes = []string{
	"gate.gateHandler.queryEntry",
	"connector.entryHandler.enter",
	"chat.chatHandler.send",
}

func TestNewDictChatRoutes(t *testing.T) {
	tests := []struct {
		name   string
		routes []string
		want   map[string]uint16
	}{
		{"stock chat app", chatRoutes, map[string]uint16{
			"chat.chatHandler.send":        1,
			"connector.entryHandler.enter": 2,
			"gate.gateHandler.queryEntry":  3,
		}},
		{"with switchRoom", append([]string{"connector.entryHandler.switchRoom"}, chatRoutes...), map[string]uint16{
			"chat.chatHandler.send":             1,
			"connector.entryHandler.enter":      2,
			"connector.entryHandler.switchRoom": 3,
			"gate.gateHandler.queryEntry":       4,
		}},
		{"duplicates collapse", append(append([]string(nil), chatRoutes...), chatRoutes...), map[string]uint16{
			"chat.chatHandler.send":        1,
			"connector.entryHandler.enter": 2,
			"gate.gateHandler.queryEntry":  3,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDict(tc.routes)
			for r, c := range tc.want {
				if got, ok := d.Code(r); !ok || got != c {
					t.Errorf("Code(%q) = %d, %v; want %d", r, got, ok, c)
				}
				if got, ok := d.Route(c); !ok || got != r {
					t.Errorf("Route(%d) = %q, %v; want %q", c, got, ok, r)
				}
			}
			if n := len(d.Routes()); n != len(tc.want) {
				t.Errorf("Routes() has %d, want %d", n, len(tc.want))
			}
			if _, ok := d.Route(0); ok {
				t.Error("Route(0) found")
			}
			if _, ok := d.Route(uint16(len(tc.want) + 1)); ok {
				t.Error("Route past the end found")
			}
			if _, ok := d.Code("onChat"); ok {
				t.Error("push route onChat in the dictionary")
			}
		})
	}
	// Input order does not matter; content does.
	a, b := NewDict(chatRoutes), NewDict([]string{chatRoutes[2], chatRoutes[0], chatRoutes[1]})
	if a.Version() != b.Version() || a.Version() == "" {
		t.Fatalf("versions %q %q", a.Version(), b.Version())
	}
	if c := NewDict(chatRoutes[:2]); c.Version() == a.Version() {
		t.Fatal("different dictionaries share a version")
	}
	// Routes returns a copy.
	rs := a.Routes()
	rs[0] = "mutated"
	if r, _ := a.Route(1); r != "chat.chatHandler.send" {
		t.Fatal("Routes() aliases the dictionary")
	}
}

func TestNilDict(t *testing.T) {
	var d *Dict
	if _, ok := d.Code("x"); ok {
		t.Fatal("nil dict has a code")
	}
	if _, ok := d.Route(1); ok {
		t.Fatal("nil dict has a route")
	}
	m := Message{Compressed: true, RouteCode: 1}
	if err := d.Resolve(&m); !errors.Is(err, ErrMessage) {
		t.Fatalf("Resolve on nil dict: %v", err)
	}
}

func TestFillSysDictFromHandshakeRoundTrip(t *testing.T) {
	d := NewDict(chatRoutes)
	var sys ServerSys
	sys.Heartbeat = 3
	d.FillSys(&sys)
	if !sys.UseDict || sys.DictVersion != d.Version() {
		t.Fatalf("sys %+v", sys)
	}
	if sys.CodeToRoute["2"] != "connector.entryHandler.enter" || sys.RouteToCode["gate.gateHandler.queryEntry"] != 3 ||
		sys.Dict["chat.chatHandler.send"] != 1 {
		t.Fatalf("sys maps %+v", sys)
	}
	body, err := json.Marshal(HandshakeResponse{Code: CodeOK, Sys: &sys})
	if err != nil {
		t.Fatal(err)
	}
	var resp HandshakeResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sys  ServerSys
	}{
		{"routeToCode", *resp.Sys},
		{"dict only (older servers)", ServerSys{Dict: resp.Sys.Dict, DictVersion: resp.Sys.DictVersion}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			back := DictFromHandshake(&tc.sys)
			if back.Version() != d.Version() {
				t.Fatalf("version %q, want %q", back.Version(), d.Version())
			}
			if !reflect.DeepEqual(back.Routes(), d.Routes()) {
				t.Fatalf("routes %q, want %q", back.Routes(), d.Routes())
			}
			for _, r := range chatRoutes {
				c1, _ := d.Code(r)
				c2, ok := back.Code(r)
				if !ok || c1 != c2 {
					t.Fatalf("Code(%q) %d vs %d", r, c1, c2)
				}
			}
			// And it fills a handshake the same way.
			var again ServerSys
			back.FillSys(&again)
			if !reflect.DeepEqual(again.RouteToCode, sys.RouteToCode) || !reflect.DeepEqual(again.CodeToRoute, sys.CodeToRoute) {
				t.Fatalf("FillSys after round trip: %+v", again)
			}
		})
	}
}

func TestDictFromHandshakeOddInput(t *testing.T) {
	if d := DictFromHandshake(nil); len(d.Routes()) != 0 {
		t.Fatal("nil sys gives routes")
	}
	// Holes and code 0.
	d := DictFromHandshake(&ServerSys{RouteToCode: map[string]uint16{"a": 1, "c": 3, "zero": 0}})
	if r, ok := d.Route(3); !ok || r != "c" {
		t.Fatalf("Route(3) = %q, %v", r, ok)
	}
	if _, ok := d.Route(2); ok {
		t.Fatal("hole resolved")
	}
	if _, ok := d.Code("zero"); ok {
		t.Fatal("code 0 kept")
	}
	var sys ServerSys
	d.FillSys(&sys)
	if _, ok := sys.RouteToCode[""]; ok || len(sys.RouteToCode) != 2 {
		t.Fatalf("FillSys of a dict with holes: %v", sys.RouteToCode)
	}
	// Two routes on one code: deterministic, the smaller route wins.
	for i := 0; i < 20; i++ {
		d := DictFromHandshake(&ServerSys{RouteToCode: map[string]uint16{"b": 1, "a": 1, "c": 2}})
		if r, _ := d.Route(1); r != "a" {
			t.Fatalf("Route(1) = %q, want a", r)
		}
		if _, ok := d.Code("b"); ok {
			t.Fatal("losing route kept a code")
		}
	}
	// A huge code does not allocate a huge table.
	d = DictFromHandshake(&ServerSys{RouteToCode: map[string]uint16{"far": 65535, "near": 1}})
	if r, ok := d.Route(65535); !ok || r != "far" {
		t.Fatalf("Route(65535) = %q, %v", r, ok)
	}
	if d.routes != nil || !reflect.DeepEqual(d.Routes(), []string{"near", "far"}) {
		t.Fatalf("sparse dict: routes len %d, Routes %q", len(d.routes), d.Routes())
	}
}

func TestResolve(t *testing.T) {
	d := NewDict(chatRoutes)
	tests := []struct {
		name    string
		m       Message
		route   string
		wantErr bool
	}{
		{"compressed 2", Message{Type: Request, Compressed: true, RouteCode: 2}, "connector.entryHandler.enter", false},
		{"string route untouched", Message{Type: Push, Route: "onChat"}, "onChat", false},
		{"unknown code", Message{Type: Request, Compressed: true, RouteCode: 9}, "", true},
		{"code 0", Message{Type: Notify, Compressed: true, RouteCode: 0}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			err := d.Resolve(&m)
			if tc.wantErr {
				if !errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), "route code") {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil || m.Route != tc.route {
				t.Fatalf("route %q, %v; want %q", m.Route, err, tc.route)
			}
		})
	}
	// The golden compressed request resolves to enter.
	frame := hx(t, "h:04 00 00 26 01 01 00 02", `{"username":"alice","rid":"room1"}`)
	p := parseOne(t, frame)
	m, err := ParseMessage(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Resolve(&m); err != nil || m.Route != "connector.entryHandler.enter" {
		t.Fatalf("golden resolve %q %v", m.Route, err)
	}
}

func TestParseHandshakeRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr bool
		check   func(t *testing.T, r HandshakeRequest)
	}{
		{"stock body", string(DefaultHandshakeRequest()), false, func(t *testing.T, r HandshakeRequest) {
			if r.Sys.Type != ClientTypeJSWS || r.Sys.Version != ClientVersionJS || string(r.Sys.RSA) != "{}" ||
				string(r.User) != "{}" {
				t.Fatalf("%+v %+v", r, r.Sys)
			}
		}},
		{"doc body", `{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{}},"user":{}}`, false, nil},
		{"with versions", `{"sys":{"type":"js-websocket","version":"0.0.1","dictVersion":"abc","protoVersion":1503},"user":{}}`, false,
			func(t *testing.T, r HandshakeRequest) {
				if r.Sys.DictVersion != "abc" || string(r.Sys.ProtoVersion) != "1503" {
					t.Fatalf("%+v", r.Sys)
				}
			}},
		{"empty sys", `{"sys":{}}`, false, nil},
		{"missing sys", `{"user":{}}`, true, nil},
		{"null sys", `{"sys":null}`, true, nil},
		{"null", `null`, true, nil},
		{"empty", ``, true, nil},
		{"bad JSON", `{"sys":`, true, nil},
		{"not an object", `[1,2]`, true, nil},
		{"sys not an object", `{"sys":"x"}`, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseHandshakeRequest([]byte(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Sys == nil {
				t.Fatal("nil Sys without error")
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestHandshakeResponseJSON(t *testing.T) {
	// The error answers are exactly {"code":500} and {"code":501}.
	for _, code := range []int{CodeBadRequest, CodeOldClient} {
		b, err := json.Marshal(HandshakeResponse{Code: code})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"code":` + map[int]string{500: "500", 501: "501"}[code] + `}`; string(b) != want {
			t.Fatalf("%s, want %s", b, want)
		}
	}
	// useDict and useProto are always present, protos only when set.
	b, err := json.Marshal(HandshakeResponse{Code: CodeOK, Sys: &ServerSys{Heartbeat: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"code":200,"sys":{"heartbeat":3,"useDict":false,"useProto":false}}`; string(b) != want {
		t.Fatalf("%s, want %s", b, want)
	}
}
