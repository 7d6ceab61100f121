// Package metrics is the results format of chatbench: HdrHistograms per
// operation, counters, a per-second series, and summary.json, the versioned
// contract read by reports, the CI gate and multi-machine merges
// (docs/results.md documents every field).
//
// # Recording
//
// A Run owns a set of Recorders. Recording goes to a Recorder, never to the
// Run, so that receivers do not serialize on one lock:
//
//	run := metrics.NewRun(metrics.Options{})
//	recs := make([]*metrics.Recorder, 4*runtime.GOMAXPROCS(0))
//	for i := range recs { recs[i] = run.NewRecorder() }
//	// client i records into recs[i%len(recs)]
//	recs[k].Record(metrics.OpDelivery, latency)
//	// once a second, from one goroutine:
//	sec := run.Tick(time.Now()) // closes the second, returns it for the progress line
//	// at the end:
//	sum := run.Finish(time.Now())
//	sum.Scenario = ...; sum.Write(dir)
//
// # Concurrency contract
//
// Every Recorder method is safe for concurrent use: a Recorder holds a mutex
// that its writers and the once-a-second Tick share. The lock is uncontended
// when each Recorder is used by one goroutine, and lightly contended when a
// few goroutines share one (the usual sharding: client i uses recorder
// i mod n, with n a small multiple of GOMAXPROCS). Record, Error and Add do
// not allocate once each operation's histogram exists (it is made on first
// use). Run.Tick and Run.Finish must be called from one goroutine (the
// driver's ticker); they lock each Recorder in turn, briefly.
//
// Histograms are in microseconds, 1 us to 1 hour (values outside are clamped
// and counted in Counters.Clamped), 3 significant digits; per-second delivery
// histograms use 2 significant digits to keep summary.json small.
package metrics
