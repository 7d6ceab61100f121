package client

import (
	"sync"
	"time"

	"github.com/chatbench/chatbench/pomelo"
)

const (
	wheelRes   = 100 * time.Millisecond
	wheelSlots = 1024 // 102 s of horizon
	idleVisit  = time.Second
	hbGrace    = 2 * time.Second
)

// wheel is the one timer of a fleet: a hashed timing wheel that visits each
// client once per heartbeat interval to send its heartbeat, to close it when
// the server has been silent past the heartbeat timeout (2 x interval, as
// the JS client), and to fail requests past the request timeout. Clients
// without heartbeats are visited every second for the request timeouts. A
// visit never blocks: a heartbeat is queued like any write (outbox.go), and
// waits for no socket.
type wheel struct {
	f       *Fleet
	mu      sync.Mutex
	slots   [wheelSlots][]*Client
	cur     int64 // last tick processed
	started bool
	stopc   chan struct{}
	once    sync.Once
}

func newWheel(f *Fleet) *wheel { return &wheel{f: f, stopc: make(chan struct{})} }

func period(c *Client) time.Duration {
	p := c.hb
	if p <= 0 {
		p = idleVisit
	}
	if p > (wheelSlots-2)*wheelRes {
		p = (wheelSlots - 2) * wheelRes
	}
	return p
}

func (w *wheel) add(c *Client) {
	due := Now() + int64(period(c))
	w.mu.Lock()
	if !w.started {
		w.started = true
		w.cur = Now() / int64(wheelRes)
		go w.run()
	}
	w.insertLocked(c, due)
	w.mu.Unlock()
}

func (w *wheel) insertLocked(c *Client, due int64) {
	t := due / int64(wheelRes)
	if t <= w.cur {
		t = w.cur + 1
	}
	i := t % wheelSlots
	w.slots[i] = append(w.slots[i], c)
}

// remove is lazy: a closed client is dropped at its next visit.
func (w *wheel) remove(*Client) {}

func (w *wheel) stop() { w.once.Do(func() { close(w.stopc) }) }

func (w *wheel) run() {
	t := time.NewTicker(wheelRes)
	defer t.Stop()
	var list, again []*Client
	var due []int64
	for {
		select {
		case <-w.stopc:
			return
		case <-t.C:
		}
		now := Now()
		target := now / int64(wheelRes)
		for {
			w.mu.Lock()
			if w.cur >= target {
				w.mu.Unlock()
				break
			}
			w.cur++
			i := w.cur % wheelSlots
			list, w.slots[i] = w.slots[i], list[:0]
			w.mu.Unlock()

			again, due = again[:0], due[:0]
			for j, c := range list {
				list[j] = nil
				if next, keep := w.visit(c, now); keep {
					again = append(again, c)
					due = append(due, next)
				}
			}
			if len(again) > 0 {
				w.mu.Lock()
				for j, c := range again {
					w.insertLocked(c, due[j])
					again[j] = nil
				}
				w.mu.Unlock()
			}
		}
	}
}

// visit does one client's periodic work and returns when to come back.
func (w *wheel) visit(c *Client, now int64) (int64, bool) {
	if c.closed.Load() {
		return 0, false
	}
	c.expire(now)
	if c.hb > 0 {
		if now-c.lastRecv.Load() > int64(2*c.hb+hbGrace) {
			c.abort(ErrHeartbeatTimeout)
			return 0, false
		}
		if err := c.writePackage(pomelo.Heartbeat, nil); err != nil {
			c.abort(err)
			return 0, false
		}
	}
	return now + int64(period(c)), true
}
