package driver

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
)

// Limits of the self-check: past any of them the run is marked driver-bound.
const (
	lagTick     = 5 * time.Millisecond
	maxLagP99   = 10 * time.Millisecond
	maxGCPause  = 50 * time.Millisecond
	maxCPUShare = 0.90 // of the driver's GOMAXPROCS cores
	// lag counts against the driver only when the driver itself is a big
	// CPU consumer; a lagging driver that uses little CPU is waiting for a
	// machine the server (or a neighbour) keeps busy: reported, not judged.
	lagCPUShare    = 0.40
	maxLateShare   = 0.01 // of scheduled (chat, hop) sends
	minLateSamples = 100
)

// selfCheck watches the driver: its CPU (getrusage), GC pauses
// (runtime.MemStats) and scheduler lag (how late a 5 ms sleep wakes up).
type selfCheck struct {
	stopc  chan struct{}
	done   chan struct{}
	lag    *hdr.Histogram // us, owned by the lag goroutine until done
	wall   time.Time
	ru     syscall.Rusage
	numGC  uint32
	pauses uint64
	// peakCPU is the busiest second's CPU (percent of one core), owned by
	// the sampler goroutine until done
	peakCPU float64
}

type checkResult struct {
	cpuPercent     float64
	cpu            time.Duration // CPU time (user + system) over the run
	peakCPU        float64       // the busiest second, percent of one core
	lagP99, lagMax time.Duration
	gcTotal, gcMax time.Duration
	cores          int
	elapsed        time.Duration
}

func startSelfCheck() *selfCheck {
	c := &selfCheck{stopc: make(chan struct{}), done: make(chan struct{}), lag: hdr.New(1, 60_000_000, 2), wall: time.Now()}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &c.ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c.numGC, c.pauses = ms.NumGC, ms.PauseTotalNs
	go func() {
		defer close(c.done)
		secStart, secCPU := time.Now(), cpuTime(&c.ru)
		for {
			t0 := time.Now()
			select {
			case <-c.stopc:
				return
			case <-time.After(lagTick):
			}
			now := time.Now()
			late := now.Sub(t0) - lagTick
			_ = c.lag.RecordValue(max(int64(late/time.Microsecond), 1))
			if el := now.Sub(secStart); el >= time.Second {
				var ru syscall.Rusage
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				cpu := cpuTime(&ru)
				c.peakCPU = max(c.peakCPU, 100*float64(cpu-secCPU)/float64(el))
				secStart, secCPU = now, cpu
			}
		}
	}()
	return c
}

func (c *selfCheck) stop() checkResult {
	close(c.stopc)
	<-c.done
	var r checkResult
	r.elapsed = time.Since(c.wall)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := tv(ru.Utime) + tv(ru.Stime) - tv(c.ru.Utime) - tv(c.ru.Stime)
	r.cpu = cpu
	if r.elapsed > 0 {
		r.cpuPercent = 100 * float64(cpu) / float64(r.elapsed)
	}
	r.lagP99 = time.Duration(c.lag.ValueAtQuantile(99)) * time.Microsecond
	r.lagMax = time.Duration(c.lag.Max()) * time.Microsecond
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.gcTotal = time.Duration(ms.PauseTotalNs - c.pauses)
	n := ms.NumGC - c.numGC
	for i := uint32(0); i < n && i < uint32(len(ms.PauseNs)); i++ {
		p := time.Duration(ms.PauseNs[(ms.NumGC-1-i)%uint32(len(ms.PauseNs))])
		r.gcMax = max(r.gcMax, p)
	}
	r.cores = runtime.GOMAXPROCS(0)
	r.peakCPU = c.peakCPU
	return r
}

func cpuTime(ru *syscall.Rusage) time.Duration { return tv(ru.Utime) + tv(ru.Stime) }

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

// judge fills the summary's driver check and decides whether the driver,
// not the server, was the bottleneck.
func (d *driver) judge(r checkResult, sum *metrics.Summary) metrics.DriverCheck {
	dc := metrics.DriverCheck{
		CPUPercent:     r.cpuPercent,
		CPUSeconds:     r.cpu.Seconds(),
		GCPauseTotalUs: int64(r.gcTotal / time.Microsecond),
		GCPauseMaxUs:   int64(r.gcMax / time.Microsecond),
		SchedLagP99Us:  int64(r.lagP99 / time.Microsecond),
		SchedLagMaxUs:  int64(r.lagMax / time.Microsecond),
	}
	var why []string
	// busy: in its busiest second the driver used a large share of its cores
	busy := r.peakCPU >= lagCPUShare*100*float64(r.cores)
	if r.lagP99 > maxLagP99 && busy {
		why = append(why, fmt.Sprintf("scheduler lag p99 %v > %v with the driver at up to %.0f%% CPU: its goroutines ran late",
			r.lagP99, maxLagP99, r.peakCPU))
	}
	if r.gcMax > maxGCPause && busy { // a Go STW pause this long on an idle-ish driver means a starved machine
		why = append(why, fmt.Sprintf("GC pause %v > %v with the driver at up to %.0f%% CPU", r.gcMax, maxGCPause, r.peakCPU))
	}
	if limit := maxCPUShare * 100 * float64(r.cores); r.cpuPercent > limit {
		why = append(why, fmt.Sprintf("driver CPU %.0f%% > %.0f%% of its %d cores", r.cpuPercent, limit, r.cores))
	}
	// late sends count against the driver when it was busy, or when the
	// machine was not lagging (then the driver itself held them back)
	if sent, late := d.openSent.Load(), d.openLate.Load(); sent >= minLateSamples && float64(late) > maxLateShare*float64(sent) &&
		(busy || r.lagP99 <= maxLagP99) {
		why = append(why, fmt.Sprintf("%d of %d scheduled sends (%.1f%%) went out more than %v late",
			late, sent, 100*float64(late)/float64(sent), d.opts.LateThreshold))
	}
	if len(why) > 0 {
		dc.DriverBound = true
		dc.DriverBoundWhy = strings.Join(why, "; ")
	}
	return dc
}

// openModel reports whether sends of this kind have spread schedules (a
// storm's burst is meant to be simultaneous: its lateness is reported, not judged).
func openModel(k scenario.Kind) bool { return k == scenario.KindChat || k == scenario.KindHop }

// memInUse is the Go memory in use after a full GC: heap spans in use,
// goroutine stacks, span metadata.
func memInUse() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse + ms.MSpanInuse + ms.MCacheInuse)
}
