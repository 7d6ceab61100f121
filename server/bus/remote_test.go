package bus

import (
	"errors"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/server/connector"
)

// hungShard is a shard subscription that records requests and never answers.
func hungShard(t *testing.T, nc *nats.Conn, id string) chan *nats.Msg {
	t.Helper()
	got := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe(Subjects{}.Shard(id), got); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestEnterTimeoutAnswersAtOnce: an enter into a hung shard answers 504 when
// the request timeout fires (not after a second timeout for the rollback),
// and the rollback leave reaches the shard after the enter.
func TestEnterTimeoutAnswersAtOnce(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	dial := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	got := hungShard(t, dial(), "chat-1")
	const timeout = 300 * time.Millisecond
	r, err := StartRemote(dial(), RemoteOptions{ConnID: "connector-1", Shards: []string{"chat-1"}, Timeout: timeout, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)

	start := time.Now()
	_, err = r.Enter(&connector.Session{ID: 7}, "r1", "alice")
	took := time.Since(start)
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Code != chatproto.CodeUnavailable {
		t.Fatalf("Enter into a hung shard = %v, want a 504", err)
	}
	if took > timeout+timeout/2 {
		t.Errorf("Enter answered after %v, want about the request timeout %v (no wait for the rollback)", took, timeout)
	}
	for i, want := range []Op{OpEnter, OpLeave} {
		select {
		case m := <-got:
			req, err := DecodeRequest(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if req.Op != want || req.RID != "r1" || req.Name != "alice" || req.SID != 7 {
				t.Fatalf("request %d at the shard = %+v, want op %c for alice in r1", i, req, want)
			}
			if want == OpLeave && m.Reply != "" {
				t.Errorf("rollback leave has reply subject %q: nobody waits for it", m.Reply)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d (%c) never reached the shard", i, want)
		}
	}
}
