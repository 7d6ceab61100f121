package pomelo

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// probe opens a websocket to addr, sends a stock client's handshake and
// wants code 200 back.
func probe(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	deadline, _ := ctx.Deadline()
	ws.SetReadDeadline(deadline)
	hs := pomelo.AppendPackage(nil, pomelo.Handshake, pomelo.DefaultHandshakeRequest())
	if err := ws.WriteMessage(websocket.BinaryMessage, hs); err != nil {
		return err
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		p, _, err := pomelo.ParsePackage(msg, 0)
		if err != nil {
			return err
		}
		if p.Type != pomelo.Handshake {
			continue
		}
		var r pomelo.HandshakeResponse
		if err := json.Unmarshal(p.Body, &r); err != nil {
			return fmt.Errorf("handshake answer %q: %w", p.Body, err)
		}
		if r.Code != pomelo.CodeOK {
			return fmt.Errorf("handshake answered code %d", r.Code)
		}
		return nil
	}
}
