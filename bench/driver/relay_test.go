package driver_test

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// relay is a websocket relay between the driver and a real server. It
// delays every server-to-client frame by a known amount (and can stall them
// all once), and rewrites the connector port in queryEntry responses so that
// clients come back through a relay.
type relay struct {
	t        testing.TB
	addr     string
	target   string
	delay    atomic.Int64 // time.Duration
	rewrite  [2]string    // `"port":<real>` -> `"port":<relay>` in responses
	stallEnd atomic.Int64
	nframes  atomic.Int64
	srv      *http.Server
	wg       sync.WaitGroup

	// misroute, when set, sends every onChat push it matches to another
	// client connection of this relay instead of (or, copy, as well as) its own
	misroute func(body []byte) (match, copy bool)
	mu       sync.Mutex
	queues   []chan frame // every client connection's outbound queue
	rerouted atomic.Int64
}

func startRelay(t testing.TB, target string, delay time.Duration) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{t: t, addr: l.Addr().String(), target: target}
	r.delay.Store(int64(delay))
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve)}
	go r.srv.Serve(l)
	t.Cleanup(func() { r.srv.Close(); r.wg.Wait() })
	return r
}

// rewritePort makes queryEntry answers point at another relay.
func (r *relay) rewritePort(from, to string) {
	_, fp, _ := net.SplitHostPort(from)
	_, tp, _ := net.SplitHostPort(to)
	r.rewrite = [2]string{`"port":` + fp, `"port":` + tp}
}

// setDelay changes the delay of frames read from now on.
func (r *relay) setDelay(d time.Duration) { r.delay.Store(int64(d)) }

// frames counts server-to-client frames with onChat pushes so far.
func (r *relay) frames() int64 { return r.nframes.Load() }

// stall holds every server-to-client frame for d, once, from now.
func (r *relay) stall(d time.Duration) { r.stallEnd.Store(time.Now().Add(d).UnixNano()) }

var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

type frame struct {
	at   time.Time
	data []byte
}

func (r *relay) serve(w http.ResponseWriter, req *http.Request) {
	down, err := upgrader.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	up, _, err := websocket.DefaultDialer.Dial("ws://"+r.target+"/", nil)
	if err != nil {
		down.Close()
		return
	}
	r.wg.Add(3)
	queue := make(chan frame, 4096)
	r.mu.Lock()
	r.queues = append(r.queues, queue)
	r.mu.Unlock()
	go func() { // client -> server, undelayed
		defer r.wg.Done()
		defer up.Close()
		for {
			_, b, err := down.ReadMessage()
			if err != nil {
				return
			}
			if up.WriteMessage(websocket.BinaryMessage, b) != nil {
				return
			}
		}
	}()
	go func() { // server -> queue
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			r.queues = slices.DeleteFunc(r.queues, func(q chan frame) bool { return q == queue })
			close(queue)
			r.mu.Unlock()
		}()
		for {
			_, b, err := up.ReadMessage()
			if err != nil {
				return
			}
			if bytes.Contains(b, []byte("onChat")) {
				r.nframes.Add(1)
				if r.misroute != nil {
					b = r.reroute(queue, b)
					if len(b) == 0 {
						continue
					}
				}
			}
			queue <- frame{time.Now(), r.rewriteFrame(b)}
		}
	}()
	go func() { // queue -> client, each frame delay after it arrived
		defer r.wg.Done()
		defer down.Close()
		for f := range queue {
			time.Sleep(time.Until(f.at.Add(time.Duration(r.delay.Load())))) // the point: the relay's delay
			if end := time.Unix(0, r.stallEnd.Load()); f.at.Before(end) {
				time.Sleep(time.Until(end)) // the point: the relay's stall
			}
			if down.WriteMessage(websocket.BinaryMessage, f.data) != nil {
				return
			}
		}
	}()
}

// reroute sends the onChat pushes of frame b that misroute matches to the
// next client connection after own (copies, or moved) and returns what
// stays for own.
func (r *relay) reroute(own chan frame, b []byte) []byte {
	var keep, other []byte
	err := pomelo.ForEachPackage(b, 0, func(p pomelo.Package) error {
		pkg := pomelo.AppendPackage(nil, p.Type, p.Body)
		if p.Type == pomelo.Data {
			m, err := pomelo.ParseMessage(p.Body)
			if err != nil {
				return err
			}
			if m.Route == "onChat" {
				if match, copy := r.misroute(m.Body); match {
					other = append(other, pkg...)
					if !copy {
						return nil
					}
				}
			}
		}
		keep = append(keep, pkg...)
		return nil
	})
	if err != nil {
		r.t.Errorf("relay: %v", err)
		return b
	}
	if len(other) > 0 {
		r.mu.Lock()
		for i, q := range r.queues {
			if q == own && len(r.queues) > 1 {
				select {
				case r.queues[(i+1)%len(r.queues)] <- frame{time.Now(), other}:
					r.rerouted.Add(1)
				default:
				}
				break
			}
		}
		r.mu.Unlock()
	}
	return keep
}

func (r *relay) rewriteFrame(b []byte) []byte {
	if r.rewrite[0] == "" || !bytes.Contains(b, []byte(r.rewrite[0])) {
		return b
	}
	var out []byte
	err := pomelo.ForEachPackage(b, 0, func(p pomelo.Package) error {
		if p.Type != pomelo.Data {
			out = pomelo.AppendPackage(out, p.Type, p.Body)
			return nil
		}
		m, err := pomelo.ParseMessage(p.Body)
		if err != nil {
			return err
		}
		for _, end := range []string{",", "}"} {
			m.Body = bytes.ReplaceAll(m.Body, []byte(r.rewrite[0]+end), []byte(r.rewrite[1]+end))
		}
		out, err = pomelo.AppendData(out, &m)
		return err
	})
	if err != nil {
		r.t.Errorf("relay: %v", err)
		return b
	}
	return out
}
