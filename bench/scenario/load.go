package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatbench/chatbench/scenarios"
	"go.yaml.in/yaml/v3"
)

// Defaults applied by Parse to fields a file leaves out.
const (
	DefaultSeed    = 1
	DefaultPayload = 64
	DefaultZipfS   = 1.0
	MaxPayload     = 65536
)

// Names lists the shipped scenarios (embedded in the binary), sorted.
func Names() []string {
	entries, err := fs.ReadDir(scenarios.FS, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// IsPath reports whether Load treats nameOrPath as a file path rather than
// the name of a shipped scenario: it contains a path separator or ends in
// .yaml or .yml.
func IsPath(nameOrPath string) bool {
	return strings.ContainsAny(nameOrPath, `/\`) || strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml")
}

// Load loads a shipped scenario by name ("chat") or a file by path
// ("my.yaml", "./x/y.yaml"; see IsPath), and validates it. Errors name
// file:line and the field.
func Load(nameOrPath string) (*Scenario, error) {
	if IsPath(nameOrPath) {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		return Parse(nameOrPath, data)
	}
	data, err := fs.ReadFile(scenarios.FS, nameOrPath+".yaml")
	if err != nil {
		return nil, fmt.Errorf("scenario: unknown scenario %q (shipped: %s; or give the path of a .yaml file)",
			nameOrPath, strings.Join(Names(), ", "))
	}
	return Parse("scenarios/"+nameOrPath+".yaml", data)
}

// FieldError is one problem in a scenario, located by file, line (0 when
// unknown, e.g. after Apply) and field path ("phases[1].rate").
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxErrors bounds how many problems one load reports.
const maxErrors = 20

// problems collects FieldErrors; the joined error prints one per line.
type problems struct {
	file  string
	lines map[string]int // field path -> line
	errs  []error
}

func (p *problems) at(line int, field, format string, args ...any) {
	if len(p.errs) >= maxErrors {
		return
	}
	p.errs = append(p.errs, &FieldError{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// add reports a problem of a field, at its line (or its parent's).
func (p *problems) add(field, format string, args ...any) {
	p.at(p.line(field), field, format, args...)
}

func (p *problems) line(field string) int {
	for f := field; f != ""; {
		if l, ok := p.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return p.lines[""]
}

func (p *problems) err() error { return errors.Join(p.errs...) }

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates one scenario document; source names it in
// errors (a file path).
func Parse(source string, data []byte) (*Scenario, error) {
	p := &problems{file: source, lines: map[string]int{"": 1}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			l, _ := strconv.Atoi(m[1])
			p.at(l, "", "%s", m[2])
		} else {
			p.at(1, "", "%s", strings.TrimPrefix(msg, "yaml: "))
		}
		return nil, p.err()
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.at(1, "", "empty scenario (want a mapping with %s)", strings.Join(topFields, ", "))
		return nil, p.err()
	}
	root := doc.Content[0]
	s := &Scenario{Source: source}
	d := decoder{p: p}
	d.top(root, s)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	s.defaults()
	s.validate(p)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	return s, nil
}

func (s *Scenario) defaults() {
	if s.Name == "" {
		base := path.Base(strings.ReplaceAll(s.Source, `\`, "/"))
		s.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	if s.Seed == 0 {
		s.Seed = DefaultSeed
	}
	if s.Payload == 0 {
		s.Payload = DefaultPayload
	}
	if s.Rooms.Spread == "" {
		s.Rooms.Spread = SpreadUniform
	}
	if s.Rooms.Spread == SpreadZipf && s.Rooms.ZipfS == 0 {
		s.Rooms.ZipfS = DefaultZipfS
	}
	for i := range s.Phases {
		ph := &s.Phases[i]
		if ph.Name == "" {
			ph.Name = string(ph.Kind)
		}
		if ph.Kind == KindLeave && ph.Share == 0 {
			ph.Share = 1
		}
	}
}

// decoder walks the yaml.Node tree.
type decoder struct{ p *problems }

var (
	topFields       = []string{"name", "description", "seed", "clients", "rooms", "payload", "phases", "thresholds"}
	roomFields      = []string{"count", "spread", "zipf_s"}
	thresholdFields = []string{"p99_delivery_max", "loss_max", "error_rate_max", "min_deliveries_per_s"}
	phaseFields     = []string{"name", "kind", "duration", "arrival_rate", "concurrency", "rate", "private_share",
		"payload", "burst", "burst_every", "hop_rate", "hop_share", "share"}
	// kindFields lists the fields each phase kind accepts.
	kindFields = map[Kind][]string{
		KindEnter: {"name", "kind", "duration", "arrival_rate", "concurrency"},
		KindChat:  {"name", "kind", "duration", "rate", "private_share", "payload"},
		KindStorm: {"name", "kind", "duration", "burst", "burst_every", "private_share", "payload"},
		KindLeave: {"name", "kind", "duration", "arrival_rate", "concurrency", "share"},
		KindHop:   {"name", "kind", "duration", "rate", "private_share", "payload", "hop_rate", "hop_share"},
		KindIdle:  {"name", "kind", "duration"},
	}
)

func kindNames() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// fields checks that n is a mapping of known, unique keys and calls f for
// each key in file order.
func (d *decoder) fields(n *yaml.Node, at string, valid []string, f func(key string, v *yaml.Node, path string)) {
	if n.Kind != yaml.MappingNode {
		d.p.at(n.Line, at, "must be a mapping with fields %s, got %s", strings.Join(valid, ", "), describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fp := join(at, k.Value)
		if !contains(valid, k.Value) {
			d.p.at(k.Line, fp, "unknown field (valid: %s)", strings.Join(valid, ", "))
			continue
		}
		if seen[k.Value] {
			d.p.at(k.Line, fp, "duplicate field")
			continue
		}
		seen[k.Value] = true
		d.p.lines[fp] = k.Line
		f(k.Value, v, fp)
	}
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) top(n *yaml.Node, s *Scenario) {
	d.p.lines[""] = n.Line
	d.fields(n, "", topFields, func(key string, v *yaml.Node, fp string) {
		switch key {
		case "name":
			s.Name = d.str(v, fp)
		case "description":
			s.Description = d.str(v, fp)
		case "seed":
			s.Seed = int64(d.int(v, fp))
		case "clients":
			s.Clients = d.int(v, fp)
		case "payload":
			s.Payload = d.int(v, fp)
		case "rooms":
			d.fields(v, fp, roomFields, func(key string, v *yaml.Node, fp string) {
				switch key {
				case "count":
					s.Rooms.Count = d.int(v, fp)
				case "spread":
					s.Rooms.Spread = Spread(d.str(v, fp))
				case "zipf_s":
					s.Rooms.ZipfS = d.float(v, fp)
				}
			})
		case "phases":
			if v.Kind != yaml.SequenceNode {
				d.p.at(v.Line, fp, "must be a list of phases, got %s", describe(v))
				return
			}
			for i, pn := range v.Content {
				s.Phases = append(s.Phases, d.phase(pn, fmt.Sprintf("phases[%d]", i)))
			}
		case "thresholds":
			d.fields(v, fp, thresholdFields, func(key string, v *yaml.Node, fp string) {
				switch key {
				case "p99_delivery_max":
					x := d.duration(v, fp)
					s.Thresholds.P99DeliveryMax = &x
				case "loss_max":
					x := d.float(v, fp)
					s.Thresholds.LossMax = &x
				case "error_rate_max":
					x := d.float(v, fp)
					s.Thresholds.ErrorRateMax = &x
				case "min_deliveries_per_s":
					x := d.float(v, fp)
					s.Thresholds.MinDeliveriesPerSec = &x
				}
			})
		}
	})
}

func (d *decoder) phase(n *yaml.Node, at string) Phase {
	var ph Phase
	d.p.lines[at] = n.Line
	if n.Kind != yaml.MappingNode {
		d.p.at(n.Line, at, "must be a mapping with fields %s, got %s", strings.Join(phaseFields, ", "), describe(n))
		return ph
	}
	// The kind decides which fields are valid: find it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			v := n.Content[i+1]
			k := Kind(d.str(v, at+".kind"))
			if _, ok := kindFields[k]; !ok {
				d.p.at(v.Line, at+".kind", "must be one of %s, got %s", kindNames(), describe(v))
				return ph
			}
			ph.Kind = k
		}
	}
	if ph.Kind == "" {
		d.p.at(n.Line, at+".kind", "missing (one of %s)", kindNames())
		return ph
	}
	valid := kindFields[ph.Kind]
	d.fields(n, at, phaseFields, func(key string, v *yaml.Node, fp string) {
		if !contains(valid, key) {
			d.p.at(v.Line, fp, "not used by kind %s (%s uses: %s)", ph.Kind, ph.Kind, strings.Join(valid, ", "))
			return
		}
		switch key {
		case "name":
			ph.Name = d.str(v, fp)
		case "duration":
			ph.Duration = d.duration(v, fp)
		case "arrival_rate":
			ph.ArrivalRate = d.float(v, fp)
		case "concurrency":
			ph.Concurrency = d.int(v, fp)
		case "rate":
			ph.Rate = d.float(v, fp)
		case "private_share":
			ph.PrivateShare = d.float(v, fp)
		case "payload":
			ph.Payload = d.int(v, fp)
		case "burst":
			ph.Burst = d.int(v, fp)
		case "burst_every":
			ph.BurstEvery = d.duration(v, fp)
		case "hop_rate":
			ph.HopRate = d.float(v, fp)
		case "hop_share":
			ph.HopShare = d.float(v, fp)
		case "share":
			ph.Share = d.float(v, fp)
		}
	})
	return ph
}

func (d *decoder) scalar(v *yaml.Node, fp, want string) bool {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		d.p.at(v.Line, fp, "must be %s, got %s", want, describe(v))
		return false
	}
	return true
}

func (d *decoder) str(v *yaml.Node, fp string) string {
	if !d.scalar(v, fp, "a string") {
		return ""
	}
	return v.Value
}

func (d *decoder) int(v *yaml.Node, fp string) int {
	if !d.scalar(v, fp, "an integer") {
		return 0
	}
	var x int
	if v.Tag != "!!int" || v.Decode(&x) != nil {
		d.p.at(v.Line, fp, "must be an integer, got %s", describe(v))
		return 0
	}
	return x
}

func (d *decoder) float(v *yaml.Node, fp string) float64 {
	if !d.scalar(v, fp, "a number") {
		return 0
	}
	var x float64
	if (v.Tag != "!!int" && v.Tag != "!!float") || v.Decode(&x) != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		d.p.at(v.Line, fp, "must be a number, got %s", describe(v))
		return 0
	}
	return x
}

func (d *decoder) duration(v *yaml.Node, fp string) time.Duration {
	if !d.scalar(v, fp, "a duration like 10s") {
		return 0
	}
	if v.Value == "0" {
		return 0
	}
	x, err := time.ParseDuration(v.Value)
	if err != nil {
		d.p.at(v.Line, fp, "must be a duration like 10s or 250ms, got %s", describe(v))
		return 0
	}
	return x
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate checks a Scenario built or changed in code. Its errors name
// fields but no line.
func (s *Scenario) Validate() error {
	p := &problems{file: s.Source, lines: map[string]int{}}
	if p.file == "" {
		p.file = "scenario"
	}
	s.validate(p)
	return p.err()
}

func (s *Scenario) validate(p *problems) {
	if !nameRE.MatchString(s.Name) {
		p.add("name", "must be letters, digits, '.', '_' or '-' (it names result directories), got %q", s.Name)
	}
	if s.Clients <= 0 {
		p.add("clients", "must be > 0 (number of simulated clients)")
	}
	switch s.Rooms.Spread {
	case SpreadUniform:
		if s.Rooms.ZipfS != 0 {
			p.add("rooms.zipf_s", "only used with spread: zipf")
		}
	case SpreadZipf:
		if s.Rooms.ZipfS <= 0 {
			p.add("rooms.zipf_s", "must be > 0 (zipf exponent: room r gets a share of clients proportional to 1/(r+1)^s)")
		}
	default:
		p.add("rooms.spread", "must be one of uniform, zipf, got %q", s.Rooms.Spread)
	}
	if s.Rooms.Count <= 0 {
		p.add("rooms.count", "must be > 0 (number of rooms)")
	} else if s.Clients > 0 && s.Rooms.Count > s.Clients {
		p.add("rooms.count", "must be <= clients (%d): a room needs a member", s.Clients)
	}
	if s.Payload < 0 || s.Payload > MaxPayload {
		p.add("payload", "must be between 0 and %d (bytes of chat content)", MaxPayload)
	}
	if len(s.Phases) == 0 {
		p.add("phases", "must list at least one phase")
	}
	names := map[string]int{}
	connected := 0.0 // share of clients connected before the phase
	for i, ph := range s.Phases {
		at := fmt.Sprintf("phases[%d]", i)
		if j, dup := names[ph.Name]; dup {
			p.add(at+".name", "%q is also the name of phases[%d] (give each phase a unique name)", ph.Name, j)
		}
		names[ph.Name] = i
		if ph.Name != "" && !nameRE.MatchString(ph.Name) {
			p.add(at+".name", "must be letters, digits, '.', '_' or '-', got %q", ph.Name)
		}
		s.validatePhase(p, at, ph, connected)
		switch ph.Kind {
		case KindEnter:
			connected = 1
		case KindLeave:
			connected *= 1 - ph.Share
		}
	}
	t := s.Thresholds
	if t.P99DeliveryMax != nil && *t.P99DeliveryMax <= 0 {
		p.add("thresholds.p99_delivery_max", "must be > 0 (a duration like 25ms)")
	}
	if t.LossMax != nil && (*t.LossMax < 0 || *t.LossMax > 1) {
		p.add("thresholds.loss_max", "must be between 0 and 1 (lost/expected deliveries)")
	}
	if t.ErrorRateMax != nil && (*t.ErrorRateMax < 0 || *t.ErrorRateMax > 1) {
		p.add("thresholds.error_rate_max", "must be between 0 and 1 (errors/requests)")
	}
	if t.MinDeliveriesPerSec != nil && *t.MinDeliveriesPerSec < 0 {
		p.add("thresholds.min_deliveries_per_s", "must be >= 0 (deliveries per second)")
	}
}

func (s *Scenario) validatePhase(p *problems, at string, ph Phase, connected float64) {
	if ph.Kind.Timed() {
		if ph.Duration <= 0 {
			p.add(at+".duration", "must be > 0 for kind %s (a duration like 10s)", ph.Kind)
		}
	} else if ph.Duration < 0 {
		p.add(at+".duration", "must be >= 0 (time limit of the phase; 0 = none)")
	}
	if ph.Kind != KindEnter && connected == 0 {
		p.add(at+".kind", "%s needs connected clients: put an enter phase before it", ph.Kind)
	}
	if ph.Payload < 0 || ph.Payload > MaxPayload {
		p.add(at+".payload", "must be between 0 and %d (bytes of chat content; 0 = the scenario's)", MaxPayload)
	}
	if ph.PrivateShare < 0 || ph.PrivateShare > 1 {
		p.add(at+".private_share", "must be between 0 and 1 (share of messages sent to one member)")
	}
	switch ph.Kind {
	case KindEnter, KindLeave:
		switch {
		case ph.ArrivalRate < 0:
			p.add(at+".arrival_rate", "must be > 0 (clients per second)")
		case ph.Concurrency < 0:
			p.add(at+".concurrency", "must be > 0 (clients at a time)")
		case ph.ArrivalRate > 0 && ph.Concurrency > 0:
			p.add(at+".concurrency", "set either arrival_rate (open model) or concurrency (closed model), not both")
		case ph.ArrivalRate == 0 && ph.Concurrency == 0:
			p.add(at, "%s needs arrival_rate (clients per second, open model) or concurrency (clients at a time, closed model)", ph.Kind)
		}
		if ph.Kind == KindLeave && (ph.Share <= 0 || ph.Share > 1) {
			p.add(at+".share", "must be > 0 and <= 1 (share of connected clients that leave)")
		}
	case KindChat:
		if ph.Rate <= 0 {
			p.add(at+".rate", "must be > 0 (messages per second per client)")
		}
	case KindStorm:
		if ph.Burst <= 0 {
			p.add(at+".burst", "must be > 0 (messages each member sends at once)")
		}
		if ph.BurstEvery < 0 {
			p.add(at+".burst_every", "must be >= 0 (interval between bursts; 0 = one burst)")
		} else if ph.Duration > 0 && ph.BurstEvery > ph.Duration {
			p.add(at+".burst_every", "must be <= duration (%s)", ph.Duration)
		}
	case KindHop:
		if ph.Rate < 0 {
			p.add(at+".rate", "must be >= 0 (messages per second per client)")
		}
		if ph.HopRate <= 0 {
			p.add(at+".hop_rate", "must be > 0 (room switches per second per hopping client)")
		}
		if ph.HopShare <= 0 || ph.HopShare > 1 {
			p.add(at+".hop_share", "must be > 0 and <= 1 (share of clients that hop)")
		}
		if s.Rooms.Count == 1 {
			p.add(at+".kind", "hop needs at least 2 rooms")
		}
	}
}

// Apply applies command-line overrides and validates the result again (see
// Overrides for what each one does). On error s may be partly changed.
func (s *Scenario) Apply(o Overrides) error {
	if o.Duration < 0 {
		return errors.New("scenario: --duration must be > 0")
	}
	if o.Duration > 0 {
		total := s.TimedDuration()
		if total == 0 {
			return fmt.Errorf("scenario %s: --duration: the scenario has no timed phase (chat, storm, hop, idle)", s.Name)
		}
		f := float64(o.Duration) / float64(total)
		for i := range s.Phases {
			ph := &s.Phases[i]
			if !ph.Kind.Timed() {
				continue
			}
			ph.Duration = scale(ph.Duration, f)
			if ph.BurstEvery > 0 {
				ph.BurstEvery = min(scale(ph.BurstEvery, f), ph.Duration)
			}
		}
	}
	if o.Clients != 0 {
		if o.Rooms == 0 && s.Clients > 0 && s.Rooms.Count > 0 {
			size := float64(s.Clients) / float64(s.Rooms.Count)
			s.Rooms.Count = max(1, int(math.Round(float64(o.Clients)/size)))
		}
		s.Clients = o.Clients
	}
	if o.Rooms != 0 {
		s.Rooms.Count = o.Rooms
	}
	if o.Rate != 0 {
		for i := range s.Phases {
			if s.Phases[i].Rate > 0 {
				s.Phases[i].Rate = o.Rate
			}
		}
	}
	if o.Seed != nil {
		s.Seed = *o.Seed
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("after overrides: %w", err)
	}
	return nil
}

func scale(d time.Duration, f float64) time.Duration {
	x := time.Duration(float64(d) * f).Round(time.Millisecond)
	return max(x, time.Millisecond)
}

// TimedDuration is the sum of the durations of the timed phases.
func (s *Scenario) TimedDuration() time.Duration {
	var d time.Duration
	for _, p := range s.Phases {
		if p.Kind.Timed() {
			d += p.Duration
		}
	}
	return d
}
