package client

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/pomelo"
)

func TestResponseCode(t *testing.T) {
	tests := []struct {
		body string
		code int
		ok   bool
	}{
		{`{"code":200,"host":"127.0.0.1","port":3050}`, 200, true},
		{`{"code":500,"error":true}`, 500, true},
		{`{"code": 429, "error":true,"message":"rate"}`, 429, true},
		{`{"users":["code","a"]}`, 0, false},
		{`{}`, 0, false},
		{`{"code":"x"}`, 0, false},
		{`{"code":-1}`, -1, true},
	}
	for _, tc := range tests {
		code, ok := ResponseCode([]byte(tc.body))
		if code != tc.code || ok != tc.ok {
			t.Errorf("ResponseCode(%s) = %d, %v; want %d, %v", tc.body, code, ok, tc.code, tc.ok)
		}
	}
}

func TestChatMsgJSON(t *testing.T) {
	tests := []struct {
		body, msg string
		ok        bool
	}{
		{`{"msg":"hello","from":"a","target":"*"}`, "hello", true},
		{`{"route":"onChat","msg":"he said \"hi\"","from":"a","target":"*"}`, `he said \"hi\"`, true},
		{`{"from":"msg","msg" : "x"}`, "x", true},
		{`{"from":"a"}`, "", false},
		{`{"msg":"unterminated`, "", false},
		{`{"msg":"say \"hi\" \\","from":"a"}`, `say \"hi\" \\`, true},
		{`{"msg":"escaped end\"`, "", false},
	}
	for _, tc := range tests {
		msg, ok := ChatMsg(&Push{Body: []byte(tc.body)})
		if string(msg) != tc.msg || ok != tc.ok {
			t.Errorf("ChatMsg(%s) = %q, %v; want %q, %v", tc.body, msg, ok, tc.msg, tc.ok)
		}
	}
}

// stock chat protos, in the source form and the parsed form a stock pomelo
// server puts in its handshake
var chatProtos = map[string]string{
	"source":     `{"server":{"onChat":{"required string msg":1,"required string from":2,"required string target":3}},"client":{},"version":1589362245712}`,
	"parsed":     `{"server":{"onChat":{"msg":{"option":"required","type":"string","tag":1},"from":{"option":"required","type":"string","tag":2},"target":{"option":"required","type":"string","tag":3},"__messages":{},"__tags":{"1":"msg","2":"from","3":"target"}}},"client":{},"version":7}`,
	"renumbered": `{"server":{"onChat":{"required string target":1,"required string msg":5,"required string from":9}},"client":{}}`,
}

// TestProtobufPush decodes the captured onChat protobuf push of the protocol
// doc (06 06 onChat 0a 09 "hello all" 12 05 "alice" 1a 01 "*") on the read path.
func TestProtobufPush(t *testing.T) {
	for name, raw := range chatProtos {
		t.Run(name, func(t *testing.T) {
			f := NewFleet(Options{})
			defer f.Close()
			f.mu.Lock()
			ps, _, err := f.adoptProtos([]byte(raw), "")
			f.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			body, err := ps.p.EncodeServer("onChat", []byte(`{"msg":"hello all","from":"alice","target":"*"}`))
			if err != nil {
				t.Fatal(err)
			}
			if name == "source" {
				want := "0a0968656c6c6f20616c6c1205616c6963651a012a"
				if hex.EncodeToString(body) != want {
					t.Fatalf("encoded %x, want the captured %s", body, want)
				}
			}
			m := pomelo.Message{Type: pomelo.Push, Route: "onChat", Body: body}
			data, _ := pomelo.AppendMessage(nil, &m)
			var got []string
			c := &Client{f: f, protos: ps, h: &Handlers{Push: func(p *Push) {
				msg, from, target, ok := ChatFields(p)
				js, err := p.DecodeBody(nil)
				got = append(got, strings.Join([]string{string(msg), string(from), string(target)}, "|"), string(js))
				if !ok || err != nil || !p.Proto {
					t.Errorf("proto %v ok %v err %v", p.Proto, ok, err)
				}
			}}}
			if err := c.handleData(data, &Push{Client: c}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != "hello all|alice|*" || !strings.Contains(got[1], `"msg":"hello all"`) {
				t.Errorf("got %q", got)
			}
		})
	}
}

// BenchmarkPushPath is the client half of the receive path: one DATA
// message with an onChat push, parsed and handed to the handler.
func BenchmarkPushPath(b *testing.B) {
	m := pomelo.Message{Type: pomelo.Push, Route: "onChat",
		Body: []byte(`{"msg":"~1.2.3.4~xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","from":"u000001","target":"*"}`)}
	data, _ := pomelo.AppendMessage(nil, &m)
	n := 0
	c := &Client{h: &Handlers{Push: func(p *Push) {
		if msg, ok := ChatMsg(p); ok {
			n += len(msg)
		}
	}}}
	push := &Push{Client: c}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.handleData(data, push)
	}
}
