package wsout

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every index is delivered exactly once, whether the machine is saturated or
// not, from many broadcasters at once.
func TestFanoutCoversEveryIndexOnce(t *testing.T) {
	defer testLoad.Set(false)
	for _, sat := range []bool{false, true} {
		testLoad.Set(sat)
		for _, n := range []int{0, 1, fanoutMin - 1, fanoutMin, fanoutMin + 1, 100, 1001} {
			t.Run(fmt.Sprintf("saturated=%v/n=%d", sat, n), func(t *testing.T) {
				const broadcasters, rounds = 4, 50
				hits := make([]atomic.Int32, n)
				var wg sync.WaitGroup
				for range broadcasters {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range rounds {
							fanOpts.Fanout(n, func(lo, hi int) {
								if lo < 0 || hi > n || lo > hi {
									t.Errorf("part(%d, %d) outside [0, %d)", lo, hi, n)
									return
								}
								for i := lo; i < hi; i++ {
									hits[i].Add(1)
								}
							})
						}
					}()
				}
				wg.Wait()
				for i := range hits {
					if got := hits[i].Load(); got != broadcasters*rounds {
						t.Fatalf("index %d delivered %d times, want %d", i, got, broadcasters*rounds)
					}
				}
			})
		}
	}
}

// On an idle machine with more than one P a large broadcast hands chunks to
// the workers (the path the test above may or may not have taken), and
// Fanout returns only after they are done.
func TestFanoutHandsOffWhenIdle(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one P: Fanout runs everything on the caller's goroutine")
	}
	testLoad.Set(false)
	n := 4 * fanoutMin
	before := fanHandoffs.Load()
	for deadline := time.Now().Add(10 * time.Second); fanHandoffs.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("no chunk was handed to a worker in 10s of broadcasts on an idle machine")
		}
		var done atomic.Int32
		fanOpts.Fanout(n, func(lo, hi int) { done.Add(int32(hi - lo)) })
		if got := done.Load(); got != int32(n) {
			t.Fatalf("Fanout returned with %d of %d delivered", got, n)
		}
	}
}
