// Package workers splits one benchmark run over several driver processes,
// on one machine or on several, coordinated over NATS (never over a socket
// protocol of our own).
//
// A worker (Serve; `chatbench worker --nats URL`) announces itself on
// NATS and waits for a coordinator. The coordinator (Run; `chatbench bench
// --workers N`) waits for N workers, checks that they run the same
// chatbench, measures each worker's clock against its own, and hands each
// one its part of the run: the scenario (with its seed), its slice of the
// clients, the target and the clock correction. The workers then run the
// scenario's phases in step (a barrier before every phase publishes every
// worker's room membership and a common start time), send each other the
// deliveries of each other's messages (bench/driver.Split), stream their
// progress lines, and ship their results at the end: encoded HdrHistograms
// and per-second counters in a summary, never percentiles. The coordinator
// merges them losslessly (bench/metrics.Merge) into one results directory
// that reads like a one-process run, with parts naming the workers.
//
// The coordinator stops every worker on Ctrl-C, at the end, and when one
// of them dies (its heartbeat stops, or its process ends): the run is then
// marked incomplete, names the worker, and still writes what the others
// measured.
package workers

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
)

// Protocol is the version of the messages below; a coordinator refuses a
// worker that speaks another.
const Protocol = 1

// subjects names the NATS subjects of the workers under a prefix (the
// natsopts subject prefix, "chatbench" by default): P.workers.hello where
// idle workers announce themselves, P.workers.inbox.<name> a worker's
// requests, P.workers.run.<id>.<what> a run's messages.
type subjects struct{ prefix string }

func (s subjects) hello() string            { return s.prefix + ".workers.hello" }
func (s subjects) inbox(name string) string { return s.prefix + ".workers.inbox." + name }
func (s subjects) run(run, what string) string {
	return s.prefix + ".workers.run." + run + "." + what
}

// hello is what an idle worker announces every helloEvery.
type hello struct {
	Name     string `json:"name"`
	Version  string `json:"version"`  // chatbench commit
	Protocol int    `json:"protocol"` // Protocol
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	BootID   string `json:"boot_id"` // same boot id: same machine, same clock
}

const helloEvery = 300 * time.Millisecond

// request is what a coordinator asks a worker on its inbox.
type request struct {
	Kind   string  `json:"kind"` // "ping", "assign"
	Assign *assign `json:"assign,omitempty"`
}

type pong struct {
	WallNs int64  `json:"wall_ns"`
	Err    string `json:"err,omitempty"`
}

// assign is a worker's part of a run.
type assign struct {
	Run      string             `json:"run"`
	Index    int                `json:"index"`
	Count    int                `json:"count"`
	Names    []string           `json:"names"`
	Scenario *scenario.Scenario `json:"scenario"`
	Target   string             `json:"target"`
	Topology string             `json:"topology"`
	Commit   string             `json:"commit"`
	// ClockOffsetNs is the worker's wall clock minus the coordinator's.
	ClockOffsetNs   int64         `json:"clock_offset_ns"`
	SourceAddrs     int           `json:"source_addrs"`
	FirstSourceAddr int           `json:"first_source_addr"`
	LateThreshold   time.Duration `json:"late_threshold"`
	DrainTimeout    time.Duration `json:"drain_timeout"`
	ServerNice      int           `json:"server_nice"`
	LogLevel        string        `json:"log_level"`
}

// barrierMsg: a worker reached the barrier before Phase.
type barrierMsg struct {
	Index int     `json:"index"`
	Phase int     `json:"phase"`
	Local []int32 `json:"local"`
}

// goMsg: every worker reached the barrier before Phase: Global is the
// membership to apply. A second goMsg without Global, once every worker
// applied it ("applied", a barrierMsg without Local), starts the phase at
// AtNs (coordinator's wall clock, unix ns).
type goMsg struct {
	Phase  int     `json:"phase"`
	AtNs   int64   `json:"at_ns"`
	Global []int32 `json:"global"`
}

type progressMsg struct {
	Index int    `json:"index"`
	Line  string `json:"line"`
}

type beatMsg struct {
	Index int `json:"index"`
}

type stopMsg struct {
	Reason string `json:"reason"`
}

// resultMsg is a worker's part of the results.
type resultMsg struct {
	Index           int                `json:"index"`
	Summary         *metrics.Summary   `json:"summary,omitempty"`
	Rooms           []driver.RoomStats `json:"rooms,omitempty"`
	MemoryPerClient int64              `json:"memory_per_client"`
	Connected       int                `json:"connected"`
	Err             string             `json:"err,omitempty"`
	Unreachable     bool               `json:"unreachable,omitempty"`
}

func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// bootID identifies the running kernel: two processes with the same boot
// id read the same clock.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Big messages (membership, results) go in chunks under the connection's
// payload limit: a chunk is an 8-byte message id, 4-byte index and 4-byte
// count, then data.
const chunkHeader = 16

func publishBig(nc *nats.Conn, subj string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	size := int(min(nc.MaxPayload(), 512<<10)) - chunkHeader - 256
	if size < 1024 {
		size = 1024
	}
	n := (len(data) + size - 1) / size
	n = max(n, 1)
	var id [8]byte
	_, _ = rand.Read(id[:])
	for i := range n {
		lo, hi := i*size, min((i+1)*size, len(data))
		b := make([]byte, chunkHeader, chunkHeader+hi-lo)
		copy(b, id[:])
		binary.BigEndian.PutUint32(b[8:], uint32(i))
		binary.BigEndian.PutUint32(b[12:], uint32(n))
		b = append(b, data[lo:hi]...)
		if err := nc.Publish(subj, b); err != nil {
			return err
		}
	}
	return nil
}

// assembler puts chunked messages back together.
type assembler struct {
	mu      sync.Mutex
	pending map[[8]byte]*partial
}

type partial struct {
	parts [][]byte
	have  int
}

var errChunk = errors.New("malformed chunk")

// add takes one chunk; it returns the whole message once its last chunk is in.
func (a *assembler) add(b []byte) ([]byte, error) {
	if len(b) < chunkHeader {
		return nil, errChunk
	}
	var id [8]byte
	copy(id[:], b)
	i, n := int(binary.BigEndian.Uint32(b[8:])), int(binary.BigEndian.Uint32(b[12:]))
	if n < 1 || i >= n || n > 1<<16 {
		return nil, fmt.Errorf("%w: part %d of %d", errChunk, i, n)
	}
	if n == 1 {
		return b[chunkHeader:], nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[[8]byte]*partial{}
	}
	p := a.pending[id]
	if p == nil {
		p = &partial{parts: make([][]byte, n)}
		a.pending[id] = p
	}
	if len(p.parts) != n {
		return nil, fmt.Errorf("%w: count %d, was %d", errChunk, n, len(p.parts))
	}
	if p.parts[i] == nil {
		p.parts[i] = append([]byte(nil), b[chunkHeader:]...)
		p.have++
	}
	if p.have < n {
		return nil, nil
	}
	delete(a.pending, id)
	var out []byte
	for _, x := range p.parts {
		out = append(out, x...)
	}
	return out, nil
}
