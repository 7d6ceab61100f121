package server_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// rawEnter dials a connector with d (nil: the default dialer), completes the
// pomelo handshake and sends an enter request for name in rid without
// waiting for its answer: the bare client of the benchmarks and of the
// tests that need a socket the test client would hide.
func rawEnter(tb testing.TB, d *websocket.Dialer, addr, name, rid string) *websocket.Conn {
	tb.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	conn, _, err := d.Dial("ws://"+addr+"/", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_ = conn.WriteMessage(websocket.BinaryMessage, pomelo.AppendPackage(nil, pomelo.Handshake, pomelo.DefaultHandshakeRequest()))
	if _, _, err := conn.ReadMessage(); err != nil {
		tb.Fatal(err)
	}
	_ = conn.WriteMessage(websocket.BinaryMessage, pomelo.HandshakeAckPackage)
	enter, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: 1, Route: "connector.entryHandler.enter",
		Body: fmt.Appendf(nil, `{"username":%q,"rid":%q}`, name, rid)})
	if err := conn.WriteMessage(websocket.BinaryMessage, enter); err != nil {
		tb.Fatal(err)
	}
	return conn
}

var onChatPrefix = []byte("\x06\x06onChat") // push flag, route length, route

// readChats reads conn until it closes and calls onFrame with the number of
// onChat pushes of every frame that carries some.
func readChats(conn *websocket.Conn, onFrame func(n int)) {
	for {
		_, frame, err := conn.ReadMessage()
		if err != nil {
			return
		}
		n := 0
		_ = pomelo.ForEachPackage(frame, 0, func(p pomelo.Package) error {
			if p.Type == pomelo.Data && bytes.HasPrefix(p.Body, onChatPrefix) {
				n++
			}
			return nil
		})
		if n > 0 {
			onFrame(n)
		}
	}
}
