package connector

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/internal/testwait"
)

// pendingBytes sees what a client sent before the server read it: the
// sweeper's proof that a session is busy, not silent.
func TestPendingBytes(t *testing.T) {
	got := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- c
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-got
	defer server.Close()
	if n := pendingBytes(server); n != 0 {
		t.Fatalf("pending before any write = %d", n)
	}
	if err := client.WriteMessage(websocket.BinaryMessage, []byte{3, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	testwait.True(t, 5*time.Second, "a written frame showing as pending bytes", func() bool { return pendingBytes(server) != 0 })
	if _, _, err := server.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if n := pendingBytes(server); n != 0 {
		t.Fatalf("pending after reading = %d", n)
	}
}

func TestSweepInterval(t *testing.T) {
	for _, tc := range []struct {
		hs, hb, want time.Duration
	}{
		{10 * time.Second, 6 * time.Second, time.Second},
		{10 * time.Second, 400 * time.Millisecond, 100 * time.Millisecond},
		{10 * time.Second, 0, time.Second},
		{10 * time.Millisecond, 0, 10 * time.Millisecond},
	} {
		o := Options{HandshakeTimeout: tc.hs, HeartbeatTimeout: tc.hb}
		if got := o.sweepInterval(); got != tc.want {
			t.Errorf("sweepInterval(%v, %v) = %v, want %v", tc.hs, tc.hb, got, tc.want)
		}
	}
}
