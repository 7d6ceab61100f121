package pomelo

import "testing"

// chatBody is a typical ~100-byte onChat push body.
var chatBody = []byte(`{"msg":"hello everyone in the room, this is a chat line","from":"alice","target":"*"}` + "          ")

func benchFrame() []byte {
	var frame []byte
	frame = append(frame, HeartbeatPackage...)
	for i := 0; i < 6; i++ {
		frame, _ = AppendData(frame, &Message{Type: Push, Route: "onChat", Body: chatBody})
	}
	frame, _ = AppendData(frame, &Message{Type: Response, ID: 128, Body: []byte(`{}`)})
	return frame
}

// hotPaths are the calls the server and the driver make per message; each
// must not allocate.
func hotPaths(t testing.TB) map[string]func() {
	buf := make([]byte, 0, 512)
	push := Message{Type: Push, Route: "onChat", Body: chatBody}
	compressed := hx(t, "h:01 01 00 02", `{"username":"alice","rid":"room1"}`)
	stringRoute := hx(t, "h:00 01 1b", "gate.gateHandler.queryEntry", `{"uid":"alice"}`)
	frame := benchFrame()
	d := NewDict(chatRoutes)
	return map[string]func(){
		"AppendData": func() { buf, _ = AppendData(buf[:0], &push) },
		"ParseMessage compressed": func() {
			m, _ := ParseMessage(compressed)
			_ = d.Resolve(&m)
		},
		"ParseMessageRoute string": func() { _, _, _ = ParseMessageRoute(stringRoute) },
		"ForEachPackage": func() {
			n := 0
			_ = ForEachPackage(frame, 0, func(p Package) error {
				if p.Type == Data {
					if _, r, err := ParseMessageRoute(p.Body); err == nil && len(r) > 0 {
						n++
					}
				}
				return nil
			})
		},
	}
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for name, f := range hotPaths(t) {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
	// ParseMessage with a string route copies the route: exactly one allocation.
	in := hx(t, "h:06 06", "onChat", `{}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseMessage(in) }); n > 1 {
		t.Errorf("ParseMessage string route: %v allocs/op, want <= 1", n)
	}
}

func BenchmarkAppendData(b *testing.B) {
	buf := make([]byte, 0, 512)
	m := Message{Type: Push, Route: "onChat", Body: chatBody}
	b.ReportAllocs()
	b.SetBytes(int64(MessageLen(&m) + HeaderLen))
	for b.Loop() {
		buf, _ = AppendData(buf[:0], &m)
	}
}

func BenchmarkParseMessage(b *testing.B) {
	cases := []struct {
		name string
		in   []byte
		raw  bool
	}{
		{"compressed", hx(b, "h:01 01 00 02", `{"username":"alice","rid":"room1"}`), false},
		{"string", hx(b, "h:00 01 1b", "gate.gateHandler.queryEntry", `{"uid":"alice"}`), false},
		{"string-noCopy", hx(b, "h:00 01 1b", "gate.gateHandler.queryEntry", `{"uid":"alice"}`), true},
		{"push-onChat-noCopy", hx(b, "h:06 06", "onChat", string(chatBody)), true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.in)))
			if tc.raw {
				for b.Loop() {
					if _, _, err := ParseMessageRoute(tc.in); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			for b.Loop() {
				if _, err := ParseMessage(tc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkForEachPackage(b *testing.B) {
	frame := benchFrame()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		n := 0
		err := ForEachPackage(frame, 1<<16, func(p Package) error {
			if p.Type == Data {
				m, r, err := ParseMessageRoute(p.Body)
				if err != nil {
					return err
				}
				n += len(r) + len(m.Body)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDictResolve(b *testing.B) {
	d := NewDict(append([]string{"connector.entryHandler.switchRoom"}, chatRoutes...))
	b.ReportAllocs()
	for b.Loop() {
		m := Message{Compressed: true, RouteCode: 3}
		if err := d.Resolve(&m); err != nil {
			b.Fatal(err)
		}
	}
}
