package chatproto

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"error", AppendError(nil, CodeNotInRoom, `enter "r" first`), `{"code":403,"error":true,"message":"enter \"r\" first"}`},
		{"error without message", AppendError(nil, CodeFailed, ""), `{"code":500,"error":true}`},
		{"error appends", AppendError([]byte("x"), CodeNoRoute, "no"), `x{"code":404,"error":true,"message":"no"}`},
		{"queryEntry", AppendQueryEntry(nil, "alice"), `{"uid":"alice"}`},
		{"enter", AppendEnter(nil, "al\"ice", "lobby"), `{"username":"al\"ice","rid":"lobby"}`},
		{"switchRoom", AppendSwitch(nil, "r2"), `{"rid":"r2"}`},
		{"send", AppendSend(nil, "r", "hi\n", "alice", "*"), `{"rid":"r","content":"hi\n","from":"alice","target":"*"}`},
		{"entry", AppendEntry(nil, "127.0.0.1", 3010), `{"code":200,"host":"127.0.0.1","port":3010}`},
		{"users", AppendUsers(nil, []string{"alice", `b"ob`}), `{"users":["alice","b\"ob"]}`},
		{"no users", AppendUsers(nil, nil), `{"users":[]}`},
		{"onAdd", AppendUserPush(nil, PushAdd, "alice"), `{"route":"onAdd","user":"alice"}`},
		{"onChat", AppendChatPush(nil, "hi <all> & \"you\"\n", "alice", "*"), `{"msg":"hi <all> & \"you\"\n","from":"alice","target":"*"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
			body := tc.got
			if body[0] == 'x' {
				body = body[1:]
			}
			if !json.Valid(body) {
				t.Fatalf("%s is not valid JSON", body)
			}
		})
	}
}

// Quote agrees with encoding/json on the decoded text, for every kind of
// character the chat names and contents may hold.
func TestQuote(t *testing.T) {
	for _, s := range []string{"", "alice", `quo"te\`, "tab\tnl\n", "\x01", "é漢字🙂", "<&>", "\u2028"} {
		var back string
		if err := json.Unmarshal([]byte(Quote(s)), &back); err != nil || back != s {
			t.Fatalf("Quote(%q) = %s decodes to %q, %v", s, Quote(s), back, err)
		}
	}
}

func TestRoutes(t *testing.T) {
	want := []string{RouteQueryEntry, RouteEnter, RouteSwitch, RouteSend}
	r := Routes()
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("Routes() = %v, want %v", r, want)
	}
	r[0] = "changed"
	if Routes()[0] != RouteQueryEntry {
		t.Fatal("Routes returns a shared slice")
	}
}
