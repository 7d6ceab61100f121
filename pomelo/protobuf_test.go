package pomelo

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// stockChatProtos is what a stock chat app with protobuf on would announce,
// in the source form of a serverProtos.json file.
const stockChatProtos = `{"server":{"onChat":{"required string msg":1,"required string from":2,"required string target":3}},"client":{},"version":1503329311000}`

// stockChatProtosParsed is the same in the parsed form pomelo servers send.
const stockChatProtosParsed = `{"server":{"onChat":{
	"msg":{"option":"required","type":"string","tag":1},
	"from":{"option":"required","type":"string","tag":2},
	"target":{"option":"required","type":"string","tag":3},
	"__messages":{},"__tags":{"1":"msg","2":"from","3":"target"}}},
	"client":{},"version":"9yXZpVZIphWj+KMcz2W0tg=="}`

// richProtos covers every type, nesting, repeated fields and shared messages.
const richProtos = `{"server":{
  "all":{
    "optional uInt32 u32":1, "optional int32 i32":2, "optional sInt32 s32":3,
    "optional uInt64 u64":4, "optional int64 i64":5, "optional sInt64 s64":6,
    "optional bool b":7, "optional float f":8, "optional double d":9,
    "optional string s":10, "optional object o":11, "optional Item item":12,
    "repeated uInt32 ru32":13, "repeated sInt32 rs32":14, "repeated double rd":15,
    "repeated float rf":16, "repeated string rs":17, "repeated Item items":18,
    "repeated bool rb":19, "optional Shared shared":20,
    "message Item":{"required uInt32 id":1, "optional string name":2, "repeated Item children":3}
  },
  "parsed":{
    "x":{"option":"optional","type":"Inner","tag":1},
    "__messages":{"Inner":{"y":{"option":"required","type":"sInt64","tag":1},"__messages":{},"__tags":{"1":"y"}}},
    "__tags":{"1":"x"}
  },
  "message Shared":{"optional int64 n":1}
},
"client":{"chat.chatHandler.send":{"required string rid":1,"required string content":2,"required string from":3,"required string target":4}},
"version":7}`

func mustProtos(t testing.TB, s string) *Protos {
	t.Helper()
	p, err := ParseProtos(json.RawMessage(s))
	if err != nil {
		t.Fatalf("ParseProtos: %v", err)
	}
	return p
}

var onChatBody = []byte("\x0a\x09hello all\x12\x05alice\x1a\x01*")

func TestProtobufGoldenOnChat(t *testing.T) {
	const want = `{"msg":"hello all","from":"alice","target":"*"}`
	for _, tc := range []struct {
		name, protos, version string
	}{
		{"source form", stockChatProtos, "1503329311000"},
		{"parsed form", stockChatProtosParsed, `"9yXZpVZIphWj+KMcz2W0tg=="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustProtos(t, tc.protos)
			if string(p.Version) != tc.version {
				t.Fatalf("version %s, want %s", p.Version, tc.version)
			}
			if !p.HasServer("onChat") || p.HasServer("onAdd") || p.HasClient("onChat") {
				t.Fatal("HasServer/HasClient wrong")
			}
			// The captured push: DATA body -> message -> protobuf body -> JSON.
			vecs := loadVectors(t)
			m, err := ParseMessage(vecs["push-onchat-protobuf"].data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Body, onChatBody) {
				t.Fatalf("body % x", m.Body)
			}
			got, err := p.DecodeServer(m.Route, m.Body)
			if err != nil || string(got) != want {
				t.Fatalf("DecodeServer = %s, %v; want %s", got, err, want)
			}
			enc, err := p.EncodeServer("onChat", []byte(want))
			if err != nil || !bytes.Equal(enc, onChatBody) {
				t.Fatalf("EncodeServer = % x, %v; want % x", enc, err, onChatBody)
			}
			// Key order and extra keys of the JSON do not matter (pomelo ignores
			// keys that are not in the proto, like the route in onAdd bodies).
			enc, err = p.EncodeServer("onChat", []byte(`{"route":"onChat","target":"*","from":"alice","msg":"hello all"}`))
			if err != nil || !bytes.Equal(enc, onChatBody) {
				t.Fatalf("EncodeServer reordered = % x, %v", enc, err)
			}
			// A whole stock push package, as our tests' fake stock server sends it.
			pkg, err := AppendData(nil, &Message{Type: Push, Route: "onChat", Body: enc})
			if err != nil || !bytes.Equal(pkg[HeaderLen:], vecs["push-onchat-protobuf"].data) {
				t.Fatalf("push package % x, %v", pkg, err)
			}
		})
	}
}

func TestProtobufWireBytes(t *testing.T) {
	p := mustProtos(t, richProtos)
	tests := []struct {
		name string
		json string
		wire string // hex
	}{
		{"uInt32 300", `{"u32":300}`, "08 ac 02"},
		{"int32 -1 is zigzag like pomelo", `{"i32":-1}`, "10 01"},
		{"int32 1", `{"i32":1}`, "10 02"},
		{"sInt32 min", `{"s32":-2147483648}`, "18 ff ff ff ff 0f"},
		{"uInt64 max", `{"u64":18446744073709551615}`, "20 ff ff ff ff ff ff ff ff ff 01"},
		{"int64 min", `{"i64":-9223372036854775808}`, "28 ff ff ff ff ff ff ff ff ff 01"},
		{"sInt64 -2", `{"s64":-2}`, "30 03"},
		{"bool", `{"b":true}`, "38 01"},
		{"float 1.5", `{"f":1.5}`, "45 00 00 c0 3f"},
		{"double 0.25", `{"d":0.25}`, "49 00 00 00 00 00 00 d0 3f"},
		{"string", `{"s":"héllo"}`, "52 06 68 c3 a9 6c 6c 6f"},
		{"object", `{"o":{"a":[1,2]}}`, "5a 0b" + hexOf(`{"a":[1,2]}`)},
		{"nested", `{"item":{"id":7}}`, "62 02 08 07"},
		{"nested nested", `{"item":{"id":1,"children":[{"id":2},{"id":3,"name":"c"}]}}`,
			"62 0d 08 01 1a 02 08 02 1a 05 08 03 12 01 63"},
		{"repeated uInt32 packed with a count", `{"ru32":[1,2,300]}`, "68 03 01 02 ac 02"},
		{"repeated sInt32", `{"rs32":[-1,1]}`, "70 02 01 02"},
		{"repeated double", `{"rd":[1]}`, "79 01 00 00 00 00 00 00 f0 3f"},
		{"repeated float", `{"rf":[1,-2]}`, "85 01 02 00 00 80 3f 00 00 00 c0"},
		{"repeated string repeats the key", `{"rs":["a","b"]}`, "8a 01 01 61 8a 01 01 62"},
		{"repeated message", `{"items":[{"id":1},{"id":2}]}`, "92 01 02 08 01 92 01 02 08 02"},
		{"repeated bool", `{"rb":[true,false]}`, "98 01 02 01 00"},
		{"shared top-level message", `{"shared":{"n":-3}}`, "a2 01 02 08 05"},
		{"tag order", `{"s":"x","u32":1}`, "08 01 52 01 78"},
		{"empty", `{}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire := hx(t, "h:"+tc.wire)
			enc, err := p.EncodeServer("all", []byte(tc.json))
			if err != nil || !bytes.Equal(enc, wire) {
				t.Fatalf("EncodeServer = % x, %v; want % x", enc, err, wire)
			}
			dec, err := p.DecodeServer("all", wire)
			if err != nil {
				t.Fatalf("DecodeServer: %v", err)
			}
			if !jsonEqual(t, dec, []byte(tc.json)) {
				t.Fatalf("DecodeServer = %s, want %s", dec, tc.json)
			}
		})
	}
}

func hexOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString(" ")
		b.WriteString("0123456789abcdef"[s[i]>>4 : s[i]>>4+1])
		b.WriteString("0123456789abcdef"[s[i]&0xf : s[i]&0xf+1])
	}
	return b.String()
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestProtobufDecodeForms(t *testing.T) {
	p := mustProtos(t, richProtos)
	tests := []struct {
		name  string
		route string
		wire  string
		want  string
	}{
		{"standard packed is accepted", "all", "6a 04 01 02 ac 02", `{"ru32":[1,2,300]}`},
		{"two packed runs concatenate", "all", "68 01 01 6a 01 02", `{"ru32":[1,2]}`},
		{"count 0 gives an empty array", "all", "68 00", `{"ru32":[]}`},
		{"last value wins", "all", "08 01 08 02", `{"u32":2}`},
		{"fields come out in tag order", "all", "52 01 78 08 01", `{"u32":1,"s":"x"}`},
		{"repeated string across other fields", "all", "8a 01 01 61 08 05 8a 01 01 62", `{"u32":5,"rs":["a","b"]}`},
		{"empty nested message", "all", "a2 01 00", `{"shared":{}}`},
		{"last nested message wins", "all", "a2 01 02 08 05 a2 01 00", `{"shared":{}}`},
		{"parsed-form nested", "parsed", "0a 02 08 03", `{"x":{"y":-2}}`},
		{"non-canonical varint", "all", "08 81 00", `{"u32":1}`},
		{"bool 2 is true", "all", "38 02", `{"b":true}`},
		{"uInt32 carries a ms timestamp as in pomelo", "all", "08 80 d0 95 ff bc 31", `{"u32":1700000000000}`},
		{"int32 carries 64 bits", "all", "10 ff ff ff ff ff ff ff ff ff 01", `{"i32":-9223372036854775808}`},
		{"float -0", "all", "45 00 00 00 80", `{"f":-0}`},
		{"double 1e300", "all", "49 " + hexLE(math.Float64bits(1e300)), `{"d":1e+300}`},
		{"string escapes", "all", "52 0a 22 5c 0a 01 ff e2 80 a8 3c 41", `{"s":"\"\\\n\u0001\ufffd\u2028<A"}`},
		{"object with spaces", "all", "5a 05 20 5b 31 5d 20", `{"o":[1]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.DecodeServer(tc.route, hx(t, "h:"+tc.wire))
			if err != nil || string(got) != tc.want {
				t.Fatalf("DecodeServer = %s, %v; want %s", got, err, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON %s", got)
			}
		})
	}
}

func hexLE(v uint64) string {
	var s []string
	for i := 0; i < 8; i++ {
		s = append(s, hexOf(string([]byte{byte(v >> (8 * i))}))[1:])
	}
	return strings.Join(s, " ")
}

func TestProtobufDecodeErrors(t *testing.T) {
	p := mustProtos(t, richProtos)
	chat := mustProtos(t, stockChatProtos)
	tests := []struct {
		name  string
		p     *Protos
		route string
		wire  []byte
		path  string
		tag   uint32
		wt    int
		msg   string
	}{
		{"unknown tag", p, "all", hx(t, "h:f8 07 01"), "", 127, 0, "unknown tag"},
		{"wrong wire type", chat, "onChat", hx(t, "h:08 01"), "msg", 1, 0, "want wire type 2"},
		{"string as fixed32", chat, "onChat", hx(t, "h:0d 00 00 00 00"), "msg", 1, 5, "want wire type 2"},
		{"truncated key", p, "all", hx(t, "h:80"), "", 0, -1, "bad field key"},
		{"truncated varint value", p, "all", hx(t, "h:08 80"), "u32", 1, 0, "truncated"},
		{"length past end", chat, "onChat", hx(t, "h:0a 09 68 69"), "msg", 1, 2, "past the end"},
		{"bad length varint", chat, "onChat", hx(t, "h:0a ff"), "msg", 1, 2, "bad length"},
		{"truncated float", p, "all", hx(t, "h:45 00 00"), "f", 8, 5, "truncated"},
		{"packed count past end", p, "all", hx(t, "h:68 05 01 02"), "ru32", 13, 0, "packed count 5"},
		{"huge packed count", p, "all", hx(t, "h:68 ff ff ff ff ff ff ff ff ff 01 01"), "ru32", 13, 0, "packed count"},
		{"standard packed truncated element", p, "all", hx(t, "h:6a 01 80"), "ru32", 13, 2, "truncated packed"},
		{"required missing", chat, "onChat", hx(t, "h:0a 01 61 12 01 62"), "target", 3, -1, "required field missing"},
		{"required missing in nested", p, "all", hx(t, "h:62 02 12 00"), "item.id", 1, -1, "required field missing"},
		{"empty repeated message missing required", p, "all", hx(t, "h:92 01 00"), "items[0].id", 1, -1, "required field missing"},
		{"NaN float", p, "all", hx(t, "h:45 00 00 c0 7f"), "f", 8, -1, "no JSON form"},
		{"Inf double", p, "all", hx(t, "h:49 00 00 00 00 00 00 f0 7f"), "d", 9, -1, "no JSON form"},
		{"invalid object", p, "all", hx(t, "h:5a 01 7b"), "o", 11, -1, "not valid JSON"},
		{"error inside repeated message", p, "all", hx(t, "h:92 01 02 08 01 92 01 02 08 80"), "items[1].id", 1, 0, "truncated"},
		{"varint over 64 bits", p, "all", hx(t, "h:20 ff ff ff ff ff ff ff ff ff 7f"), "u64", 4, 0, "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := tc.p.AppendDecodeServer(dst, tc.route, tc.wire)
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q on error %v", out, err)
			}
			var pe *ProtoError
			if !errors.Is(err, ErrProtobuf) || !errors.As(err, &pe) {
				t.Fatalf("err %v, want a *ProtoError", err)
			}
			if pe.Route != tc.route || pe.Path != tc.path || pe.Tag != tc.tag || pe.WireType != tc.wt ||
				!strings.Contains(pe.Msg, tc.msg) || pe.Offset < 0 || pe.Offset > len(tc.wire) {
				t.Fatalf("got %+v (%v)\nwant route %q path %q tag %d wire type %d msg ~%q",
					*pe, err, tc.route, tc.path, tc.tag, tc.wt, tc.msg)
			}
		})
	}
	if _, err := p.DecodeServer("nope", nil); !errors.Is(err, ErrProtobuf) || !strings.Contains(err.Error(), "no server proto") {
		t.Fatalf("unknown route: %v", err)
	}
	var nilP *Protos
	if _, err := nilP.DecodeServer("onChat", onChatBody); !errors.Is(err, ErrProtobuf) {
		t.Fatalf("nil protos: %v", err)
	}
}

func TestProtobufDepthLimit(t *testing.T) {
	p := mustProtos(t, `{"server":{"r":{"optional N n":1,"message N":{"optional N n":1}}}}`)
	var body []byte
	for i := 0; i < maxProtoDepth+5; i++ {
		body = append(append([]byte{0x0a}, appendUvarintForTest(len(body))...), body...)
	}
	if _, err := p.DecodeServer("r", body); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Fatalf("deep body: %v", err)
	}
	j := strings.Repeat(`{"n":`, maxProtoDepth+5) + "{}" + strings.Repeat("}", maxProtoDepth+5)
	if _, err := p.EncodeServer("r", []byte(j)); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Fatalf("deep JSON: %v", err)
	}
	// Just under the limit works both ways.
	j = strings.Repeat(`{"n":`, maxProtoDepth) + "{}" + strings.Repeat("}", maxProtoDepth)
	enc, err := p.EncodeServer("r", []byte(j))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := p.DecodeServer("r", enc)
	if err != nil || string(dec) != j {
		t.Fatalf("%s, %v", dec, err)
	}
}

func appendUvarintForTest(n int) []byte {
	var b []byte
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

func TestProtobufEncodeErrors(t *testing.T) {
	p := mustProtos(t, richProtos)
	chat := mustProtos(t, stockChatProtos)
	tests := []struct {
		name  string
		p     *Protos
		route string
		json  string
		path  string
		msg   string
	}{
		{"required missing", chat, "onChat", `{"msg":"a","from":"b"}`, "target", "required field missing"},
		{"required null", chat, "onChat", `{"msg":"a","from":"b","target":null}`, "target", "required field missing"},
		{"string wants a string", chat, "onChat", `{"msg":1,"from":"b","target":"*"}`, "msg", "want a JSON string"},
		{"not an object", chat, "onChat", `[1]`, "", "want a JSON object"},
		{"bad JSON", chat, "onChat", `{"msg":`, "", "want a JSON object"},
		{"uInt32 negative", p, "all", `{"u32":-1}`, "u32", "is not a uInt32"},
		{"uInt32 over 64 bits", p, "all", `{"u32":18446744073709551616}`, "u32", "is not a uInt32"},
		{"uInt32 fraction", p, "all", `{"u32":1.5}`, "u32", "is not a uInt32"},
		{"int32 under 64 bits", p, "all", `{"i32":-9223372036854775809}`, "i32", "is not a int32"},
		{"float spelling out of range", p, "all", `{"u64":1.8446744073709552e19}`, "u64", "is not a uInt64"},
		{"int64 too big", p, "all", `{"i64":9223372036854775808}`, "i64", "is not a int64"},
		{"number as string", p, "all", `{"u64":"12"}`, "u64", "want a JSON number"},
		{"bool wants a bool", p, "all", `{"b":1}`, "b", "want true or false"},
		{"float out of range", p, "all", `{"f":1e39}`, "f", "out of float range"},
		{"double wants a number", p, "all", `{"d":"x"}`, "d", "want a JSON number"},
		{"repeated wants an array", p, "all", `{"ru32":1}`, "ru32", "wants a JSON array"},
		{"bad element", p, "all", `{"rs32":[1,"x"]}`, "rs32[1]", "want a JSON number"},
		{"nested required", p, "all", `{"items":[{"id":1},{"name":"x"}]}`, "items[1].id", "required field missing"},
		{"nested not object", p, "all", `{"item":3}`, "item", "want a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.p.AppendEncodeServer([]byte("keep"), tc.route, []byte(tc.json))
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q", out)
			}
			var pe *ProtoError
			if !errors.As(err, &pe) || !errors.Is(err, ErrProtobuf) {
				t.Fatalf("err %v", err)
			}
			if pe.Path != tc.path || !strings.Contains(pe.Msg, tc.msg) || pe.Offset != -1 || pe.Route != tc.route {
				t.Fatalf("got %+v, want path %q msg ~%q", *pe, tc.path, tc.msg)
			}
		})
	}
	if _, err := p.EncodeServer("nope", []byte(`{}`)); !errors.Is(err, ErrProtobuf) {
		t.Fatalf("unknown route: %v", err)
	}
	// Integral numbers in other spellings are accepted; empty arrays are not written.
	enc, err := p.EncodeServer("all", []byte(`{"u32":1e2,"i32":-3.0,"ru32":[],"rs":[],"items":null}`))
	if err != nil || !bytes.Equal(enc, hx(t, "h:08 64 10 05")) {
		t.Fatalf("% x, %v", enc, err)
	}
}

func TestProtobufClientSide(t *testing.T) {
	p := mustProtos(t, richProtos)
	route := "chat.chatHandler.send"
	if !p.HasClient(route) || p.HasServer(route) {
		t.Fatal("client route misplaced")
	}
	body := `{"rid":"room1","content":"hi","from":"alice","target":"*"}`
	enc, err := p.EncodeClient(route, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := hx(t, "h:0a 05", "room1", "h:12 02", "hi", "h:1a 05", "alice", "h:22 01", "*")
	if !bytes.Equal(enc, want) {
		t.Fatalf("% x, want % x", enc, want)
	}
	dec, err := p.DecodeClient(route, enc)
	if err != nil || string(dec) != body {
		t.Fatalf("%s, %v", dec, err)
	}
	if _, err := p.DecodeServer(route, enc); err == nil {
		t.Fatal("client route decoded with server protos")
	}
	if got := p.ClientRoutes(); !reflect.DeepEqual(got, []string{route}) {
		t.Fatalf("ClientRoutes %q", got)
	}
	if got := p.ServerRoutes(); !reflect.DeepEqual(got, []string{"all", "parsed"}) {
		t.Fatalf("ServerRoutes %q", got)
	}
}

func TestParseProtos(t *testing.T) {
	good := []struct {
		name, raw string
		server    []string
	}{
		{"empty object", `{}`, []string{}},
		{"version only", `{"version":3}`, []string{}},
		{"null sides", `{"server":null,"client":null}`, []string{}},
		{"extra spaces in keys", `{"server":{"r":{"required   string  a":1}}}`, []string{"r"}},
		{"quoted tag", `{"server":{"r":{"a":{"option":"optional","type":"uInt32","tag":"2"}}}}`, []string{"r"}},
		{"outer-scope type", `{"server":{"r":{"optional A a":1,"message A":{"optional B b":1},"message B":{"optional uInt32 x":1}}}}`, []string{"r"}},
		{"recursive type", `{"server":{"r":{"optional N n":1,"message N":{"optional N n":1}}}}`, []string{"r"}},
		{"standard type spellings", `{"server":{"r":{"optional uint32 a":1,"optional sint64 b":2,"optional boolean c":3}}}`, []string{"r"}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			p := mustProtos(t, tc.raw)
			if got := p.ServerRoutes(); !reflect.DeepEqual(got, tc.server) {
				t.Fatalf("routes %q, want %q", got, tc.server)
			}
		})
	}
	bad := []struct {
		name, raw, msg string
	}{
		{"empty", ``, "want a JSON object"},
		{"null", `null`, "want a JSON object"},
		{"array", `[]`, "want a JSON object"},
		{"server not object", `{"server":1}`, "protos.server"},
		{"route not object", `{"server":{"r":1}}`, "not a JSON object"},
		{"bad option", `{"server":{"r":{"needed string a":1}}}`, "unknown option"},
		{"bad key", `{"server":{"r":{"required string a b":1}}}`, "want \"option type name\""},
		{"tag 0", `{"server":{"r":{"required string a":0}}}`, "tag 0"},
		{"negative tag", `{"server":{"r":{"required string a":-1}}}`, "tag -1"},
		{"tag too big", `{"server":{"r":{"required string a":536870912}}}`, "tag"},
		{"tag not a number", `{"server":{"r":{"required string a":"x"}}}`, "tag"},
		{"duplicate tag", `{"server":{"r":{"required string a":1,"optional string b":1}}}`, "share tag 1"},
		{"duplicate name", `{"server":{"r":{"required string a":1,"optional uInt32 a":2}}}`, "defined twice"},
		{"unknown type", `{"server":{"r":{"required Foo a":1}}}`, `unknown type "Foo"`},
		{"unknown type in nested", `{"server":{"r":{"message M":{"optional Bar b":1}}}}`, `unknown type "Bar"`},
		{"parsed field not object", `{"server":{"r":{"a":1}}}`, "want {option,type,tag}"},
		{"parsed bad option", `{"server":{"r":{"a":{"option":"x","type":"string","tag":1}}}}`, "unknown option"},
		{"parsed no type", `{"server":{"r":{"a":{"option":"optional","tag":1}}}}`, "no type"},
		{"__messages not object", `{"server":{"r":{"__messages":3}}}`, "__messages"},
		{"nested twice", `{"server":{"r":{"message A":{},"__messages":{"A":{}}}}}`, "defined twice"},
		{"client side checked", `{"client":{"r":{"required Foo a":1}}}`, "protos.client"},
		{"bad top-level message", `{"server":{"message M":{"optional X x":1}}}`, "unknown type"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseProtos(json.RawMessage(tc.raw))
			if err == nil || !errors.Is(err, ErrProtobuf) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, %v; want error ~%q", p, err, tc.msg)
			}
		})
	}
}

func TestProtosMarshalParsedForm(t *testing.T) {
	p := mustProtos(t, stockChatProtos)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(stockChatProtosParsed, `"9yXZpVZIphWj+KMcz2W0tg=="`, "1503329311000", 1)
	if !jsonEqual(t, b, []byte(want)) {
		t.Fatalf("parsed form\n%s\nwant\n%s", b, want)
	}
	// Every form parses to protos that encode and decode the same.
	rich := mustProtos(t, richProtos)
	b, err = json.Marshal(rich)
	if err != nil {
		t.Fatal(err)
	}
	back := mustProtos(t, string(b))
	if string(back.Version) != "7" || !reflect.DeepEqual(back.ServerRoutes(), rich.ServerRoutes()) ||
		!reflect.DeepEqual(back.ClientRoutes(), rich.ClientRoutes()) {
		t.Fatalf("round trip lost routes or version: %s", b)
	}
	for _, body := range protoSeeds(t, rich) {
		j1, err1 := rich.DecodeServer("all", body)
		j2, err2 := back.DecodeServer("all", body)
		if string(j1) != string(j2) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("% x: %s/%v vs %s/%v", body, j1, err1, j2, err2)
		}
	}
	again, err := json.Marshal(back)
	if err != nil || !jsonEqual(t, again, b) {
		t.Fatalf("marshal not stable: %s", again)
	}
}

func TestNilProtos(t *testing.T) {
	var p *Protos
	if p.HasServer("onChat") || p.HasClient("x") || p.ServerRoutes() != nil || p.ClientRoutes() != nil {
		t.Fatal("nil protos has routes")
	}
	if _, err := p.EncodeServer("onChat", []byte(`{}`)); !errors.Is(err, ErrProtobuf) {
		t.Fatal(err)
	}
}

func TestProtoErrorText(t *testing.T) {
	e := &ProtoError{Route: "onChat", Path: "msg", Tag: 1, WireType: 0, Offset: 0, Msg: "want wire type 2 for string"}
	want := `pomelo: protobuf: route "onChat": field "msg" tag 1 wire type 0 at byte 0: want wire type 2 for string`
	if e.Error() != want {
		t.Fatalf("%s\nwant %s", e.Error(), want)
	}
}

func TestProtobufDecodeDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	p := mustProtos(t, stockChatProtos)
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = p.AppendDecodeServer(buf[:0], "onChat", onChatBody)
		if err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("AppendDecodeServer: %v allocs/op", n)
	}
	// With the route as bytes, straight from ParseMessageRoute.
	push := loadVectors(t)["push-onchat-protobuf"].data
	n = testing.AllocsPerRun(100, func() {
		m, route, err := ParseMessageRoute(push)
		if err != nil || !p.HasServerBytes(route) {
			t.Fatal("not a protobuf push", err)
		}
		if buf, err = p.AppendDecodeServerBytes(buf[:0], route, m.Body); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 || string(buf) != `{"msg":"hello all","from":"alice","target":"*"}` {
		t.Fatalf("AppendDecodeServerBytes: %v allocs/op, %s", n, buf)
	}
	if _, err := p.AppendDecodeServerBytes(nil, []byte("onAdd"), nil); !errors.Is(err, ErrProtobuf) {
		t.Fatal(err)
	}
	if _, err := p.AppendDecodeServerBytes(nil, []byte("onChat"), []byte{0x08}); !errors.Is(err, ErrProtobuf) ||
		!strings.Contains(err.Error(), `route "onChat"`) {
		t.Fatal(err)
	}
	var nilP *Protos
	if nilP.HasServerBytes([]byte("onChat")) {
		t.Fatal("nil protos")
	}
}

func BenchmarkDecodeServerOnChat(b *testing.B) {
	p := mustProtos(b, stockChatProtos)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(onChatBody)))
	for b.Loop() {
		var err error
		if buf, err = p.AppendDecodeServer(buf[:0], "onChat", onChatBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeServerOnChat(b *testing.B) {
	p := mustProtos(b, stockChatProtos)
	body := []byte(`{"msg":"hello all","from":"alice","target":"*"}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.AppendEncodeServer(buf[:0], "onChat", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeServerBytesPush(b *testing.B) {
	// The driver's receive path for a stock protobuf push: message, then body.
	p := mustProtos(b, stockChatProtos)
	push := loadVectors(b)["push-onchat-protobuf"].data
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(push)))
	for b.Loop() {
		m, route, err := ParseMessageRoute(push)
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = p.AppendDecodeServerBytes(buf[:0], route, m.Body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProtosServerFields(t *testing.T) {
	chat := []Field{{"msg", 1, "string", "required"}, {"from", 2, "string", "required"}, {"target", 3, "string", "required"}}
	for _, tc := range []struct {
		name, protos, route string
		want                []Field
	}{
		{"source form", stockChatProtos, "onChat", chat},
		{"parsed form", stockChatProtosParsed, "onChat", chat},
		{"tag order, message types", richProtos, "parsed", []Field{{"x", 1, "Inner", "optional"}}},
		{"no such route", stockChatProtos, "onAdd", nil},
		{"client route is not a server route", richProtos, "chat.chatHandler.send", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustProtos(t, tc.protos).ServerFields(tc.route)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ServerFields(%q) = %+v, want %+v", tc.route, got, tc.want)
			}
		})
	}
	if f := mustProtos(t, richProtos).ServerFields("all"); len(f) != 20 || f[0].Tag != 1 || f[19].Tag != 20 || f[16] != (Field{"rs", 17, "string", "repeated"}) {
		t.Fatalf("ServerFields(all) = %+v", f)
	}
	if (*Protos)(nil).ServerFields("onChat") != nil {
		t.Fatal("nil protos has fields")
	}
}
