package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRejectsUnknownKeys: a key encoding/json would ignore is an error
// naming the file, the key, where it is and the valid keys.
func TestLoadRejectsUnknownKeys(t *testing.T) {
	valid := `"gate": [{"id": "gate", "host": "127.0.0.1", "clientPort": 3014, "httpPort": 3001, "frontend": true}],
	 "connector": [{"id": "connector-1", "host": "127.0.0.1", "clientPort": 3050, "frontend": true}],
	 "chat": [{"id": "chat-1", "host": "127.0.0.1"}]`
	for _, tc := range []struct {
		name, body string
		want       []string // substrings of the error; none: loads
	}{
		{"valid", `{"nats": ["nats://127.0.0.1:4222"], ` + valid + `}`, nil},
		{"top-level typo", `{"gatez": [], ` + valid + `}`,
			[]string{`unknown key "gatez"`, "valid keys: nats, subjectPrefix, gate, connector, chat"}},
		{"unknown top-level key after the servers", `{` + valid + `, "x": 1}`,
			[]string{`unknown key "x"`}},
		{"pomelo's port key", `{"gate": [{"id": "gate", "host": "h", "clientPort": 1}],
			"connector": [{"id": "connector-1", "host": "h", "clientPort": 2, "port": 4050}],
			"chat": [{"id": "chat-1"}]}`,
			[]string{`connector[0] ("connector-1"): unknown key "port"`, "valid keys: id, host, advertiseHost, clientPort, httpPort, frontend"}},
		{"lower-case clientport", `{"gate": [{"id": "gate", "host": "h", "clientport": 1}],
			"connector": [{"id": "connector-1", "host": "h", "clientPort": 2}], "chat": [{"id": "chat-1"}]}`,
			[]string{`gate[0] ("gate"): unknown key "clientport"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "servers.json")
			if err := os.WriteFile(file, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(file)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted %s", tc.body)
			}
			for _, w := range append([]string{file}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
