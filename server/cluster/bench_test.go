package cluster

import (
	"testing"

	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/servertest"
)

// BenchmarkSendEcho measures one client's send -> response and its own
// onChat push, alone in a room: the request/response path plus the push
// path, single process vs split in one process (the difference is the two
// NATS hops: request/reply to the shard and the push back).
func BenchmarkSendEcho(b *testing.B) {
	for _, tc := range []struct {
		name  string
		start func(b *testing.B) string
	}{
		{"topology=single", func(b *testing.B) string {
			return servertest.Start(b, server.Options{Connector: noRateLimit()}).GateAddr
		}},
		{"topology=split-1x1", func(b *testing.B) string {
			topo := Generate(GenerateOptions{GatePort: -1, ConnectorPort: -1, HTTPPort: -1})
			l, err := StartLocal(NodeOptions{Topology: &topo, Connector: noRateLimit()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Shutdown(b.Context()) })
			return l.Gate.ClientAddr
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, _ := servertest.Enter(b, tc.start(b), "alice", "r")
			body := map[string]any{"content": "hello", "target": "*"}
			b.ResetTimer()
			for b.Loop() {
				c.Request("chat.chatHandler.send", body)
				c.WaitPush("onChat")
			}
		})
	}
}

func noRateLimit() connector.Options { return connector.Options{RequestRate: -1} }
