package servertest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// Target is a running chat cluster as clients see it.
type Target struct {
	GateAddr string
}

// RunSuite runs the chat behaviour tests every topology must pass, each
// against a fresh cluster from start. Single-process and split topologies
// call it with their own start function.
func RunSuite(t *testing.T, start func(t *testing.T) Target) {
	t.Run("QueryEntry", func(t *testing.T) {
		tg := start(t)
		g := Dial(t, tg.GateAddr)
		r := g.Request("gate.gateHandler.queryEntry", map[string]any{"uid": "alice"})
		if r["code"] != float64(200) || r["host"] == nil || r["port"] == nil {
			t.Fatalf("queryEntry alice = %v, want code 200 with host and port", r)
		}
		r = g.Request("gate.gateHandler.queryEntry", map[string]any{})
		if r["code"] != float64(500) {
			t.Fatalf("queryEntry without uid = %v, want code 500", r)
		}
		r = g.Request("connector.entryHandler.enter", map[string]any{"username": "a", "rid": "r"})
		if r["code"] != float64(404) {
			t.Fatalf("enter at the gate = %v, want code 404", r)
		}
	})

	t.Run("EnterAndDuplicate", func(t *testing.T) {
		tg := start(t)
		alice, users := Enter(t, tg.GateAddr, "alice", "r1")
		if !slices.Equal(users, []string{"alice"}) {
			t.Fatalf("alice users = %v", users)
		}
		bob, users := Enter(t, tg.GateAddr, "bob", "r1")
		if !slices.Equal(users, []string{"alice", "bob"}) {
			t.Fatalf("bob users = %v", users)
		}
		// Stock pomelo: onAdd goes to the members already in, not to the
		// newcomer. A broadcast after the enters marks where the room's
		// earlier pushes end (a room's pushes arrive in order).
		if p := alice.WaitPush("onAdd"); p.Body["user"] != "bob" || p.Body["route"] != "onAdd" {
			t.Fatalf("alice's onAdd = %v, want bob's", p.Body)
		}
		alice.Request("chat.chatHandler.send", map[string]any{"content": "mark", "target": "*"})
		for _, c := range []*Client{alice, bob} {
			c.WaitPush("onChat")
			for _, p := range c.Pushes() {
				t.Errorf("unexpected push before the mark: %s %v", p.Route, p.Body)
			}
		}
		// A second alice in r1 is refused; the first one is not disturbed.
		dup := Dial(t, connectorOf(t, tg, "alice"))
		r := dup.Request("connector.entryHandler.enter", map[string]any{"username": "alice", "rid": "r1"})
		if r["code"] != float64(500) || r["error"] != true {
			t.Fatalf("duplicate enter = %v, want {code:500,error:true}", r)
		}
		// The same name in another room is fine.
		_, users = Enter(t, tg.GateAddr, "alice", "r2")
		if !slices.Equal(users, []string{"alice"}) {
			t.Fatalf("alice in r2 users = %v", users)
		}
		// The refused session can still enter elsewhere.
		r = dup.Request("connector.entryHandler.enter", map[string]any{"username": "alice2", "rid": "r1"})
		if _, ok := r["users"]; !ok {
			t.Fatalf("enter after a refused enter = %v", r)
		}
	})

	t.Run("BroadcastIncludesSender", func(t *testing.T) {
		tg := start(t)
		alice, _ := Enter(t, tg.GateAddr, "alice", "r")
		bob, _ := Enter(t, tg.GateAddr, "bob", "r")
		other, _ := Enter(t, tg.GateAddr, "carol", "elsewhere")
		r := alice.Request("chat.chatHandler.send", map[string]any{"rid": "r", "content": "hi <all> & \"you\"", "from": "mallory", "target": "*"})
		if len(r) != 0 {
			t.Fatalf("send response = %v, want {}", r)
		}
		for _, c := range []*Client{alice, bob} {
			p := c.WaitPush("onChat")
			if p.Body["msg"] != "hi <all> & \"you\"" || p.Body["from"] != "alice" || p.Body["target"] != "*" {
				t.Fatalf("onChat = %v (the server must use the session's name, not the body's)", p.Body)
			}
		}
		// carol, in another room, gets nothing: a probe message in her room arrives first.
		other.Request("chat.chatHandler.send", map[string]any{"content": "probe", "target": "*"})
		if p := other.WaitPush("onChat"); p.Body["msg"] != "probe" {
			t.Fatalf("carol got %v from another room", p.Body)
		}
	})

	t.Run("PrivateMessage", func(t *testing.T) {
		tg := start(t)
		alice, _ := Enter(t, tg.GateAddr, "alice", "r")
		bob, _ := Enter(t, tg.GateAddr, "bob", "r")
		carol, _ := Enter(t, tg.GateAddr, "carol", "r")
		r := alice.Request("chat.chatHandler.send", map[string]any{"content": "psst", "target": "bob"})
		if len(r) != 0 {
			t.Fatalf("private send response = %v", r)
		}
		if p := bob.WaitPush("onChat"); p.Body["msg"] != "psst" || p.Body["target"] != "bob" || p.Body["from"] != "alice" {
			t.Fatalf("bob's onChat = %v", p.Body)
		}
		// Then a broadcast: alice and carol must see it as their first onChat.
		alice.Request("chat.chatHandler.send", map[string]any{"content": "public", "target": "*"})
		for _, c := range []*Client{alice, carol} {
			if p := c.WaitPush("onChat"); p.Body["msg"] != "public" {
				t.Fatalf("got %v before the public message: the private one leaked", p.Body)
			}
		}
		r = alice.Request("chat.chatHandler.send", map[string]any{"content": "x", "target": "nobody"})
		if r["code"] != float64(500) || r["error"] != true {
			t.Fatalf("send to unknown target = %v, want code 500", r)
		}
	})

	t.Run("LeaveOnClose", func(t *testing.T) {
		tg := start(t)
		alice, _ := Enter(t, tg.GateAddr, "alice", "r")
		bob, _ := Enter(t, tg.GateAddr, "bob", "r")
		alice.WaitPush("onAdd")
		bob.Close()
		if p := alice.WaitPush("onLeave"); p.Body["user"] != "bob" || p.Body["route"] != "onLeave" {
			t.Fatalf("onLeave = %v", p.Body)
		}
		_, users := Enter(t, tg.GateAddr, "bob", "r")
		if !slices.Equal(users, []string{"alice", "bob"}) {
			t.Fatalf("users after bob came back = %v (ghost member?)", users)
		}
	})

	t.Run("SwitchRoom", func(t *testing.T) {
		tg := start(t)
		alice, _ := Enter(t, tg.GateAddr, "alice", "a")
		stay, _ := Enter(t, tg.GateAddr, "stay", "a")
		there, _ := Enter(t, tg.GateAddr, "there", "b")
		stay.Pushes()
		alice.Pushes()
		r := alice.Request("connector.entryHandler.switchRoom", map[string]any{"rid": "b"})
		users, _ := r["users"].([]any)
		if len(users) != 2 || users[0] != "there" || users[1] != "alice" {
			t.Fatalf("switchRoom users = %v", r)
		}
		if p := stay.WaitPush("onLeave"); p.Body["user"] != "alice" {
			t.Fatalf("room a onLeave = %v", p.Body)
		}
		if p := there.WaitPush("onAdd"); p.Body["user"] != "alice" {
			t.Fatalf("room b onAdd = %v", p.Body)
		}
		// A message in a no longer reaches alice; one in b does, and it is her first onChat.
		stay.Request("chat.chatHandler.send", map[string]any{"content": "old room", "target": "*"})
		stay.WaitPush("onChat")
		there.Request("chat.chatHandler.send", map[string]any{"content": "new room", "target": "*"})
		if p := alice.WaitPush("onChat"); p.Body["msg"] != "new room" {
			t.Fatalf("alice's first onChat after switching = %v", p.Body)
		}
		for _, p := range alice.Pushes() { // the newcomer gets no onAdd of itself
			if p.Route == "onAdd" {
				t.Errorf("alice got %v after switching into b", p.Body)
			}
		}
		// Sending now goes to room b.
		alice.Request("chat.chatHandler.send", map[string]any{"content": "from alice", "target": "*"})
		if p := there.WaitPush("onChat"); p.Body["msg"] == "new room" {
			if p = there.WaitPush("onChat"); p.Body["msg"] != "from alice" {
				t.Fatalf("there got %v", p.Body)
			}
		}
		// Switching into a room where the name is taken fails and leaves alice in b.
		Enter(t, tg.GateAddr, "alice", "c")
		r = alice.Request("connector.entryHandler.switchRoom", map[string]any{"rid": "c"})
		if r["code"] != float64(500) {
			t.Fatalf("switch into a room with the same name = %v, want code 500", r)
		}
		r = alice.Request("chat.chatHandler.send", map[string]any{"content": "still in b", "target": "there"})
		if len(r) != 0 {
			t.Fatalf("alice lost her room after a failed switch: %v", r)
		}
	})

	t.Run("ErrorResponses", func(t *testing.T) {
		tg := start(t)
		c := Dial(t, connectorOf(t, tg, "eve"))
		cases := []struct {
			route string
			body  any
			code  float64
		}{
			{"chat.chatHandler.send", map[string]any{"content": "x", "target": "*"}, 403},
			{"connector.entryHandler.switchRoom", map[string]any{"rid": "x"}, 403},
			{"connector.entryHandler.enter", map[string]any{"username": "eve"}, 400},
			{"connector.entryHandler.enter", map[string]any{"username": "e*ve", "rid": "r"}, 400},
			{"connector.entryHandler.enter", "not an object", 400},
			{"no.such.route", map[string]any{}, 404},
		}
		for _, tc := range cases {
			r := c.Request(tc.route, tc.body)
			if r["code"] != tc.code || r["error"] != true || r["message"] == "" {
				t.Errorf("%s %v = %v, want code %v with a message", tc.route, tc.body, r, tc.code)
			}
		}
		c.Request("connector.entryHandler.enter", map[string]any{"username": "eve", "rid": "r"})
		r := c.Request("chat.chatHandler.send", map[string]any{"target": "*"})
		if r["code"] != float64(400) {
			t.Errorf("send without content = %v, want 400", r)
		}
		r = c.Request("connector.entryHandler.enter", map[string]any{"username": "eve", "rid": "r2"})
		if r["code"] != float64(400) {
			t.Errorf("second enter = %v, want 400", r)
		}
		// The session still works after all of that.
		c.Request("chat.chatHandler.send", map[string]any{"content": "ok", "target": "*"})
		if p := c.WaitPush("onChat"); p.Body["msg"] != "ok" {
			t.Fatalf("onChat after errors = %v", p.Body)
		}
	})

	t.Run("ConcurrentRoomsExactlyOnceInOrder", func(t *testing.T) {
		tg := start(t)
		const clients, rooms, perClient = 200, 10, 5
		cs := make([]*Client, clients)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, _ := Enter(t, tg.GateAddr, fmt.Sprintf("u%d", i), fmt.Sprintf("room%d", i%rooms))
				mu.Lock()
				cs[i] = c
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Everyone has joined: every member must see every onAdd of its room's later joiners;
		// only onChat is checked here. Every client sends perClient messages.
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perClient {
					c.Request("chat.chatHandler.send", map[string]any{"content": fmt.Sprintf("%d:%d", i, k), "target": "*"})
				}
			}()
		}
		wg.Wait()
		perRoom := clients / rooms
		order := make([][]string, rooms) // the first member's onChat order, per room
		for i, c := range cs {
			want := perRoom * perClient
			next := map[string]int{}
			for n := 0; n < want; n++ {
				p := c.WaitPush("onChat")
				msg, _ := p.Body["msg"].(string)
				// a room's pushes are totally ordered: every member sees them in the same order
				if r := i % rooms; i < rooms {
					order[r] = append(order[r], msg)
				} else if msg != order[r][n] {
					t.Fatalf("client %d: onChat %d of room%d is %q, its first member got %q", i, n, r, msg, order[r][n])
				}
				var from, k int
				if _, err := fmt.Sscanf(p.Body["msg"].(string), "%d:%d", &from, &k); err != nil {
					t.Fatalf("client %d: bad msg %v", i, p.Body)
				}
				if from%rooms != i%rooms {
					t.Fatalf("client %d in room%d got a message from u%d of another room", i, i%rooms, from)
				}
				key := fmt.Sprint(from)
				if k != next[key] {
					t.Fatalf("client %d: from u%d got seq %d, want %d (lost, duplicated or out of order)", i, from, k, next[key])
				}
				next[key]++
			}
			for _, p := range c.Pushes() {
				if p.Route == "onChat" {
					t.Fatalf("client %d: extra onChat %v (duplicate)", i, p.Body)
				}
			}
		}
	})
}

// connectorOf asks the gate which connector serves uid and returns its address.
func connectorOf(t *testing.T, tg Target, uid string) string {
	t.Helper()
	g := Dial(t, tg.GateAddr)
	defer g.Close()
	r := g.Request("gate.gateHandler.queryEntry", map[string]any{"uid": uid})
	return fmt.Sprintf("%v:%v", r["host"], r["port"])
}
