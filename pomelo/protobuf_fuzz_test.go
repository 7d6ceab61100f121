package pomelo

import (
	"bytes"
	"encoding/json"
	"testing"
)

// protoSeeds are bodies for richProtos' "all" route and the stock onChat.
func protoSeeds(t testing.TB, p *Protos) [][]byte {
	seeds := [][]byte{onChatBody}
	for _, j := range []string{
		`{"u32":300,"i32":-1,"s32":-2147483648,"u64":18446744073709551615,"i64":-9223372036854775808,"s64":-2}`,
		`{"b":true,"f":1.5,"d":0.25,"s":"h\u00e9llo\n","o":{"a":[1,2]}}`,
		`{"item":{"id":1,"children":[{"id":2},{"id":3,"name":"c"}]}}`,
		`{"ru32":[1,2,300],"rs32":[-1,1],"rd":[1],"rf":[1,-2],"rs":["a","b"],"rb":[true,false]}`,
		`{"items":[{"id":1},{"id":2}],"shared":{"n":-3}}`,
	} {
		b, err := p.EncodeServer("all", []byte(j))
		if err != nil {
			t.Fatalf("seed %s: %v", j, err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds,
		hx(t, "h:6a 04 01 02 ac 02"), hx(t, "h:68 ff ff ff ff 0f 01"), hx(t, "h:62 02 12 00"),
		hx(t, "h:45 00 00 c0 7f"), hx(t, "h:f8 07 01"), hx(t, "h:52 0a 22 5c 0a 01 ff e2 80 a8 3c 41"))
}

func FuzzProtobufDecode(f *testing.F) {
	p := mustProtos(f, richProtos)
	chat := mustProtos(f, stockChatProtos)
	for _, s := range protoSeeds(f, p) {
		f.Add(s)
	}
	routes := []struct {
		p     *Protos
		route string
	}{{p, "all"}, {chat, "onChat"}, {p, "parsed"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		outs := make([][]byte, len(routes))
		errs := make([]error, len(routes))
		n := allocBytes(func() {
			for i, tc := range routes {
				outs[i], errs[i] = tc.p.DecodeServer(tc.route, body)
			}
		})
		// The output is JSON text of the input: names and digits, a bounded
		// factor of the input, never sized by a length or count read from it.
		if limit := uint64(3 * (64*len(body) + 4096)); n > limit {
			t.Fatalf("%d-byte body allocated %d bytes", len(body), n)
		}
		for i, tc := range routes {
			out, err := outs[i], errs[i]
			viaBytes, errB := tc.p.AppendDecodeServerBytes(nil, []byte(tc.route), body)
			if !bytes.Equal(out, viaBytes) || (err == nil) != (errB == nil) {
				t.Fatalf("%s: DecodeServer %s, %v; AppendDecodeServerBytes %s, %v", tc.route, out, err, viaBytes, errB)
			}
			if err != nil {
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("%s: invalid JSON %q from % x", tc.route, out, body)
			}
			// encode(decode(x)) is a canonical body: decoding and encoding it
			// again gives the same bytes.
			enc, err := tc.p.EncodeServer(tc.route, out)
			if err != nil {
				t.Fatalf("%s: decoded %s does not encode: %v", tc.route, out, err)
			}
			again, err := tc.p.DecodeServer(tc.route, enc)
			if err != nil {
				t.Fatalf("%s: re-encoded % x does not decode: %v", tc.route, enc, err)
			}
			enc2, err := tc.p.EncodeServer(tc.route, again)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("%s: not stable: % x -> %s -> % x (%v)", tc.route, enc, again, enc2, err)
			}
		}
	})
}

func FuzzProtobufEncode(f *testing.F) {
	p := mustProtos(f, richProtos)
	for _, s := range []string{
		`{"u32":300,"i32":-1,"s":"x","ru32":[1,2],"items":[{"id":1}]}`,
		`{"f":1e39}`, `{"o":{"a":null}}`, `{"item":{"id":1.0,"children":[]}}`, `[]`, `{"rb":[true]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, j []byte) {
		enc, err := p.EncodeServer("all", j)
		if err != nil {
			return
		}
		dec, err := p.DecodeServer("all", enc)
		if err != nil {
			t.Fatalf("encoded % x of %s does not decode: %v", enc, j, err)
		}
		enc2, err := p.EncodeServer("all", dec)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%s -> % x -> %s -> % x (%v)", j, enc, dec, enc2, err)
		}
	})
}

func FuzzParseProtos(f *testing.F) {
	for _, s := range []string{stockChatProtos, stockChatProtosParsed, richProtos,
		`{"server":{"r":{"optional N n":1,"message N":{"optional N n":1}}}}`} {
		f.Add([]byte(s), []byte(`{"n":{"n":{}}}`))
	}
	f.Fuzz(func(t *testing.T, raw, body []byte) {
		p, err := ParseProtos(raw)
		if err != nil {
			return
		}
		for _, r := range p.ServerRoutes() {
			if enc, err := p.EncodeServer(r, body); err == nil {
				if _, err := p.DecodeServer(r, enc); err != nil {
					t.Fatalf("route %s: % x: %v", r, enc, err)
				}
			}
			_, _ = p.DecodeServer(r, body)
		}
	})
}
