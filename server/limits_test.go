package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/internal/wsout"
	"github.com/chatbench/chatbench/pomelo"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/chat"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/room"
	"github.com/chatbench/chatbench/server/servertest"
)

func closeCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("connection ended with %v, want a close frame", err)
	}
	return ce.Code, ce.Text
}

func TestHeartbeatTimeoutClosesSilentClientsOnly(t *testing.T) {
	s := servertest.Start(t, server.Options{Connector: connector.Options{Heartbeat: time.Second, HeartbeatTimeout: 400 * time.Millisecond}})
	silent, _ := servertest.Enter(t, s.GateAddr, "silent", "r")
	alive, _ := servertest.Enter(t, s.GateAddr, "alive", "r")
	if silent.Sys.Heartbeat != 1 {
		t.Fatalf("handshake heartbeat = %d, want 1", silent.Sys.Heartbeat)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the live client answers like a stock client, only faster
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_ = alive.WriteRaw(pomelo.HeartbeatPackage)
			}
		}
	}()
	start := time.Now()
	err, kicks := silent.WaitClosed()
	if code, text := closeCode(t, err); code != websocket.CloseNormalClosure || text != "heartbeat timeout" {
		t.Fatalf("silent client closed with %d %q, want 1000 \"heartbeat timeout\"", code, text)
	}
	if len(kicks) != 0 {
		t.Fatalf("heartbeat timeout sent a kick %v; pomelo closes without one", kicks)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("closed after %v, want about 400ms", el)
	}
	if p := alive.WaitPush("onLeave"); p.Body["user"] != "silent" {
		t.Fatalf("onLeave = %v", p.Body)
	}
	if alive.Heartbeats() < 2 {
		t.Fatalf("server echoed %d heartbeats to the live client", alive.Heartbeats())
	}
	if n := s.Metrics().HeartbeatTimeout.Load(); n != 1 {
		t.Fatalf("heartbeat timeout metric = %d, want 1", n)
	}
}

// Every protocol violation closes that connection with a reason and leaves
// everyone else's session working.
func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	s := servertest.Start(t, server.Options{Connector: connector.Options{MaxPackageBytes: 1024}})
	bystander, _ := servertest.Enter(t, s.GateAddr, "bystander", "r")
	cases := []struct {
		name  string
		frame []byte
		text  bool
		code  int
	}{
		{"unknown package type", []byte{9, 0, 0, 0}, false, websocket.CloseProtocolError},
		{"truncated package", []byte{4, 0, 0, 10, 1}, false, websocket.CloseProtocolError},
		{"package over the limit", pomelo.AppendPackage(nil, pomelo.Data, make([]byte, 1100)), false, websocket.CloseMessageTooBig},
		{"declared body over the limit", []byte{4, 0, 0x10, 0, 0}, false, websocket.CloseProtocolError},
		{"bad message flag", pomelo.AppendPackage(nil, pomelo.Data, []byte{0xff, 1}), false, websocket.CloseProtocolError},
		{"push from a client", pomelo.AppendPackage(nil, pomelo.Data, []byte{0x06, 1, 'x'}), false, websocket.CloseProtocolError},
		{"kick from a client", pomelo.AppendPackage(nil, pomelo.Kick, []byte(`{}`)), false, websocket.CloseProtocolError},
		{"text frame", []byte("hello"), true, websocket.CloseUnsupportedData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := servertest.Dial(t, s.ConnectorAddrs[0])
			var err error
			if tc.text {
				err = c.WriteText(tc.frame)
			} else {
				err = c.WriteRaw(tc.frame)
			}
			if err != nil {
				t.Fatal(err)
			}
			cerr, _ := c.WaitClosed()
			code, text := closeCode(t, cerr)
			// 1009 is gorilla's own close (it writes it before we can add a reason).
			if code != tc.code || (text == "" && code != websocket.CloseMessageTooBig) {
				t.Fatalf("closed with %d %q, want %d and a reason", code, text, tc.code)
			}
			t.Logf("closed with %d %q", code, text)
			// The bystander is not disturbed.
			if r := bystander.Request("chat.chatHandler.send", map[string]any{"content": tc.name, "target": "*"}); len(r) != 0 {
				t.Fatalf("bystander send = %v", r)
			}
			if p := bystander.WaitPush("onChat"); p.Body["msg"] != tc.name {
				t.Fatalf("bystander got %v", p.Body)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	s := servertest.Start(t, server.Options{})
	t.Run("bad JSON answers 500 and closes", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+s.ConnectorAddrs[0]+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.WriteMessage(websocket.BinaryMessage, pomelo.AppendPackage(nil, pomelo.Handshake, []byte(`{"user":{}}`)))
		_, frame, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		p, _, _ := pomelo.ParsePackage(frame, 0)
		if p.Type != pomelo.Handshake || string(p.Body) != `{"code":500}` {
			t.Fatalf("reply %v %s, want handshake {\"code\":500}", p.Type, p.Body)
		}
		if _, _, err := conn.ReadMessage(); err == nil {
			t.Fatal("connection stayed open after a bad handshake")
		}
	})
	t.Run("dictionary and routes", func(t *testing.T) {
		c := servertest.Dial(t, s.ConnectorAddrs[0])
		want := map[string]uint16{"chat.chatHandler.send": 1, "connector.entryHandler.enter": 2, "connector.entryHandler.switchRoom": 3, "gate.gateHandler.queryEntry": 4}
		for r, code := range want {
			if got := c.Sys.RouteToCode[r]; got != code {
				t.Errorf("routeToCode[%s] = %d, want %d", r, got, code)
			}
			if got := c.Sys.Dict[r]; got != code {
				t.Errorf("dict[%s] = %d, want %d", r, got, code)
			}
		}
		if !c.Sys.UseDict || c.Sys.DictVersion == "" || c.Sys.CodeToRoute["2"] != "connector.entryHandler.enter" {
			t.Fatalf("sys = %+v", c.Sys)
		}
	})
	t.Run("string routes, id 128, several packages in one frame", func(t *testing.T) {
		c := servertest.Dial(t, s.ConnectorAddrs[0])
		var frame []byte
		for id, body := range map[uint32]string{128: `{"username":"s","rid":"r"}`, 129: `{"content":"x","target":"*"}`} {
			route := "connector.entryHandler.enter"
			if id == 129 {
				route = "chat.chatHandler.send"
			}
			frame, _ = pomelo.AppendData(frame, &pomelo.Message{Type: pomelo.Request, ID: id, Route: route, Body: []byte(body)})
		}
		// map order is random: make sure enter comes first
		var ordered []byte
		ordered, _ = pomelo.AppendData(ordered, &pomelo.Message{Type: pomelo.Request, ID: 128, Route: "connector.entryHandler.enter", Body: []byte(`{"username":"s","rid":"r"}`)})
		ordered, _ = pomelo.AppendData(ordered, &pomelo.Message{Type: pomelo.Request, ID: 129, Route: "chat.chatHandler.send", Body: []byte(`{"content":"x","target":"*"}`)})
		_ = frame
		if err := c.WriteRaw(ordered); err != nil {
			t.Fatal(err)
		}
		if r := c.Wait(128); r["users"] == nil {
			t.Fatalf("response to id 128 = %v", r)
		}
		if r := c.Wait(129); len(r) != 0 {
			t.Fatalf("response to id 129 = %v", r)
		}
	})
	t.Run("data before the handshake is ignored", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+s.ConnectorAddrs[0]+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		early, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: 1, Route: "x", Body: []byte(`{}`)})
		_ = conn.WriteMessage(websocket.BinaryMessage, early)
		_ = conn.WriteMessage(websocket.BinaryMessage, pomelo.AppendPackage(nil, pomelo.Handshake, pomelo.DefaultHandshakeRequest()))
		_, frame, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if p, _, _ := pomelo.ParsePackage(frame, 0); p.Type != pomelo.Handshake {
			t.Fatalf("first reply is %v, want the handshake (the early request must be ignored)", p.Type)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Run("content too large", func(t *testing.T) {
		s := servertest.Start(t, server.Options{Chat: chatLimits(16)})
		c, _ := servertest.Enter(t, s.GateAddr, "a", "r")
		r := c.Request("chat.chatHandler.send", map[string]any{"content": strings.Repeat("x", 17), "target": "*"})
		if r["code"] != float64(413) {
			t.Fatalf("17-byte content with a 16-byte limit = %v, want 413", r)
		}
		if r := c.Request("chat.chatHandler.send", map[string]any{"content": strings.Repeat("x", 16), "target": "*"}); len(r) != 0 {
			t.Fatalf("16-byte content = %v", r)
		}
	})
	t.Run("max rooms and members", func(t *testing.T) {
		s := servertest.Start(t, server.Options{Rooms: room.Limits{MaxRooms: 1, MaxMembers: 2}})
		servertest.Enter(t, s.GateAddr, "a", "r1")
		servertest.Enter(t, s.GateAddr, "b", "r1")
		c := servertest.Dial(t, s.ConnectorAddrs[0])
		if r := c.Request("connector.entryHandler.enter", map[string]any{"username": "c", "rid": "r1"}); r["code"] != float64(503) {
			t.Fatalf("third member = %v, want 503", r)
		}
		if r := c.Request("connector.entryHandler.enter", map[string]any{"username": "c", "rid": "r2"}); r["code"] != float64(503) {
			t.Fatalf("second room = %v, want 503", r)
		}
	})
	t.Run("request rate", func(t *testing.T) {
		s := servertest.Start(t, server.Options{Connector: connector.Options{RequestRate: 1, RequestBurst: 3}})
		c := servertest.Dial(t, s.ConnectorAddrs[0])
		var codes []any
		for range 5 {
			r := c.Request("no.such.route", map[string]any{})
			codes = append(codes, r["code"])
		}
		if codes[0] != float64(404) || codes[4] != float64(429) {
			t.Fatalf("codes = %v, want 404s then 429", codes)
		}
	})
	// 16 members: a broadcast that large goes through wsout.Fanout on an idle machine
	for _, others := range []int{0, 14} {
		t.Run(fmt.Sprintf("slow consumer is kicked, the room of %d goes on", others+2), func(t *testing.T) { slowConsumer(t, others) })
	}
}

// slowConsumer: a member that never reads is kicked once its queue passes
// the limit; the others get its onLeave and the room goes on.
func slowConsumer(t *testing.T, others int) {
	// No heartbeats: the slow client never answers one, and a heartbeat
	// timeout (6s by default) would close it before its queue overflows on a
	// busy machine.
	// A WriteTimeout far longer than the wait for the release below: the
	// kick is the queue's, and the release is the CloseTimeout's.
	s := servertest.Start(t, server.Options{Connector: connector.Options{RequestRate: -1, Heartbeat: -1,
		Options: wsout.Options{MaxQueueBytes: 64 << 10, WriteTimeout: 30 * time.Second}}})
	slow := dialNoRead(t, s.ConnectorAddrs[0], "slow", "r")
	fast, _ := servertest.Enter(t, s.GateAddr, "fast", "r")
	var rest []*servertest.Client
	for i := range others {
		c, _ := servertest.Enter(t, s.GateAddr, fmt.Sprint("m", i), "r")
		rest = append(rest, c)
	}
	big := strings.Repeat("y", 4000)
	// The slow client never reads: its socket buffers fill, then its queue
	// passes 64 KiB. The kernel takes 2-3 MB first (loopback's large segments
	// grow the send buffer): 450-700 sends, seconds under -race on a busy machine.
	deadline := time.Now().Add(30 * time.Second)
	for s.Metrics().SlowConsumers.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow consumer never kicked")
		}
		fast.Request("chat.chatHandler.send", map[string]any{"content": big, "target": "*"})
	}
	// The server lets go of the kicked connection after the goodbye's
	// CloseTimeout (1s), not its WriteTimeout (30s here), though its socket
	// stays full.
	testwait.Until(t, 5*time.Second, func() error {
		if n := s.Metrics().Connections.Load(); n != int64(others+1) {
			return fmt.Errorf("%d connections after the kick, want %d: the kicked one is still held", n, others+1)
		}
		return nil
	})
	if p := fast.WaitPush("onLeave"); p.Body["user"] != "slow" {
		t.Fatalf("onLeave = %v", p.Body)
	}
	_ = slow
	if r := fast.Request("chat.chatHandler.send", map[string]any{"content": "still here", "target": "*"}); len(r) != 0 {
		t.Fatalf("send after kick = %v", r)
	}
	for _, c := range rest {
		if p := c.WaitPush("onLeave"); p.Body["user"] != "slow" {
			t.Fatalf("%v: onLeave = %v", c, p.Body)
		}
	}
}

func TestHTTPEndpoints(t *testing.T) {
	s := servertest.Start(t, server.Options{})
	servertest.Enter(t, s.GateAddr, "a", "r")
	g := servertest.Dial(t, s.GateAddr)
	if r := g.Request(chatproto.RouteQueryEntry, map[string]any{}); r["code"] != float64(chatproto.CodeFailed) {
		t.Fatalf("queryEntry without uid = %v", r)
	}
	g.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + s.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(b)
	}
	var health struct {
		Status      string `json:"status"`
		Connections int    `json:"connections"`
		Rooms       int    `json:"rooms"`
	}
	if err := json.Unmarshal([]byte(get("/healthz")), &health); err != nil || health.Status != "ok" || health.Rooms != 1 {
		t.Fatalf("healthz = %+v %v", health, err)
	}
	m := get("/metrics")
	for _, want := range []string{"chatbench_connections", `chatbench_rooms{server="chatbench"} 1`, "chatbench_pushes_delivered_total", "chatbench_request_duration_seconds_bucket", `route="connector.entryHandler.enter"`,
		`chatbench_request_errors_total{code="500",server="chatbench"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if cfg := get("/config.json"); !strings.Contains(cfg, `"gate"`) {
		t.Fatalf("config.json = %s", cfg)
	}
}

func chatLimits(content int) chat.Limits { return chat.Limits{MaxContentBytes: content} }

// dialNoRead enters rid as name on a socket with a tiny receive buffer and
// never reads from it again.
func dialNoRead(t *testing.T, addr, name, rid string) *websocket.Conn {
	t.Helper()
	d := &websocket.Dialer{NetDial: func(network, a string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}
		return nd.Dial(network, a)
	}}
	return rawEnter(t, d, addr, name, rid)
}
