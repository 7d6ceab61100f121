package scenario

import (
	"errors"
	"fmt"
	"math"
	"time"
)

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
