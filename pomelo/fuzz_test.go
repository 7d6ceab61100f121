package pomelo

import (
	"bytes"
	"encoding/json"
	"math"
	"runtime"
	"testing"
)

// seedFrames are whole websocket frames: the captured vectors and a few
// hand-made oddities.
func seedFrames(t testing.TB) [][]byte {
	seeds := [][]byte{
		hx(t, "h:04 00 00 2d 00 01 1b", "gate.gateHandler.queryEntry", `{"uid":"alice"}`),
		hx(t, "h:04 00 00 26 01 01 00 02", `{"username":"alice","rid":"room1"}`),
		hx(t, "h:03 00 00 00"),
		hx(t, "h:02 00 00 00"),
		hx(t, "h:04 00 00 1d 06 06", "onChat", "h:0a 09", "hello all", "h:12 05", "alice", "h:1a 01", "*"),
		hx(t, "h:04 00 00 04 04 80 01", "{}"),
		hx(t, "h:01 00 00 0d", `{"code":200}`, "h:03 00 00 00 05 00 00 11", `{"reason":"kick"}`),
		hx(t, "h:06 00 00 00"),
		hx(t, "h:04 ff ff ff"),
		hx(t, "h:04 00 00"),
	}
	return append(seeds, benchFrame())
}

// seedMessages are DATA bodies.
func seedMessages(t testing.TB) [][]byte {
	return [][]byte{
		hx(t, "h:00 01 1b", "gate.gateHandler.queryEntry", `{"uid":"alice"}`),
		hx(t, "h:01 01 00 02", `{"username":"alice","rid":"room1"}`),
		hx(t, "h:06 06", "onChat", "h:0a 09", "hello all", "h:12 05", "alice", "h:1a 01", "*"),
		hx(t, "h:04 80 01", `{"code":200}`),
		hx(t, "h:04 ff ff ff ff 0f"),
		hx(t, "h:04 80 80 80 80 80 01"),
		hx(t, "h:02 15", "chat.chatHandler.send", "{}"),
		hx(t, "h:03 00 01 7b 7d"),
		hx(t, "h:07 01 02"),
		hx(t, "h:05 01 00 01"),
		hx(t, "h:16 01 78 01"),
		hx(t, "h:20"),
		hx(t, "h:06 07 6f 6e"),
	}
}

func sameMessage(a, b Message) bool {
	return a.Type == b.Type && a.ID == b.ID && a.Route == b.Route && a.RouteCode == b.RouteCode &&
		a.Compressed == b.Compressed && a.Gzip == b.Gzip && bytes.Equal(a.Body, b.Body)
}

// allocBytes is how many bytes f allocates on the heap: the least of three
// runs, so that a pool refill or the fuzz engine's own work is not counted.
func allocBytes(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for i := 0; i < 3; i++ {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

func FuzzParsePackage(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s, 0)
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, buf []byte, maxBody int) {
		p, rest, err := ParsePackage(buf, maxBody)
		if err != nil {
			if !bytes.Equal(rest, buf) || p.Body != nil {
				t.Fatalf("error %v but package %+v rest % x", err, p, rest)
			}
		} else {
			if !p.Type.Valid() || len(p.Body)+HeaderLen+len(rest) != len(buf) {
				t.Fatalf("package %v body %d rest %d of %d", p.Type, len(p.Body), len(rest), len(buf))
			}
			if maxBody > 0 && len(p.Body) > maxBody {
				t.Fatalf("body %d over limit %d", len(p.Body), maxBody)
			}
			if enc := AppendPackage(nil, p.Type, p.Body); !bytes.Equal(enc, buf[:len(enc)]) {
				t.Fatalf("re-encoded % x, input % x", enc, buf)
			}
			if !raceEnabled {
				if n := testing.AllocsPerRun(1, func() { _, _, _ = ParsePackage(buf, maxBody) }); n != 0 {
					t.Fatalf("ParsePackage allocated %v times", n)
				}
			}
		}
		// ForEachPackage delivers packages that re-encode to the input prefix
		// it consumed, and consumes everything when it returns nil.
		var enc []byte
		ferr := ForEachPackage(buf, maxBody, func(p Package) error {
			enc = AppendPackage(enc, p.Type, p.Body)
			return nil
		})
		if !bytes.HasPrefix(buf, enc) {
			t.Fatalf("ForEachPackage re-encoded % x, not a prefix of % x", enc, buf)
		}
		if (ferr == nil) != (len(enc) == len(buf)) {
			t.Fatalf("ForEachPackage err %v, consumed %d of %d", ferr, len(enc), len(buf))
		}
		if err != nil && len(buf) > 0 && ferr == nil {
			t.Fatalf("ParsePackage failed (%v) but ForEachPackage did not", err)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		m2, route, err2 := ParseMessageRoute(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("ParseMessage %v, ParseMessageRoute %v", err, err2)
		}
		if err != nil {
			return
		}
		if m.Route != string(route) || m2.Route != "" {
			t.Fatalf("route %q vs %q (m2.Route %q)", m.Route, route, m2.Route)
		}
		m2.Route = m.Route
		if !sameMessage(m, m2) {
			t.Fatalf("%+v vs %+v", m, m2)
		}
		if len(m.Body) > 0 && &m.Body[len(m.Body)-1] != &b[len(b)-1] {
			t.Fatal("body does not alias the input")
		}
		if !raceEnabled {
			if n := testing.AllocsPerRun(1, func() { _, _, _ = ParseMessageRoute(b) }); n != 0 {
				t.Fatalf("ParseMessageRoute allocated %v times", n)
			}
		}
		enc, err := AppendMessage(nil, &m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if MessageLen(&m) != len(enc) {
			t.Fatalf("MessageLen %d, encoded %d", MessageLen(&m), len(enc))
		}
		// Ids may be non-canonical on input (81 00 is 1), so compare the
		// re-decoded message, and the bytes when the id was canonical.
		back, err := ParseMessage(enc)
		if err != nil {
			t.Fatalf("re-encoded % x does not parse: %v", enc, err)
		}
		if !sameMessage(back, m) {
			t.Fatalf("round trip %+v -> % x -> %+v", m, enc, back)
		}
		if len(enc) == len(b) && !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded % x, input % x", enc, b)
		}
	})
}

func FuzzParseHandshakeRequest(f *testing.F) {
	for _, s := range []string{
		string(DefaultHandshakeRequest()),
		`{"sys":{"type":"js-websocket","version":"0.0.1","dictVersion":"abc","protoVersion":1503},"user":{}}`,
		`{"user":{}}`, `{"sys":null}`, `null`, ``, `{"sys":`, `[1]`, `{"sys":{"rsa":{"rsa_n":"ab","rsa_e":"10001"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r HandshakeRequest
		var err error
		n := allocBytes(func() { r, err = ParseHandshakeRequest(body) })
		if limit := uint64(64*len(body) + 16<<10); n > limit {
			t.Fatalf("%d-byte body allocated %d bytes", len(body), n)
		}
		if err != nil {
			return
		}
		if r.Sys == nil {
			t.Fatal("nil Sys without error")
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted request does not marshal: %v", err)
		}
		back, err := ParseHandshakeRequest(enc)
		if err != nil {
			t.Fatalf("re-marshalled %s does not parse: %v", enc, err)
		}
		if back.Sys.Type != r.Sys.Type || back.Sys.Version != r.Sys.Version || back.Sys.DictVersion != r.Sys.DictVersion {
			t.Fatalf("round trip %+v -> %+v", r.Sys, back.Sys)
		}
	})
}
