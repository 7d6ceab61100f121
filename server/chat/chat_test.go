package chat

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatbench/chatbench/pomelo"
)

func TestEncodeChatPushGolden(t *testing.T) {
	pkt := EncodeChatPush("hi <b>", "alice", "*")
	want := "\x04\x00\x00\x3e\x06\x06onChat" + `{"msg":"hi \u003cb\u003e","from":"alice","target":"*"}`
	if string(pkt) != want {
		t.Fatalf("EncodeChatPush =\n%q\nwant\n%q", pkt, want)
	}
	p, rest, err := pomelo.ParsePackage(pkt, 0)
	if err != nil || len(rest) != 0 {
		t.Fatal(err)
	}
	m, err := pomelo.ParseMessage(p.Body)
	if err != nil || m.Type != pomelo.Push || m.Route != "onChat" {
		t.Fatalf("%+v %v", m, err)
	}
	add := EncodeUserPush(PushAdd, "bob")
	if !strings.HasSuffix(string(add), `{"route":"onAdd","user":"bob"}`) {
		t.Fatalf("onAdd = %q", add)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te\back`, "\x00\x1f\n\t\r", "<&>", "é漢字🙂", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // bodies come from encoding/json, which already replaced invalid UTF-8
		}
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil || got != s {
			t.Fatalf("appendJSONString(%q) = %s: decodes to %q, %v", s, b, got, err)
		}
	})
}

func BenchmarkEncodeChatPush(b *testing.B) {
	content := strings.Repeat("x", 64)
	b.ReportAllocs()
	for b.Loop() {
		EncodeChatPush(content, "user1234", "*")
	}
}
