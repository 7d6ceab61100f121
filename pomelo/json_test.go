package pomelo

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// AppendJSONString agrees with encoding/json on every string: it decodes to
// the same text (invalid UTF-8 replaced, as encoding/json replaces it).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te\back`, "\x00\x1f\n\t\r", "<&>", "é漢字🙂", "\u2028\u2029", "bad\xffutf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendJSONString(%q) = %s: %v", s, b, err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = string([]rune(s)) // invalid bytes become U+FFFD
		}
		if got != want {
			t.Fatalf("AppendJSONString(%q) = %s decodes to %q, want %q", s, b, got, want)
		}
	})
}
