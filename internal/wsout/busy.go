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
// at 100 k/s). A probe reads the machine's CPU time (/proc/stat) every
// probeTick and turns direct writes off while the machine is busier than
// busyOn, on again below busyOff; meanwhile flushers write (flush.go).
const (
	probeTick = 100 * time.Millisecond
	busyOn    = 0.90
	busyOff   = 0.80
)

var (
	saturated atomic.Bool
	probeOnce sync.Once
)

// probeOn is false in this package's tests, which set saturated themselves
// so that what they exercise does not depend on the machine's load.
var probeOn = true

func startProbe() {
	if probeOn {
		probeOnce.Do(func() { go probe() })
	}
}

func probe() {
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
					saturated.Store(true)
				} else if share < busyOff {
					saturated.Store(false)
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
