package scenario

import (
	"errors"
	"time"
)

// Names lists the shipped scenarios (embedded in the binary), sorted.
func Names() []string { return nil }

// Load loads a shipped scenario by name ("chat") or a file by path
// ("my.yaml", "./x/y.yaml"), and validates it. Errors name file:line and the
// field.
func Load(nameOrPath string) (*Scenario, error) {
	return nil, errors.New("scenario: not implemented yet")
}

// Parse decodes and validates one scenario document; source names it in
// errors (a file path).
func Parse(source string, data []byte) (*Scenario, error) {
	return nil, errors.New("scenario: not implemented yet")
}

// Apply applies command-line overrides and validates the result again.
func (s *Scenario) Apply(o Overrides) error { return nil }

// Validate checks the invariants Parse checks, for a Scenario built or
// changed in code. Its errors name fields but no line.
func (s *Scenario) Validate() error { return nil }

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
