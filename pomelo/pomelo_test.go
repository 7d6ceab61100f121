package pomelo

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

// hx builds bytes from pieces: a piece starting with "h:" is hex (spaces
// allowed), anything else is taken literally.
func hx(t testing.TB, pieces ...string) []byte {
	t.Helper()
	var out []byte
	for _, p := range pieces {
		if rest, ok := strings.CutPrefix(p, "h:"); ok {
			b, err := hex.DecodeString(strings.ReplaceAll(rest, " ", ""))
			if err != nil {
				t.Fatalf("bad hex %q: %v", p, err)
			}
			out = append(out, b...)
			continue
		}
		out = append(out, p...)
	}
	return out
}

type vector struct {
	kind string
	data []byte
}

// loadVectors reads testdata/vectors.txt, the captured bytes of the protocol doc.
func loadVectors(t testing.TB) map[string]vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]vector{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			t.Fatalf("bad vector line %q", line)
		}
		b, err := hex.DecodeString(strings.Join(fields[2:], ""))
		if err != nil {
			t.Fatalf("vector %s: %v", fields[0], err)
		}
		out[fields[0]] = vector{kind: fields[1], data: b}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func parseOne(t *testing.T, frame []byte) Package {
	t.Helper()
	p, rest, err := ParsePackage(frame, 0)
	if err != nil {
		t.Fatalf("ParsePackage(% x): %v", frame, err)
	}
	if len(rest) != 0 {
		t.Fatalf("ParsePackage left %d bytes", len(rest))
	}
	return p
}

func TestGoldenVectors(t *testing.T) {
	vecs := loadVectors(t)
	tests := []struct {
		name  string
		doc   []byte // the same bytes rebuilt from the protocol doc's pieces
		pkg   PackageType
		msg   *Message // expected message (nil for non-DATA)
		route string   // expected route bytes from ParseMessageRoute
	}{
		{
			name: "request-string-route",
			doc:  hx(t, "h:04 00 00 2d 00 01 1b", "gate.gateHandler.queryEntry", `{"uid":"alice"}`),
			pkg:  Data,
			msg: &Message{Type: Request, ID: 1, Route: "gate.gateHandler.queryEntry",
				Body: []byte(`{"uid":"alice"}`)},
			route: "gate.gateHandler.queryEntry",
		},
		{
			name: "request-compressed-route",
			doc:  hx(t, "h:04 00 00 26 01 01 00 02", `{"username":"alice","rid":"room1"}`),
			pkg:  Data,
			msg: &Message{Type: Request, ID: 1, Compressed: true, RouteCode: 2,
				Body: []byte(`{"username":"alice","rid":"room1"}`)},
		},
		{name: "heartbeat", doc: hx(t, "h:03 00 00 00"), pkg: Heartbeat},
		{name: "handshake-ack", doc: hx(t, "h:02 00 00 00"), pkg: HandshakeAck},
		{
			name: "push-onchat-protobuf",
			doc:  hx(t, "h:06 06", "onChat", "h:0a 09", "hello all", "h:12 05", "alice", "h:1a 01", "*"),
			msg: &Message{Type: Push, Route: "onChat",
				Body: hx(t, "h:0a 09", "hello all", "h:12 05", "alice", "h:1a 01", "*")},
			route: "onChat",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := vecs[tc.name]
			if !ok {
				t.Fatalf("vector %s missing from testdata/vectors.txt", tc.name)
			}
			if !bytes.Equal(v.data, tc.doc) {
				t.Fatalf("testdata vector\n% x\ndiffers from the doc\n% x", v.data, tc.doc)
			}
			body := v.data
			if v.kind == "frame" {
				p := parseOne(t, v.data)
				if p.Type != tc.pkg {
					t.Fatalf("package type %v, want %v", p.Type, tc.pkg)
				}
				if got := AppendPackage(nil, p.Type, p.Body); !bytes.Equal(got, v.data) {
					t.Fatalf("re-encoded package % x, want % x", got, v.data)
				}
				body = p.Body
			}
			if tc.msg == nil {
				if len(body) != 0 {
					t.Fatalf("body % x, want empty", body)
				}
				return
			}
			m, err := ParseMessage(body)
			if err != nil {
				t.Fatal(err)
			}
			assertMessage(t, m, *tc.msg)
			_, route, err := ParseMessageRoute(body)
			if err != nil || string(route) != tc.route {
				t.Fatalf("ParseMessageRoute route %q, %v; want %q", route, err, tc.route)
			}
			enc, err := AppendMessage(nil, tc.msg)
			if err != nil || !bytes.Equal(enc, body) {
				t.Fatalf("AppendMessage = % x, %v; want % x", enc, err, body)
			}
			if v.kind == "frame" {
				enc, err := AppendData(nil, tc.msg)
				if err != nil || !bytes.Equal(enc, v.data) {
					t.Fatalf("AppendData = % x, %v; want % x", enc, err, v.data)
				}
			}
		})
	}
}

func TestHeartbeatAndAckBytes(t *testing.T) {
	if want := hx(t, "h:03 00 00 00"); !bytes.Equal(HeartbeatPackage, want) ||
		!bytes.Equal(AppendPackage(nil, Heartbeat, nil), want) {
		t.Fatalf("heartbeat bytes % x", HeartbeatPackage)
	}
	if want := hx(t, "h:02 00 00 00"); !bytes.Equal(HandshakeAckPackage, want) ||
		!bytes.Equal(AppendPackage(nil, HandshakeAck, nil), want) {
		t.Fatalf("ack bytes % x", HandshakeAckPackage)
	}
}

func assertMessage(t *testing.T, got, want Message) {
	t.Helper()
	if got.Type != want.Type || got.ID != want.ID || got.Route != want.Route ||
		got.RouteCode != want.RouteCode || got.Compressed != want.Compressed ||
		got.Gzip != want.Gzip || !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("message\n got %+v (body %q)\nwant %+v (body %q)", got, got.Body, want, want.Body)
	}
}

func TestMessageIDs(t *testing.T) {
	tests := []struct {
		id  uint32
		enc string
	}{
		{0, "00"},
		{1, "01"},
		{127, "7f"},
		{128, "80 01"}, // pomelo once had a bug here
		{16383, "ff 7f"},
		{16384, "80 80 01"},
		{1<<32 - 1, "ff ff ff ff 0f"},
	}
	for _, tc := range tests {
		for _, typ := range []MessageType{Request, Response} {
			m := Message{Type: typ, ID: tc.id, Route: "r", Body: []byte("{}")}
			if typ == Response {
				m.Route = ""
			}
			enc, err := AppendMessage(nil, &m)
			if err != nil {
				t.Fatal(err)
			}
			ids := hx(t, "h:"+tc.enc)
			want := append([]byte{byte(typ) << 1}, ids...)
			if typ == Request {
				want = append(want, 1, 'r')
			}
			want = append(want, "{}"...)
			if !bytes.Equal(enc, want) {
				t.Fatalf("%v id %d: % x, want % x", typ, tc.id, enc, want)
			}
			if MessageLen(&m) != len(enc) {
				t.Fatalf("%v id %d: MessageLen %d, encoded %d", typ, tc.id, MessageLen(&m), len(enc))
			}
			got, err := ParseMessage(enc)
			if err != nil {
				t.Fatalf("%v id %d: %v", typ, tc.id, err)
			}
			assertMessage(t, got, m)
		}
	}
}

func TestMessageKinds(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		enc  []byte
	}{
		{"response", Message{Type: Response, ID: 128, Body: []byte(`{"code":200}`)},
			hx(t, "h:04 80 01", `{"code":200}`)},
		{"response empty body", Message{Type: Response, ID: 5}, hx(t, "h:04 05")},
		{"notify string", Message{Type: Notify, Route: "chat.chatHandler.send", Body: []byte(`{}`)},
			hx(t, "h:02 15", "chat.chatHandler.send", "{}")},
		{"notify compressed", Message{Type: Notify, Compressed: true, RouteCode: 1, Body: []byte(`{}`)},
			hx(t, "h:03 00 01", "{}")},
		{"push string", Message{Type: Push, Route: "onAdd", Body: []byte(`{"route":"onAdd","user":"bob"}`)},
			hx(t, "h:06 05", "onAdd", `{"route":"onAdd","user":"bob"}`)},
		{"push compressed", Message{Type: Push, Compressed: true, RouteCode: 0x0102},
			hx(t, "h:07 01 02")},
		{"request empty route", Message{Type: Request, ID: 3}, hx(t, "h:00 03 00")},
		{"gzip flag", Message{Type: Push, Gzip: true, Route: "x", Body: []byte{1}}, hx(t, "h:16 01 78 01")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := AppendMessage([]byte("prefix"), &tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc[6:], tc.enc) || string(enc[:6]) != "prefix" {
				t.Fatalf("AppendMessage % x, want prefix + % x", enc, tc.enc)
			}
			if MessageLen(&tc.m) != len(tc.enc) {
				t.Fatalf("MessageLen %d, want %d", MessageLen(&tc.m), len(tc.enc))
			}
			got, err := ParseMessage(tc.enc)
			if err != nil {
				t.Fatal(err)
			}
			assertMessage(t, got, tc.m)
			pkg, err := AppendData(nil, &tc.m)
			if err != nil {
				t.Fatal(err)
			}
			p := parseOne(t, pkg)
			if p.Type != Data || !bytes.Equal(p.Body, tc.enc) {
				t.Fatalf("AppendData gave %v % x", p.Type, p.Body)
			}
		})
	}
}

func TestAppendErrorsLeaveBufferUnchanged(t *testing.T) {
	long := strings.Repeat("r", 256)
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"route too long", Message{Type: Push, Route: long}, ErrMessage},
		{"bad type", Message{Type: 4}, ErrMessageType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendMessage(dst, &tc.m)
			if !errors.Is(err, tc.want) || string(out) != "keep" {
				t.Fatalf("AppendMessage = %q, %v; want %q, %v", out, err, "keep", tc.want)
			}
			out, err = AppendData(dst, &tc.m)
			if !errors.Is(err, tc.want) || string(out) != "keep" {
				t.Fatalf("AppendData = %q, %v; want %q, %v", out, err, "keep", tc.want)
			}
		})
	}
	// 255 bytes is the largest string route.
	m := Message{Type: Push, Route: long[:255]}
	enc, err := AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMessage(enc)
	if err != nil || got.Route != m.Route {
		t.Fatalf("255-byte route round trip: %v", err)
	}
	// A compressed route ignores Route's length.
	if _, err := AppendMessage(nil, &Message{Type: Push, Compressed: true, Route: long}); err != nil {
		t.Fatal(err)
	}
	// Body too large for one package.
	big := Message{Type: Push, Route: "r", Body: make([]byte, MaxBodyLen)}
	out, err := AppendData([]byte("keep"), &big)
	if !errors.Is(err, ErrTooLarge) || string(out) != "keep" {
		t.Fatalf("oversized AppendData: %v", err)
	}
}

func TestAppendPackageHeaderPanicsOverLimit(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a body over MaxBodyLen")
		}
	}()
	AppendPackageHeader(nil, Data, MaxBodyLen+1)
}

func TestAppendPackageHeaderMax(t *testing.T) {
	if got := AppendPackageHeader(nil, Kick, MaxBodyLen); !bytes.Equal(got, []byte{5, 0xff, 0xff, 0xff}) {
		t.Fatalf("% x", got)
	}
}

func TestForEachPackageSeveralInOneFrame(t *testing.T) {
	var frame []byte
	frame = AppendPackage(frame, Handshake, []byte(`{"code":200}`))
	frame = append(frame, HeartbeatPackage...)
	frame, _ = AppendData(frame, &Message{Type: Push, Route: "onChat", Body: []byte(`{"msg":"hi"}`)})
	frame, _ = AppendData(frame, &Message{Type: Response, ID: 128, Body: []byte(`{}`)})
	frame = AppendPackage(frame, Kick, []byte(`{"reason":"kick"}`))

	var types []PackageType
	var routes []string
	err := ForEachPackage(frame, 0, func(p Package) error {
		types = append(types, p.Type)
		if p.Type == Data {
			m, err := ParseMessage(p.Body)
			if err != nil {
				return err
			}
			routes = append(routes, m.Route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []PackageType{Handshake, Heartbeat, Data, Data, Kick}
	if len(types) != len(want) {
		t.Fatalf("types %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("types %v, want %v", types, want)
		}
	}
	if len(routes) != 2 || routes[0] != "onChat" || routes[1] != "" {
		t.Fatalf("routes %q", routes)
	}

	// The callback's error stops the loop and is returned as is.
	stop := errors.New("stop")
	n := 0
	err = ForEachPackage(frame, 0, func(Package) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("got %v after %d calls", err, n)
	}

	// A bad trailing package: the good ones before it are delivered first.
	n = 0
	bad := append(append([]byte(nil), frame...), 9, 0, 0, 0)
	err = ForEachPackage(bad, 0, func(Package) error { n++; return nil })
	if !errors.Is(err, ErrPackageType) || n != 5 {
		t.Fatalf("got %v after %d calls", err, n)
	}
	// Empty frame: no calls, no error.
	if err := ForEachPackage(nil, 0, func(Package) error { t.Fatal("called"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestParsePackageErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		maxBody int
		want    error
	}{
		{"empty", nil, 0, ErrShort},
		{"truncated header", []byte{4, 0, 0}, 0, ErrShort},
		{"truncated body", []byte{4, 0, 0, 3, 1, 2}, 0, ErrShort},
		{"type 0", []byte{0, 0, 0, 0}, 0, ErrPackageType},
		{"type 6", []byte{6, 0, 0, 0}, 0, ErrPackageType},
		{"type 255", []byte{255, 0, 0, 0}, 0, ErrPackageType},
		{"body over limit", []byte{4, 0, 1, 0}, 255, ErrTooLarge},
		{"body over limit even if truncated", []byte{4, 0xff, 0xff, 0xff}, 1024, ErrTooLarge},
		{"max length header truncated", []byte{4, 0xff, 0xff, 0xff}, 0, ErrShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, rest, err := ParsePackage(tc.in, tc.maxBody)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if p.Type != 0 || p.Body != nil || !bytes.Equal(rest, tc.in) {
				t.Fatalf("on error got %+v rest % x", p, rest)
			}
			if err := ForEachPackage(tc.in, tc.maxBody, func(Package) error { return nil }); tc.in != nil && !errors.Is(err, tc.want) {
				t.Fatalf("ForEachPackage err %v, want %v", err, tc.want)
			}
		})
	}
	// At the limit is fine.
	if _, _, err := ParsePackage(append([]byte{4, 0, 0, 2}, 1, 2), 2); err != nil {
		t.Fatal(err)
	}
}

func TestParseMessageErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"reserved flag bit 5", []byte{0x20, 1, 0}, ErrMessage},
		{"reserved flag bit 7", []byte{0x86}, ErrMessage},
		{"message type 4", []byte{0x08}, ErrMessageType},
		{"message type 7", []byte{0x0e}, ErrMessageType},
		{"request without id", []byte{0x00}, ErrShort},
		{"truncated id", []byte{0x00, 0x80}, ErrShort},
		{"truncated 4-byte id", []byte{0x04, 0x80, 0x80, 0x80, 0x80}, ErrShort},
		{"overlong varint", []byte{0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, ErrMessage},
		{"id over 32 bits", []byte{0x04, 0x80, 0x80, 0x80, 0x80, 0x10}, ErrMessage},
		{"request without route length", []byte{0x00, 0x01}, ErrShort},
		{"route length past end", hx(t, "h:06 07", "onChat"), ErrShort},
		{"route length past end request", hx(t, "h:00 01 ff", "abc"), ErrShort},
		{"compressed route truncated", []byte{0x07, 0x01}, ErrShort},
		{"compressed request route truncated", []byte{0x01, 0x05}, ErrShort},
		{"compressed-route flag on a response", []byte{0x05, 0x01, 0x00, 0x01}, ErrMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseMessage(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("ParseMessage err %v, want %v", err, tc.want)
			}
			if _, r, err := ParseMessageRoute(tc.in); !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("ParseMessageRoute err %v route %q, want %v", err, r, tc.want)
			}
		})
	}
}

func TestNonCanonicalIDDecodes(t *testing.T) {
	// Pomelo's decoder reads 7-bit groups until a clear top bit: 81 00 is 1.
	m, err := ParseMessage([]byte{0x04, 0x81, 0x00})
	if err != nil || m.ID != 1 {
		t.Fatalf("id %d, %v", m.ID, err)
	}
}

func TestTypeStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{Handshake.String(), "handshake"},
		{HandshakeAck.String(), "handshake-ack"},
		{Heartbeat.String(), "heartbeat"},
		{Data.String(), "data"},
		{Kick.String(), "kick"},
		{PackageType(9).String(), "package-type(9)"},
		{Request.String(), "request"},
		{Notify.String(), "notify"},
		{Response.String(), "response"},
		{Push.String(), "push"},
		{MessageType(6).String(), "message-type(6)"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for typ := 0; typ < 256; typ++ {
		if PackageType(typ).Valid() != (typ >= 1 && typ <= 5) {
			t.Errorf("PackageType(%d).Valid() wrong", typ)
		}
	}
}
