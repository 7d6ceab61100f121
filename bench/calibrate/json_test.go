package calibrate

import "testing"

func TestTopFields(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want map[string]string
	}{
		{`{}`, true, map[string]string{}},
		{` {"a":"x","b":1} `, true, map[string]string{"a": `"x"`, "b": "1"}},
		{`{"rid":"r1","content":"~a.b\"c}~","from":"u","target":"*"}`, true,
			map[string]string{"rid": `"r1"`, "content": `"~a.b\"c}~"`, "from": `"u"`, "target": `"*"`}},
		{`{"o":{"x":[1,"}"]},"n":null}`, true, map[string]string{"o": `{"x":[1,"}"]}`, "n": "null"}},
		{`{"a" : "x" , "b":true}`, true, map[string]string{"a": `"x"`, "b": "true"}},
		{`[]`, false, nil},
		{`{"a":"x"`, false, nil},
		{`{"a":}`, false, nil},
		{`{"a":"x}`, false, nil},
		{``, false, nil},
	}
	for _, tc := range tests {
		got := map[string]string{}
		ok := topFields([]byte(tc.in), func(k, v []byte) { got[string(k)] = string(v) })
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %s, want %s", tc.in, k, got[k], v)
			}
		}
	}
}

func TestUnquote(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{{`"abc"`, "abc", true}, {`"a\"b"`, `a"b`, true}, {`1`, "", false}, {`"`, "", false}} {
		got, ok := unquote([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("unquote(%s) = %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
