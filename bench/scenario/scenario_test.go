package scenario

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShippedScenariosLoad(t *testing.T) {
	want := []string{"all", "broadcast-storm", "chat", "enter", "gate", "hop", "latency", "leave"}
	if got := Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			s, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != name {
				t.Errorf("name = %q, want %q", s.Name, name)
			}
			if s.Source != "scenarios/"+name+".yaml" {
				t.Errorf("source = %q", s.Source)
			}
			if s.Description == "" {
				t.Error("no description")
			}
			if s.Phases[0].Kind != KindEnter {
				t.Errorf("first phase is %s, want enter", s.Phases[0].Kind)
			}
			// Default sizes must run well under a minute (enter and
			// leave phases take clients/arrival_rate).
			total := s.TimedDuration()
			for _, p := range s.Phases {
				if !p.Kind.Timed() && p.ArrivalRate > 0 {
					total += time.Duration(float64(s.Clients) / p.ArrivalRate * float64(time.Second))
				}
			}
			if total > 45*time.Second {
				t.Errorf("default run takes about %s, want well under a minute", total)
			}
			if s.Thresholds.LossMax == nil || *s.Thresholds.LossMax != 0 {
				t.Error("shipped scenarios must demand zero loss")
			}
		})
	}
}

func TestShippedShapes(t *testing.T) {
	tests := []struct {
		name     string
		clients  int
		roomSize int
		kinds    string
	}{
		{"enter", 2000, 100, "enter idle"},
		{"chat", 2000, 20, "enter chat leave"},
		{"broadcast-storm", 2000, 100, "enter storm leave"},
		{"leave", 2000, 100, "enter leave idle leave"},
		{"all", 2000, 100, "enter chat storm leave leave"},
		{"hop", 2000, 20, "enter hop leave"},
		{"latency", 5000, 100, "enter idle chat leave"},
	}
	for _, tt := range tests {
		s, err := Load(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, p := range s.Phases {
			kinds = append(kinds, string(p.Kind))
		}
		if s.Clients != tt.clients || s.Clients/s.Rooms.Count != tt.roomSize || strings.Join(kinds, " ") != tt.kinds {
			t.Errorf("%s: clients %d, room size %d, phases %v; want %d, %d, %s", tt.name, s.Clients,
				s.Clients/s.Rooms.Count, kinds, tt.clients, tt.roomSize, tt.kinds)
		}
	}
	// The latency scenario is the latency target's shape: 100k deliveries/s.
	s, _ := Load("latency")
	perSec := float64(s.Clients) * s.Phases[2].Rate * float64(s.Clients/s.Rooms.Count)
	if perSec != 100000 || *s.Thresholds.P99DeliveryMax != 25*time.Millisecond {
		t.Errorf("latency: %v deliveries/s, p99 max %v", perSec, *s.Thresholds.P99DeliveryMax)
	}
}

func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"bad_rate.yaml", "testdata/bad_rate.yaml:9: phases[1].rate: must be > 0 (messages per second per client)"},
		{"unknown_field.yaml", "testdata/unknown_field.yaml:5: rooms.spred: unknown field (valid: count, spread, zipf_s)"},
		{"unknown_phase_field.yaml", "testdata/unknown_phase_field.yaml:8: phases[1].bursts: unknown field " +
			"(valid: name, kind, duration, arrival_rate, concurrency, rate, private_share, payload, burst, burst_every, hop_rate, hop_share, share)"},
		{"wrong_kind_field.yaml", "testdata/wrong_kind_field.yaml:9: phases[1].burst: not used by kind chat " +
			"(chat uses: name, kind, duration, rate, private_share, payload)"},
		{"bad_kind.yaml", `testdata/bad_kind.yaml:4: phases[0].kind: must be one of enter, chat, storm, leave, hop, idle, got "enterr"`},
		{"bad_types.yaml", `testdata/bad_types.yaml:1: clients: must be an integer, got "many"
testdata/bad_types.yaml:2: rooms.count: must be an integer, got "2.5"
testdata/bad_types.yaml:5: phases[0].arrival_rate: must be a number, got "fast"
testdata/bad_types.yaml:7: phases[1].duration: must be a duration like 10s or 250ms, got "10"`},
		{"syntax.yaml", "testdata/syntax.yaml:3: did not find expected key"},
		{"empty.yaml", "testdata/empty.yaml:1: empty scenario (want a mapping with name, description, seed, clients, rooms, payload, phases, thresholds, serve_flags)"},
		{"no_enter.yaml", "testdata/no_enter.yaml:4: phases[0].kind: chat needs connected clients: put an enter phase before it"},
		{"enter_model.yaml", `testdata/enter_model.yaml:4: phases[0]: enter needs arrival_rate (clients per second, open model) or concurrency (clients at a time, closed model)
testdata/enter_model.yaml:7: phases[1].concurrency: set either arrival_rate (open model) or concurrency (closed model), not both`},
		{"bad_values.yaml", `testdata/bad_values.yaml:1: name: must be letters, digits, '.', '_' or '-' (it names result directories), got "bad values"
testdata/bad_values.yaml:3: rooms.zipf_s: must be > 0 (zipf exponent: room r gets a share of clients proportional to 1/(r+1)^s)
testdata/bad_values.yaml:3: rooms.count: must be <= clients (10): a room needs a member
testdata/bad_values.yaml:4: payload: must be between 0 and 65536 (bytes of chat content)
testdata/bad_values.yaml:11: phases[1].private_share: must be between 0 and 1 (share of messages sent to one member)
testdata/bad_values.yaml:8: phases[1].hop_rate: must be > 0 (room switches per second per hopping client)
testdata/bad_values.yaml:10: phases[1].hop_share: must be > 0 and <= 1 (share of clients that hop)
testdata/bad_values.yaml:14: phases[2].burst: must be > 0 (messages each member sends at once)
testdata/bad_values.yaml:15: phases[2].burst_every: must be <= duration (5s)
testdata/bad_values.yaml:17: thresholds.p99_delivery_max: must be > 0 (a duration like 25ms)
testdata/bad_values.yaml:18: thresholds.loss_max: must be between 0 and 1 (lost/expected deliveries)
testdata/bad_values.yaml:19: thresholds.min_deliveries_per_s: must be >= 0 (deliveries per second)`},
		{"dup_phase.yaml", `testdata/dup_phase.yaml:8: phases[2].name: "idle" is also the name of phases[1] (give each phase a unique name)`},
		{"not_mapping.yaml", `testdata/not_mapping.yaml:2: rooms: must be a mapping with fields count, spread, zipf_s, got "2"
testdata/not_mapping.yaml:4: phases[0]: must be a mapping with fields name, kind, duration, arrival_rate, concurrency, rate, private_share, payload, burst, burst_every, hop_rate, hop_share, share, got "enter"`},
		{"unknown_top.yaml", "testdata/unknown_top.yaml:3: phase: unknown field (valid: name, description, seed, clients, rooms, payload, phases, thresholds, serve_flags)"},
		{"bad_serve_flags.yaml", `testdata/bad_serve_flags.yaml:7: serve_flags[1]: "heartbeat=15s": give a serve flag with its value, e.g. --heartbeat=15s
testdata/bad_serve_flags.yaml:8: serve_flags[2]: "--heartbeat": give a serve flag with its value, e.g. --heartbeat=15s`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestLoadUnknownName(t *testing.T) {
	_, err := Load("nope")
	want := `scenario: unknown scenario "nope" (shipped: all, broadcast-storm, chat, enter, gate, hop, latency, leave; or give the path of a .yaml file)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if _, err := Load("testdata/missing.yaml"); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("dir/minimal.yaml", []byte("clients: 4\nrooms: {count: 2, spread: zipf}\nphases: [{kind: enter, concurrency: 2}, {kind: leave, concurrency: 2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "minimal" || s.Seed != DefaultSeed || s.Payload != DefaultPayload || s.Rooms.ZipfS != DefaultZipfS ||
		s.Phases[1].Share != 1 || s.Phases[0].Name != "enter" || s.Phases[1].PayloadBytes(s) != DefaultPayload {
		t.Fatalf("defaults not applied: %+v", s)
	}
}

func TestOverrides(t *testing.T) {
	seed := int64(42)
	tests := []struct {
		name  string
		o     Overrides
		check func(t *testing.T, s *Scenario)
	}{
		{"duration scales timed phases", Overrides{Duration: 10 * time.Second}, func(t *testing.T, s *Scenario) {
			// all: chat 10s + storm 6s = 16s -> 6.25s + 3.75s
			if s.Phases[1].Duration != 6250*time.Millisecond || s.Phases[2].Duration != 3750*time.Millisecond ||
				s.Phases[2].BurstEvery != 1875*time.Millisecond || s.Phases[0].Duration != 30*time.Second {
				t.Errorf("durations: %v %v %v %v", s.Phases[0].Duration, s.Phases[1].Duration, s.Phases[2].Duration, s.Phases[2].BurstEvery)
			}
			if s.TimedDuration() != 10*time.Second {
				t.Errorf("timed total %v", s.TimedDuration())
			}
		}},
		{"clients keep room size", Overrides{Clients: 500}, func(t *testing.T, s *Scenario) {
			if s.Clients != 500 || s.Rooms.Count != 5 {
				t.Errorf("clients %d rooms %d", s.Clients, s.Rooms.Count)
			}
		}},
		{"clients and rooms", Overrides{Clients: 500, Rooms: 50}, func(t *testing.T, s *Scenario) {
			if s.Clients != 500 || s.Rooms.Count != 50 {
				t.Errorf("clients %d rooms %d", s.Clients, s.Rooms.Count)
			}
		}},
		{"rate and seed", Overrides{Rate: 2, Seed: &seed}, func(t *testing.T, s *Scenario) {
			if s.Phases[1].Rate != 2 || s.Phases[2].Rate != 0 || s.Seed != 42 {
				t.Errorf("rate %v %v seed %d", s.Phases[1].Rate, s.Phases[2].Rate, s.Seed)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load("all")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(tt.o); err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
	s, _ := Load("all")
	err := s.Apply(Overrides{Clients: 5, Rooms: 10})
	want := "after overrides: scenarios/all.yaml: rooms.count: must be <= clients (5): a room needs a member"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestAssignUniform(t *testing.T) {
	s, _ := Load("broadcast-storm")
	a := s.Assign()
	if a.Rooms() != 20 {
		t.Fatalf("rooms %d", a.Rooms())
	}
	for r := range a.Rooms() {
		if len(a.Members(r)) != 100 {
			t.Fatalf("room %d has %d members", r, len(a.Members(r)))
		}
	}
	if a.RoomOf(0) != 0 || a.RoomOf(21) != 1 {
		t.Fatalf("uniform is not round robin: %d %d", a.RoomOf(0), a.RoomOf(21))
	}
}

func TestAssignZipfDeterministic(t *testing.T) {
	load := func(seed int64) *Assignment {
		s, err := Parse("z.yaml", []byte("clients: 1000\nrooms: {count: 10, spread: zipf, zipf_s: 1.2}\nphases: [{kind: enter, arrival_rate: 1}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		s.Seed = seed
		return s.Assign()
	}
	a, b, c := load(1), load(1), load(2)
	same, total := true, 0
	for r := range a.Rooms() {
		total += len(a.Members(r))
		if r > 0 && len(a.Members(r)) > len(a.Members(r-1)) {
			t.Errorf("room %d bigger than room %d", r, r-1)
		}
		if len(a.Members(r)) != len(c.Members(r)) {
			t.Errorf("room sizes depend on the seed")
		}
	}
	for i := range 1000 {
		if a.RoomOf(i) != b.RoomOf(i) {
			t.Fatal("same seed, different assignment")
		}
		if a.RoomOf(i) != c.RoomOf(i) {
			same = false
		}
	}
	if same || total != 1000 {
		t.Fatalf("seed ignored (%v) or clients lost (%d)", same, total)
	}
	// Room 0 of zipf s=1.2 over 10 rooms holds about 40% of clients.
	if n := len(a.Members(0)); n < 380 || n > 430 {
		t.Fatalf("hottest room has %d members", n)
	}
	r := load(1)
	rng := (&Scenario{Seed: 1}).ClientRand(3)
	for range 100 {
		if tgt := r.HopTarget(0, rng); tgt == 0 || tgt >= 10 {
			t.Fatalf("hop target %d", tgt)
		}
	}
}

func TestPickAndRand(t *testing.T) {
	s := &Scenario{Seed: 7}
	n := 0
	for i := range 10000 {
		if s.Pick(i, 0.2, "hop") {
			n++
		}
		if s.Pick(i, 0.2, "hop") != s.Pick(i, 0.2, "hop") {
			t.Fatal("Pick not deterministic")
		}
	}
	if n < 1800 || n > 2200 {
		t.Fatalf("picked %d of 10000 at 0.2", n)
	}
	if s.ClientRand(1).Uint64() != s.ClientRand(1).Uint64() || s.ClientRand(1).Uint64() == s.ClientRand(2).Uint64() {
		t.Fatal("ClientRand streams wrong")
	}
	if RoomID(7) != "room-0007" || UserName(42) != "u000042" {
		t.Fatal(RoomID(7), UserName(42))
	}
}

func TestShape(t *testing.T) {
	s, _ := Load("broadcast-storm")
	if got := s.Shape(); got != "clients=2000,room=100,spread=uniform,payload=64" {
		t.Fatal(got)
	}
	s.Rooms.Spread, s.Rooms.ZipfS = SpreadZipf, 1.2
	if got := s.Shape(); got != "clients=2000,room=100,spread=zipf1.2,payload=64" {
		t.Fatal(got)
	}
}

// TestServeFlags: a scenario's serve_flags come through in file order.
func TestServeFlags(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "serve_flags.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--heartbeat=15s", "--request-timeout=3s"}; !slices.Equal(s.ServeFlags, want) {
		t.Errorf("ServeFlags %q, want %q", s.ServeFlags, want)
	}
}
