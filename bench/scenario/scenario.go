// Package scenario is the declarative load model of chatbench: a YAML file
// names how many clients connect, how they spread over rooms, and a sequence
// of phases (enter, chat, storm, leave, hop, idle) run on the same sockets,
// plus the thresholds a run must meet.
//
// Files are decoded through yaml.Node so that every error names the file, the
// line and the field (for example
// "scenarios/x.yaml:12: phases[1].rate: must be > 0 (messages per second per client)").
// Unknown fields are errors that list the valid ones.
//
// The package also holds the pure, deterministic helpers a driver needs to
// turn a Scenario into a schedule (room assignment, per-client random
// streams, deterministic selection of a share of clients), so that every
// driver process derives the same plan from the same seed.
package scenario

import "time"

// Kind is what a phase does.
type Kind string

// The phase kinds.
const (
	// KindEnter connects clients (queryEntry, connect, handshake, enter) at
	// ArrivalRate clients/s (open model) or Concurrency at a time (closed
	// model). It ends when every client not yet connected has entered.
	KindEnter Kind = "enter"
	// KindChat: every connected client sends Rate messages/s (Poisson
	// arrivals, scheduled: latency counts from the scheduled time), a
	// PrivateShare of them to one member of its room, the rest to the room.
	KindChat Kind = "chat"
	// KindStorm: every BurstEvery (once at the start when zero), every
	// connected client sends Burst messages at once to its room.
	KindStorm Kind = "storm"
	// KindLeave disconnects a Share of the connected clients at ArrivalRate
	// clients/s or Concurrency at a time; the others observe onLeave.
	KindLeave Kind = "leave"
	// KindHop: a HopShare of the clients switch rooms on the same socket
	// (connector.entryHandler.switchRoom) HopRate times per second each,
	// while every client chats at Rate messages/s (Rate may be 0).
	KindHop Kind = "hop"
	// KindIdle keeps the sockets open (heartbeats only) for Duration.
	KindIdle Kind = "idle"
)

// Kinds lists every phase kind in documentation order.
var Kinds = []Kind{KindEnter, KindChat, KindStorm, KindLeave, KindHop, KindIdle}

// Timed reports whether the phase length is its Duration (chat, storm, hop,
// idle). Enter and leave phases end when their clients have arrived or left;
// their Duration, when set, is only a time limit.
func (k Kind) Timed() bool {
	return k == KindChat || k == KindStorm || k == KindHop || k == KindIdle
}

// Sends reports whether clients send chat messages in this kind of phase.
func (k Kind) Sends() bool { return k == KindChat || k == KindStorm || k == KindHop }

// Spread is how clients are assigned to rooms.
type Spread string

// The room spreads.
const (
	// SpreadUniform: client i joins room i mod Count (rooms differ by at
	// most one member).
	SpreadUniform Spread = "uniform"
	// SpreadZipf: room r gets a share of clients proportional to
	// 1/(r+1)^ZipfS (room 0 is the hottest); sizes are exact (largest
	// remainder) and which client lands where is a permutation by Seed.
	SpreadZipf Spread = "zipf"
)

// Scenario is one decoded and validated scenario file.
type Scenario struct {
	Name        string // defaults to the file name without extension
	Description string
	// Source is where the scenario came from: "scenarios/chat.yaml" for a
	// shipped one, else the path given to Load.
	Source     string
	Seed       int64 // seeds every random choice; default 1
	Clients    int   // total simulated clients, > 0
	Rooms      Rooms
	Payload    int // chat content bytes per message (before the driver's stamp); default 64
	Phases     []Phase
	Thresholds Thresholds
	// ServeFlags are flags of `chatbench serve` ("--heartbeat=15s") the
	// scenario needs from the server: bench passes them to the server it
	// starts, before its own --serve-flag ones (which win). A server given
	// with --target is not started by bench: they are printed, not applied.
	ServeFlags []string
}

// Rooms says how many rooms there are and how clients spread over them.
type Rooms struct {
	Count  int     // > 0
	Spread Spread  // default uniform
	ZipfS  float64 // zipf exponent, > 0; default 1.0; only with spread: zipf
}

// Phase is one step of a scenario. Which fields apply depends on Kind (see
// the Kind constants and docs/results.md); unused fields are zero.
type Phase struct {
	Name string // unique within the scenario; defaults to the kind
	Kind Kind
	// Duration is the phase length for timed kinds (> 0), and an optional
	// time limit for enter and leave (0 = none).
	Duration time.Duration
	// ArrivalRate is clients per second entering (enter) or leaving
	// (leave): the open model. Exactly one of ArrivalRate and Concurrency
	// is set on enter and leave phases.
	ArrivalRate float64
	// Concurrency is how many clients enter (or leave) at the same time:
	// the closed model, each finishing before the next starts.
	Concurrency int
	// Rate is messages per second per client (chat: > 0; hop: >= 0).
	Rate float64
	// PrivateShare is the share 0..1 of messages sent to one member of the
	// sender's room instead of the whole room (chat, storm, hop).
	PrivateShare float64
	// Payload overrides Scenario.Payload for this phase when > 0.
	Payload int
	// Burst is how many messages each member sends at once (storm, > 0).
	Burst int
	// BurstEvery is the interval between bursts (storm); 0 = one burst at
	// the start of the phase, the rest of Duration lets deliveries drain.
	BurstEvery time.Duration
	// HopRate is room switches per second per hopping client (hop, > 0).
	HopRate float64
	// HopShare is the share (0, 1] of clients that hop (hop).
	HopShare float64
	// Share is the share (0, 1] of connected clients that leave (leave;
	// default 1).
	Share float64
}

// PayloadBytes is the content size used in this phase of s.
func (p Phase) PayloadBytes(s *Scenario) int {
	if p.Payload > 0 {
		return p.Payload
	}
	return s.Payload
}

// Thresholds are the limits a run must meet (checked by the CI gate). A nil
// field is not checked.
type Thresholds struct {
	// P99DeliveryMax is the largest acceptable p99 delivery latency.
	P99DeliveryMax *time.Duration
	// LossMax is the largest acceptable lost/expected ratio (0..1).
	LossMax *float64
	// ErrorRateMax is the largest acceptable errors/requests ratio (0..1).
	ErrorRateMax *float64
	// MinDeliveriesPerSec is the smallest acceptable deliveries/s.
	MinDeliveriesPerSec *float64
	// Exprs are threshold expressions on any metric ("delivery.p99 < 50ms",
	// "errors.rate < 0.1%"), checked after the named thresholds.
	Exprs []Expr
}

// Overrides are command-line changes applied to a loaded scenario. Zero
// values (nil Seed) leave the scenario's value alone. Thresholds are not
// scaled: min_deliveries_per_s in particular is meant for the default sizes.
type Overrides struct {
	// Duration scales every timed phase (chat, storm, hop, idle) by the
	// same factor so that their durations add up to Duration (storm
	// BurstEvery scales with them). Enter and leave phases are not timed
	// and are unchanged.
	Duration time.Duration
	// Clients sets Scenario.Clients. Without Rooms it keeps the room size
	// (clients per room, the shape of the scenario) by changing Rooms.Count.
	Clients int
	Rooms   int     // sets Rooms.Count
	Rate    float64 // sets Rate of every phase that has a message rate > 0 (chat, hop)
	Seed    *int64  // sets Scenario.Seed
}
