package wsout

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Direct writes are for a machine with CPU to spare. They take a
// broadcast's writes out of the writer goroutines and do them one after
// another on the sender's goroutine, which spares a goroutine wake-up and a
// park per push (14-20% of the server's CPU at 25-50 k deliveries/s here);
// but on a saturated machine the writer goroutines are what batches pushes
// (a writer that runs late takes several packages in one write), and direct
// writes there cost more writes for the same deliveries (p99 about 2x worse
// at 100 k/s). So writers read a Load (Options.Load) on every push: while it
// says saturated, direct writes are off and flushers write (flush.go), and
// Fanout runs a broadcast on the caller's goroutine.
//
// MachineLoad is the server's Load: a probe reads the machine's CPU time
// (/proc/stat) every probeTick and says saturated while the machine is
// busier than busyOn, not any more below busyOff.
const (
	probeTick = 100 * time.Millisecond
	busyOn    = 0.90
	busyOff   = 0.80
)

// Load says whether the machine is saturated. The zero value says not,
// until Set; a nil *Load never says saturated. Safe for concurrent use.
type Load struct{ sat atomic.Bool }

// Saturated reports the signal; false for a nil Load.
func (l *Load) Saturated() bool { return l != nil && l.sat.Load() }

// Set sets the signal (for a caller with its own measure of load, and for
// tests).
func (l *Load) Set(saturated bool) { l.sat.Store(saturated) }

var machine struct {
	once sync.Once
	load Load
}

// MachineLoad returns the process's probe of the whole machine's CPU use,
// started on the first call and running for the life of the process. Where
// there is no /proc/stat (not Linux) it never says saturated.
func MachineLoad() *Load {
	machine.once.Do(func() { go probe(&machine.load) })
	return &machine.load
}

func probe(l *Load) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return // not linux: never saturated
	}
	defer f.Close()
	buf := make([]byte, 512)
	var lastBusy, lastTotal uint64
	for {
		n, _ := f.ReadAt(buf, 0)
		if busy, total, ok := parseCPU(buf[:n]); ok {
			if lastTotal > 0 && total > lastTotal {
				share := float64(busy-lastBusy) / float64(total-lastTotal)
				if share > busyOn {
					l.Set(true)
				} else if share < busyOff {
					l.Set(false)
				}
			}
			lastBusy, lastTotal = busy, total
		}
		time.Sleep(probeTick)
	}
}

// parseCPU reads the aggregate "cpu" line of /proc/stat: busy (all but
// idle and iowait) and total jiffies.
func parseCPU(b []byte) (busy, total uint64, ok bool) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return 0, 0, false
	}
	var idle uint64
	for i, fld := range fields[1:] {
		v, err := strconv.ParseUint(string(fld), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total, true
}
