package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/servertest"
)

// TestNeverReaderKicked: with the default limits (send buffer and queue
// cap), a member of a busy room whose client never reads (an ordinary
// socket, no shrunken receive buffer) is kicked within 5 s, and the other
// members get every message, in order.
func TestNeverReaderKicked(t *testing.T) {
	// No heartbeats: the heartbeat timeout would close the never-reader by
	// itself; this is about the outbound bounds.
	s := servertest.Start(t, server.Options{Connector: connector.Options{RequestRate: -1, Heartbeat: -1}})
	slow := rawEnter(t, websocket.DefaultDialer, s.ConnectorAddrs[0], "slow", "busy")
	var members []*servertest.Client
	for i := range 3 {
		c, _ := servertest.Enter(t, s.GateAddr, fmt.Sprint("m", i), "busy")
		members = append(members, c)
	}
	for i, c := range members { // the onAdds of those who came after
		for range len(members) - 1 - i {
			c.WaitPush("onAdd")
		}
	}
	big := strings.Repeat("z", 4000)
	start := time.Now()
	sent := 0
	for s.Metrics().SlowConsumers.Load() == 0 {
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the never-reader was not kicked within 5s (%d messages of %d bytes sent to the room)", sent, len(big))
		}
		msg := fmt.Sprintf("%d:%s", sent, big)
		if r := members[sent%len(members)].Request("chat.chatHandler.send", map[string]any{"content": msg, "target": "*"}); len(r) != 0 {
			t.Fatalf("send %d = %v", sent, r)
		}
		sent++
	}
	t.Logf("kicked after %v and %d messages of %d bytes", time.Since(start).Round(time.Millisecond), sent, len(big))
	_ = slow
	for i, c := range members {
		for k := 0; k < sent; k++ {
			p := c.WaitPush("onChat")
			if msg, _ := p.Body["msg"].(string); !strings.HasPrefix(msg, fmt.Sprintf("%d:", k)) {
				t.Fatalf("member %d: message %d is %.20q: a message was lost or reordered", i, k, msg)
			}
		}
		if p := c.WaitPush("onLeave"); p.Body["user"] != "slow" {
			t.Fatalf("member %d: onLeave = %v", i, p.Body)
		}
	}
}
