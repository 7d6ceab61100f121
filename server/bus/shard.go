package bus

import (
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/server/chat"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/metrics"
	"github.com/chatbench/chatbench/server/room"
)

// ShardOptions configure a Shard. Zero values mean the documented defaults.
type ShardOptions struct {
	ID       string      // shard id; its request subject is Subjects.Shard(ID)
	Subjects Subjects    // subject prefix shared by the cluster
	Rooms    room.Limits // per shard
	// Workers handle requests; a room always goes to the same worker, so its
	// requests run in arrival order. Default 4.
	Workers int
	// ConnTimeout bounds how long the members of a dead connector stay: a
	// connector silent (no heartbeat, no request) for ConnTimeout/2 is probed
	// and evicted if NATS has no responder for it; one silent for
	// 4 x ConnTimeout is evicted anyway. Default 2s.
	ConnTimeout time.Duration
	// Heartbeat is how often the shard announces its epoch, so connectors
	// notice a restart and kick the members of the rooms it lost. Default 1s.
	Heartbeat time.Duration
	Metrics   *metrics.Set // nil: none
	Logger    *slog.Logger // nil: discard
}

func (o *ShardOptions) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.ConnTimeout <= 0 {
		o.ConnTimeout = 2 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Shard serves the rooms of one chat shard to remote connectors: requests
// by NATS request/reply, pushes published once per connector per message.
// Its room endpoints are connector ids.
type Shard struct {
	opts    ShardOptions
	epoch   uint64 // this incarnation, sent with every join
	nc      *nats.Conn
	rooms   *chat.Rooms[string]
	log     *slog.Logger
	subs    []*nats.Subscription
	workers []chan *nats.Msg
	stop    chan struct{}
	wg      sync.WaitGroup

	mu    sync.RWMutex
	conns map[string]*connState

	outs sync.Map // connector id -> *outStream
	bufs sync.Pool

	// Counters for metrics and tests.
	Published   atomic.Uint64 // delivery messages published
	PublishErrs atomic.Uint64
	Evicted     atomic.Uint64 // connectors declared dead or restarted
	// Dropped counts pushes that could not be published (the bus was
	// down): one per connector per push, as Published counts them; each
	// stands for the members of the room behind that connector.
	Dropped atomic.Uint64
	// Skipped counts requests not handled because the bus went down after
	// they arrived (their reply could not be sent: the connector answers
	// its client 504).
	Skipped atomic.Uint64
	Resyncs atomic.Uint64 // connectors asked to send their membership again
	Synced  atomic.Uint64 // members restored from a connector's membership
}

// outStream is the numbered stream of deliveries to one connector: seq
// and the publish are under mu, so the connector sees 1, 2, 3... in order
// and a gap means NATS lost messages.
type outStream struct {
	subject string
	mu      sync.Mutex
	seq     uint64
}

// connState is what a shard knows of a connector's liveness.
type connState struct {
	mu    sync.Mutex    // serialises incarnation changes
	epoch atomic.Uint64 // incarnation
	last  atomic.Int64  // unix nanos of the last heartbeat or request
}

// StartShard subscribes the shard on nc and starts its workers. The caller
// owns nc; Close the shard before closing it.
func StartShard(nc *nats.Conn, opts ShardOptions) (*Shard, error) {
	opts.setDefaults()
	if opts.ID == "" {
		return nil, errors.New("bus: shard needs an id")
	}
	s := &Shard{opts: opts, nc: nc, log: opts.Logger, stop: make(chan struct{}), conns: map[string]*connState{}, epoch: uint64(time.Now().UnixNano())}
	s.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	s.rooms = chat.NewRooms[string](opts.Rooms, s.deliver)
	s.rooms.Left = func(conn, rid, name string) {
		s.publish(conn, func(b []byte) []byte { return AppendMember(b, OpLeft, rid, name, 0, s.epoch) })
	}
	for range opts.Workers {
		ch := make(chan *nats.Msg, 1024)
		s.workers = append(s.workers, ch)
		s.wg.Add(1)
		go s.work(ch)
	}
	sub, err := nc.Subscribe(opts.Subjects.Shard(opts.ID), s.dispatch)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("bus: subscribe shard %s: %w", opts.ID, err)
	}
	s.subs = append(s.subs, sub)
	hb, err := nc.Subscribe(opts.Subjects.Liveness(), s.liveness)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("bus: subscribe liveness: %w", err)
	}
	s.subs = append(s.subs, hb)
	for _, sub := range s.subs {
		_ = sub.SetPendingLimits(-1, 256<<20)
	}
	if err := nc.Flush(); err != nil { // the subscriptions are registered when this returns
		s.Close()
		return nil, fmt.Errorf("bus: flush: %w", err)
	}
	s.wg.Add(1)
	go s.watch()
	return s, nil
}

// Rooms returns the shard's rooms (for metrics and tests).
func (s *Shard) Rooms() *chat.Rooms[string] { return s.rooms }

// Close unsubscribes and stops the workers. Pending requests are dropped
// (their connectors time out); members stay until the process ends.
func (s *Shard) Close() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// dispatch runs on the subscription's goroutine, in arrival order: it hands
// each request to its room's worker, so per room (and per connector and
// room) the order is the order sent.
func (s *Shard) dispatch(m *nats.Msg) {
	rid, err := RequestRID(m.Data)
	if err != nil {
		s.respond(m, &Reply{Code: chatproto.CodeBadRequest, Message: err.Error()})
		return
	}
	w := s.workers[crc32.ChecksumIEEE(rid)%uint32(len(s.workers))]
	select {
	case w <- m:
	case <-s.stop:
	}
}

func (s *Shard) work(ch chan *nats.Msg) {
	defer s.wg.Done()
	for {
		select {
		case m := <-ch:
			s.handle(m)
		case <-s.stop:
			return
		}
	}
}

var routeOf = map[Op]string{OpEnter: "bus.enter", OpLeave: "bus.leave", OpSend: "bus.send"}

func (s *Shard) handle(m *nats.Msg) {
	start := time.Now()
	req, err := DecodeRequest(m.Data)
	if err != nil {
		s.respond(m, &Reply{Code: chatproto.CodeBadRequest, Message: err.Error()})
		return
	}
	if !s.nc.IsConnected() {
		// The bus went down after this request arrived: its reply and
		// pushes cannot go out, so it is not applied (the connector
		// answers its client 504; a member it would have added or removed
		// is set right by the connector's sync after the outage).
		s.Skipped.Add(1)
		return
	}
	if !s.seen(req.Conn, req.Epoch, start) {
		s.respond(m, &Reply{Code: chatproto.CodeUnavailable, Message: fmt.Sprintf("stale request from an earlier incarnation of %s", req.Conn)})
		return
	}
	var rep Reply
	switch req.Op {
	case OpEnter:
		rep.Users, err = s.rooms.EnterWith(req.RID, req.Name, req.Conn, func() {
			s.publish(req.Conn, func(b []byte) []byte { return AppendMember(b, OpJoined, req.RID, req.Name, req.SID, s.epoch) })
		})
	case OpLeave:
		s.rooms.Leave(req.RID, req.Name, req.Conn)
	case OpSync:
		rep.Users = s.sync(&req)
	case OpSend:
		// The sender must be in the room behind this connector: a session
		// that outlived its room (a shard restart, an evicted connector)
		// must not talk into a new room of the same id.
		member := false
		_ = s.rooms.Registry.SendTo(req.RID, req.Name, func(e string) { member = e == req.Conn })
		if !member {
			err = connector.Errorf(chatproto.CodeNotInRoom, "%q is not in room %q (was chat shard %s restarted?)", req.Name, req.RID, s.opts.ID)
			break
		}
		err = s.rooms.Send(req.RID, req.Name, req.Content, req.Target)
	}
	if err != nil {
		var ce *connector.Error
		if errors.As(err, &ce) {
			rep.Code, rep.Message = ce.Code, ce.Message
		} else {
			rep.Code, rep.Message = chatproto.CodeFailed, err.Error()
		}
	}
	s.respond(m, &rep)
	s.opts.Metrics.ObserveRequest(routeOf[req.Op], time.Since(start), rep.Code)
}

func (s *Shard) respond(m *nats.Msg, r *Reply) {
	if m.Reply == "" {
		return
	}
	bp := s.bufs.Get().(*[]byte)
	*bp = AppendReply((*bp)[:0], r)
	if err := m.Respond(*bp); err != nil {
		s.log.Warn("reply", "err", err)
	}
	s.bufs.Put(bp)
}

// sync restores the members of req.RID that connector req.Conn holds and
// this shard lost (it evicted the connector during a bus outage): they
// enter again, so the others get onAdd. It returns the names it could not
// restore (taken by a member of another connector meanwhile, or the room is
// full): the connector kicks those sessions.
func (s *Shard) sync(req *Request) []string {
	var lost []string
	for _, m := range req.Members {
		var owner string
		if s.rooms.Registry.SendTo(req.RID, m.Name, func(e string) { owner = e }) == nil {
			if owner != req.Conn {
				lost = append(lost, m.Name)
			}
			continue // still here
		}
		if _, err := s.rooms.EnterWith(req.RID, m.Name, req.Conn, nil); err != nil {
			lost = append(lost, m.Name)
			continue
		}
		s.Synced.Add(1)
	}
	if len(req.Members) > 0 {
		s.log.Info("connector membership synced", "conn", req.Conn, "rid", req.RID, "members", len(req.Members), "lost", len(lost))
	}
	return lost
}

// deliver is the rooms' Deliver: one message per connector per push.
func (s *Shard) deliver(conn, rid, target string, pkt []byte) {
	if !s.publish(conn, func(b []byte) []byte { return AppendPush(b, rid, target, pkt) }) {
		s.Dropped.Add(1)
	}
}

// publish encodes into a pooled buffer (nats copies it) and publishes to the
// connector's subject. It runs under a room's lock: it must not block, and
// nats.Conn.Publish only appends to the connection's buffer.
func (s *Shard) publish(conn string, enc func([]byte) []byte) bool {
	v, ok := s.outs.Load(conn)
	if !ok {
		v, _ = s.outs.LoadOrStore(conn, &outStream{subject: s.opts.Subjects.Conn(conn)})
	}
	out := v.(*outStream)
	bp := s.bufs.Get().(*[]byte)
	out.mu.Lock()
	*bp = enc(AppendSeq((*bp)[:0], out.seq+1))
	err := s.nc.Publish(out.subject, *bp)
	if err == nil {
		out.seq++ // a failed publish is counted here, not left as a gap
	}
	out.mu.Unlock()
	if err != nil {
		s.PublishErrs.Add(1)
		s.log.Debug("publish", "conn", conn, "err", err)
	} else {
		s.Published.Add(1)
	}
	if cap(*bp) <= 64<<10 {
		s.bufs.Put(bp)
	}
	return err == nil
}

// seen records that connector conn (incarnation epoch) is alive. Epochs
// only grow: a newer one (a restart, or a NATS reconnect) first removes the
// older one's members; an older one is stale (a request published before
// the connector reconnected) and seen reports false.
func (s *Shard) seen(conn string, epoch uint64, now time.Time) bool {
	s.mu.RLock()
	cs := s.conns[conn]
	s.mu.RUnlock()
	if cs == nil {
		s.mu.Lock()
		fresh := false
		if cs = s.conns[conn]; cs == nil {
			cs = &connState{}
			cs.epoch.Store(epoch)
			s.conns[conn] = cs
			fresh = true
		}
		s.mu.Unlock()
		if fresh {
			// A connector this shard does not know: new, or evicted
			// meanwhile (a bus outage). Ask it for its members of this
			// shard's rooms, so any it still holds are restored here.
			s.Resyncs.Add(1)
			s.publish(conn, func(b []byte) []byte { return AppendMember(b, OpResync, "", s.opts.ID, 0, s.epoch) })
		}
	}
	if cur := cs.epoch.Load(); cur != epoch {
		cs.mu.Lock()
		cur = cs.epoch.Load()
		if epoch > cur {
			n := s.rooms.LeaveEndpoint(conn)
			s.Evicted.Add(1)
			s.log.Info("connector restarted or reconnected: its old members left", "conn", conn, "members", n)
			cs.epoch.Store(epoch)
		}
		cs.mu.Unlock()
		if epoch < cur {
			return false
		}
	}
	cs.last.Store(now.UnixNano())
	return true
}

func (s *Shard) liveness(m *nats.Msg) {
	l, err := DecodeLiveness(m.Data)
	if err != nil {
		s.log.Warn("liveness", "err", err)
		return
	}
	if l.Op == OpBye {
		s.evict(l.Conn, "connector stopped")
		return
	}
	s.seen(l.Conn, l.Epoch, time.Now())
}

// evict forgets connector conn and makes its members leave their rooms.
func (s *Shard) evict(conn, why string) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	n := s.rooms.LeaveEndpoint(conn)
	s.Evicted.Add(1)
	s.log.Info(why+": its members left", "conn", conn, "members", n)
}

// watch probes connectors silent for over ConnTimeout/2 and evicts them
// when NATS says nobody serves their probe subject (the process is gone: its
// subscriptions died with its connection), or when they stay silent for
// 4 x ConnTimeout (hung). A live connector that is merely starved answers
// the probe late or not at all and keeps its members.
func (s *Shard) watch() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ConnTimeout / 8)
	defer t.Stop()
	probing := map[string]bool{}
	results := make(chan probeResult)
	s.beat()
	lastBeat := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case r := <-results:
			delete(probing, r.conn)
			if r.gone && !s.heardSince(r.conn, r.start) {
				s.evict(r.conn, "connector gone (no responder to its probe)")
			}
		case now := <-t.C:
			if now.Sub(lastBeat) >= s.opts.Heartbeat {
				s.beat()
				lastBeat = now
			}
			var suspect, dead []string
			s.mu.RLock()
			for id, cs := range s.conns {
				switch silent := now.Sub(time.Unix(0, cs.last.Load())); {
				case silent > 4*s.opts.ConnTimeout:
					dead = append(dead, id)
				case silent > s.opts.ConnTimeout/2 && !probing[id]:
					suspect = append(suspect, id)
				}
			}
			s.mu.RUnlock()
			for _, id := range dead {
				s.evict(id, fmt.Sprintf("connector silent for over %v", 4*s.opts.ConnTimeout))
			}
			for _, id := range suspect {
				probing[id] = true
				s.wg.Add(1)
				go s.probe(id, results)
			}
		}
	}
}

// beat announces the shard's epoch.
func (s *Shard) beat() {
	b := AppendLiveness(nil, &Liveness{Op: OpHeartbeat, Conn: s.opts.ID, Epoch: s.epoch})
	if err := s.nc.Publish(s.opts.Subjects.ShardLiveness(), b); err != nil {
		s.log.Warn("shard heartbeat", "err", err)
	}
}

type probeResult struct {
	conn  string
	gone  bool
	start time.Time
}

// heardSince reports whether connector conn was heard from after t (a probe
// that found nobody may have raced with its reconnect).
func (s *Shard) heardSince(conn string, t time.Time) bool {
	s.mu.RLock()
	cs := s.conns[conn]
	s.mu.RUnlock()
	return cs != nil && cs.last.Load() > t.UnixNano()
}

// Reconnected runs when the shard's NATS connection is back after an
// outage: every connector gets a fresh ConnTimeout to reconnect too before
// it is probed, so a connector slower to reconnect than this shard is not
// taken for dead.
func (s *Shard) Reconnected() {
	now := time.Now().UnixNano()
	s.mu.RLock()
	for _, cs := range s.conns {
		cs.last.Store(now)
	}
	s.mu.RUnlock()
	s.beat()
}

func (s *Shard) probe(conn string, results chan<- probeResult) {
	defer s.wg.Done()
	start := time.Now()
	m, err := s.nc.Request(s.opts.Subjects.Ping(conn), nil, s.opts.ConnTimeout/2)
	gone := errors.Is(err, nats.ErrNoResponders)
	if err == nil {
		if l, err := DecodeLiveness(m.Data); err == nil {
			s.seen(l.Conn, l.Epoch, time.Now())
		}
	}
	select {
	case results <- probeResult{conn, gone, start}:
	case <-s.stop:
	}
}
