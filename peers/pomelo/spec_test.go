package pomelo

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestServersJSON: the generated servers.json and master.json for a fixed
// 2x2 layout, against golden files in the stock demo's shape.
func TestServersJSON(t *testing.T) {
	s := Spec{Host: "127.0.0.1", MasterPort: 3005,
		Gate: Server{ID: GateID, Host: "127.0.0.1", ClientPort: 3014, Frontend: true},
		Connectors: []Server{
			{ID: "connector-server-1", Host: "127.0.0.1", Port: 4050, ClientPort: 3050, Frontend: true},
			{ID: "connector-server-2", Host: "127.0.0.1", Port: 4051, ClientPort: 3051, Frontend: true},
		},
		Chats: []Server{{ID: "chat-server-1", Host: "127.0.0.1", Port: 6050}, {ID: "chat-server-2", Host: "127.0.0.1", Port: 6051}},
	}
	for _, tc := range []struct {
		file string
		gen  func() ([]byte, error)
	}{{"servers-2x2.json", s.ServersJSON}, {"master.json", s.MasterJSON}} {
		got, err := tc.gen()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.file, got, want)
		}
	}
}

func TestNewSpec(t *testing.T) {
	cases := []struct {
		name    string
		o       Options
		conns   []int // client ports wanted (0: any free one)
		gate    int
		chats   int
		wantErr string
	}{
		{"defaults: stock 3x3 on free ports", Options{}, []int{0, 0, 0}, 0, 3, ""},
		{"2x2 on given client ports", Options{Connectors: 2, ChatServers: 2, GatePort: 3014, ConnectorPort: 3050}, []int{3050, 3051}, 3014, 2, ""},
		{"5 connectors, 1 chat server", Options{Connectors: 5, ChatServers: 1}, []int{0, 0, 0, 0, 0}, 0, 1, ""},
		{"negative gate port", Options{GatePort: -2}, nil, 0, 0, "gate port -2"},
		{"connector ports past 65535", Options{Connectors: 3, ConnectorPort: 65534}, nil, 0, 0, "connector ports 65534..65536"},
		{"too many servers", Options{Connectors: 1001}, nil, 0, 0, "at most 1000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSpec(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Connectors) != len(tc.conns) || len(s.Chats) != tc.chats {
				t.Fatalf("%d connectors, %d chat servers; want %d, %d", len(s.Connectors), len(s.Chats), len(tc.conns), tc.chats)
			}
			if tc.gate != 0 && s.Gate.ClientPort != tc.gate {
				t.Errorf("gate port %d, want %d", s.Gate.ClientPort, tc.gate)
			}
			seen := map[int]string{s.MasterPort: "master", s.Gate.ClientPort: "gate"}
			use := func(p int, what string) {
				if p <= 0 {
					t.Errorf("%s: port %d", what, p)
				}
				if o, dup := seen[p]; dup {
					t.Errorf("%s and %s share port %d", what, o, p)
				}
				seen[p] = what
			}
			for i, c := range s.Connectors {
				use(c.Port, c.ID+" rpc")
				use(c.ClientPort, c.ID+" client")
				if tc.conns[i] != 0 && c.ClientPort != tc.conns[i] {
					t.Errorf("%s client port %d, want %d", c.ID, c.ClientPort, tc.conns[i])
				}
				if !c.Frontend || c.Host != "127.0.0.1" {
					t.Errorf("%+v: want a frontend on 127.0.0.1", c)
				}
			}
			for _, c := range s.Chats {
				use(c.Port, c.ID)
				if c.Frontend || c.ClientPort != 0 {
					t.Errorf("%+v: a chat server is a backend", c)
				}
			}
		})
	}
}
