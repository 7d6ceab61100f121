package chat

import (
	"strings"
	"testing"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/pomelo"
)

func TestEncodeChatPushGolden(t *testing.T) {
	pkt := EncodeChatPush("hi <b>", "alice", "*")
	want := "\x04\x00\x00\x34\x06\x06onChat" + `{"msg":"hi <b>","from":"alice","target":"*"}`
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
	add := EncodeUserPush(chatproto.PushAdd, "bob")
	if !strings.HasSuffix(string(add), `{"route":"onAdd","user":"bob"}`) {
		t.Fatalf("onAdd = %q", add)
	}
}

func BenchmarkEncodeChatPush(b *testing.B) {
	content := strings.Repeat("x", 64)
	b.ReportAllocs()
	for b.Loop() {
		EncodeChatPush(content, "user1234", "*")
	}
}
