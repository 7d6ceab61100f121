package scenario

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

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
