package cluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/server/servertest"
)

// collect accumulates c's pushes until done(pushes) or the deadline.
func collect(t *testing.T, c *servertest.Client, into *[]servertest.Push, done func([]servertest.Push) bool) {
	t.Helper()
	testwait.Until(t, servertest.Timeout, func() error {
		*into = append(*into, c.Pushes()...)
		if !done(*into) {
			return fmt.Errorf("pushes did not complete; have %d", len(*into))
		}
		return nil
	})
}

// chats returns the onChat messages with prefix p, in arrival order.
func chats(ps []servertest.Push, p string) []string {
	var out []string
	for _, x := range ps {
		if msg, _ := x.Body["msg"].(string); x.Route == "onChat" && len(msg) > len(p) && msg[:len(p)] == p {
			out = append(out, msg)
		}
	}
	return out
}

// before counts the onChat messages with prefix p that precede the first
// push of route for user, or -1 if there is none.
func before(ps []servertest.Push, p, route, user string) int {
	n := 0
	for _, x := range ps {
		if x.Route == route && x.Body["user"] == user {
			return n
		}
		if msg, _ := x.Body["msg"].(string); x.Route == "onChat" && len(msg) > len(p) && msg[:len(p)] == p {
			n++
		}
	}
	return -1
}

func seq(p string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", p, i))
	}
	return out
}

// TestSwitchAcrossShards: a member switches from a room of one shard to a
// room of the other while both rooms carry traffic. It must receive exactly
// the old room's messages that precede its onLeave there (as an observer on
// the other connector sees them) and exactly the new room's messages that
// follow its onAdd there (as an observer on its new connector sees it):
// nothing after it left, nothing lost after it entered.
func TestSwitchAcrossShards(t *testing.T) {
	const n = 120
	for _, mover := range []int{0, 1} {
		t.Run(fmt.Sprintf("mover-on-connector-%d", mover+1), func(t *testing.T) {
			l := startLocal(t, 2, 2)
			gate := l.Gate.ClientAddr
			x, y := roomsOn(0, 2, 1)[0], roomsOn(1, 2, 1)[0]
			on := func(p string, i int) string { return usersOn(p, i, 2, 1)[0] }
			mName := on("m", mover)
			xs := enterAll(t, gate, x, on("sx", 0), on("ox", 1), mName)
			ys := enterAll(t, gate, y, on("sy", 1), on("oy", 0))
			sx, ox, m := xs[0], xs[1], xs[2]
			sy, oy := ys[0], ys[1]

			var wg sync.WaitGroup
			for _, s := range []struct {
				c *servertest.Client
				p string
			}{{sx, "x:"}, {sy, "y:"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range n {
						s.c.Request("chat.chatHandler.send", map[string]any{"content": fmt.Sprintf("%s%d", s.p, i), "target": "*"})
					}
				}()
			}
			var mp, op, yp []servertest.Push
			collect(t, m, &mp, func(ps []servertest.Push) bool { return len(chats(ps, "x:")) >= n/4 })
			r := m.Request("connector.entryHandler.switchRoom", map[string]any{"rid": y})
			if _, ok := r["users"]; !ok {
				t.Fatalf("switchRoom = %v", r)
			}
			wg.Wait()
			collect(t, ox, &op, func(ps []servertest.Push) bool { return len(chats(ps, "x:")) == n })
			collect(t, oy, &yp, func(ps []servertest.Push) bool { return len(chats(ps, "y:")) == n })
			k := before(op, "x:", "onLeave", mName)
			j := before(yp, "y:", "onAdd", mName)
			if k < 0 || j < 0 {
				t.Fatalf("observers saw no onLeave/onAdd of %s (k=%d j=%d)", mName, k, j)
			}
			collect(t, m, &mp, func(ps []servertest.Push) bool { return len(chats(ps, "y:")) >= n-j })
			if got, want := chats(mp, "x:"), seq("x:", 0, k); !slices.Equal(got, want) {
				t.Errorf("mover's old-room messages: got %d (%v..), want exactly the %d before its onLeave", len(got), got[max(0, len(got)-3):], k)
			}
			if got, want := chats(mp, "y:"), seq("y:", j, n); !slices.Equal(got, want) {
				t.Errorf("mover's new-room messages: got %d, want exactly the %d after its onAdd (from y:%d)", len(got), n-j, j)
			}
			if before(mp, "y:", "onAdd", mName) >= 0 {
				t.Errorf("mover got its own onAdd from the new room (the newcomer reads the room from its answer)")
			}
			if before(mp, "x:", "onLeave", mName) >= 0 {
				t.Errorf("mover got its own onLeave from the old room")
			}
			t.Logf("switched after x:%d, entered before y:%d", k, j)
		})
	}
}
