package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/room"
)

// RemoteOptions configure a Remote. Zero values mean the documented defaults.
type RemoteOptions struct {
	ConnID   string   // this connector's id; its delivery subject is Subjects.Conn(ConnID)
	Shards   []string // chat shard ids; rooms dispatch over them sorted by id
	Subjects Subjects
	// Timeout bounds a request to a shard; a dead shard usually fails at once
	// (NATS "no responders"); this bounds a request in flight when its shard
	// dies, so it stays under the 2 s promised for a dead shard. Default 1.5s.
	Timeout time.Duration
	// Heartbeat is the liveness interval (shards probe a connector silent
	// for half their ConnTimeout). Default 500ms.
	Heartbeat time.Duration
	Logger    *slog.Logger // nil: discard
}

func (o *RemoteOptions) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = 1500 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Remote is a connector's chat.Backend over NATS. Requests go to the shard
// that owns the room; the shard's join/leave/push messages for this
// connector arrive on one subscription, handled one at a time in order, and
// keep a local registry of which session is in which room, so a push is
// enqueued (the same bytes) to each local member.
type Remote struct {
	opts     RemoteOptions
	nc       *nats.Conn
	log      *slog.Logger
	epoch    atomic.Uint64 // incarnation: renewed on a NATS reconnect
	shards   []string      // sorted
	subjects []string      // request subject per shard
	local    *room.Registry[*connector.Session]
	sub      *nats.Subscription
	ping     *nats.Subscription
	shb      *nats.Subscription
	stop     chan struct{}
	wg       sync.WaitGroup
	bufs     sync.Pool

	mu       sync.Mutex // guards sessions and shardEpochs, and orders joins against Forget
	sessions map[uint64]*connector.Session
	// shardEpochs is each shard's incarnation as its join messages tell it: a
	// new one means the shard restarted and its rooms (as this connector
	// knew them) are gone.
	shardEpochs map[string]uint64

	// Counters for metrics and tests.
	Deliveries  atomic.Uint64 // delivery messages handled
	Unavailable atomic.Uint64 // requests failed with 504
	Restarts    atomic.Uint64 // shard restarts seen (their members kicked)
}

// StartRemote subscribes to this connector's deliveries on nc and starts the
// heartbeat. The caller owns nc; Close the Remote before closing it.
func StartRemote(nc *nats.Conn, opts RemoteOptions) (*Remote, error) {
	opts.setDefaults()
	if opts.ConnID == "" || len(opts.Shards) == 0 {
		return nil, errors.New("bus: a remote backend needs a connector id and at least one shard")
	}
	r := &Remote{
		opts: opts, nc: nc, log: opts.Logger,
		shards: append([]string(nil), opts.Shards...), local: room.NewRegistry[*connector.Session](room.Limits{}),
		stop: make(chan struct{}), sessions: map[uint64]*connector.Session{}, shardEpochs: map[string]uint64{},
	}
	r.epoch.Store(uint64(time.Now().UnixNano()))
	r.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	sort.Strings(r.shards)
	for _, id := range r.shards {
		r.subjects = append(r.subjects, opts.Subjects.Shard(id))
	}
	sub, err := nc.Subscribe(opts.Subjects.Conn(opts.ConnID), r.deliver)
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", opts.Subjects.Conn(opts.ConnID), err)
	}
	// Losing a delivery would lose a push or a membership change: never
	// drop on the client side (the server still protects itself).
	_ = sub.SetPendingLimits(-1, -1)
	r.sub = sub
	ping, err := nc.Subscribe(opts.Subjects.Ping(opts.ConnID), func(m *nats.Msg) {
		_ = m.Respond(AppendLiveness(nil, &Liveness{Op: OpHeartbeat, Conn: r.opts.ConnID, Epoch: r.epoch.Load()}))
	})
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: subscribe %s: %w", opts.Subjects.Ping(opts.ConnID), err)
	}
	r.ping = ping
	shb, err := nc.Subscribe(opts.Subjects.ShardLiveness(), r.shardBeat)
	if err != nil {
		_ = sub.Unsubscribe()
		_ = ping.Unsubscribe()
		return nil, fmt.Errorf("bus: subscribe %s: %w", opts.Subjects.ShardLiveness(), err)
	}
	r.shb = shb
	r.heartbeat(OpHeartbeat)
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: flush: %w", err)
	}
	r.wg.Add(1)
	go r.beat()
	return r, nil
}

// Local returns the connector's view of its members (for tests and metrics).
func (r *Remote) Local() *room.Registry[*connector.Session] { return r.local }

// Epoch is this connector's incarnation.
func (r *Remote) Epoch() uint64 { return r.epoch.Load() }

// ShardFor returns the id of the shard that owns room rid.
func (r *Remote) ShardFor(rid string) string { return r.shards[room.Dispatch(rid, len(r.shards))] }

// Close stops the heartbeat, tells the shards this connector is gone (they
// remove any member left) and unsubscribes.
func (r *Remote) Close() {
	select {
	case <-r.stop:
		return
	default:
		close(r.stop)
	}
	r.wg.Wait()
	_ = r.ping.Unsubscribe()
	_ = r.shb.Unsubscribe()
	r.heartbeat(OpBye)
	_ = r.nc.Flush()
	_ = r.sub.Unsubscribe()
}

func (r *Remote) beat() {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.heartbeat(OpHeartbeat)
		}
	}
}

func (r *Remote) heartbeat(op Op) {
	b := AppendLiveness(nil, &Liveness{Op: op, Conn: r.opts.ConnID, Epoch: r.epoch.Load()})
	if err := r.nc.Publish(r.opts.Subjects.Liveness(), b); err != nil {
		r.log.Warn("heartbeat", "err", err)
	}
}

// Enter implements chat.Backend.
func (r *Remote) Enter(s *connector.Session, rid, name string) ([]string, error) {
	r.mu.Lock()
	r.sessions[s.ID] = s // before the request: the shard's join message names it
	r.mu.Unlock()
	rep, err := r.request(&Request{Op: OpEnter, SID: s.ID, RID: rid, Name: name})
	if err != nil {
		if r.timedOut(err) {
			// The shard may have applied the enter after all (it is hung or
			// slow, not gone): undo it so no ghost member keeps the name. The
			// leave is published without waiting for a reply, so the client
			// gets its 504 when the first timeout fires. Order holds: the
			// leave goes out on the same connection after the enter, and
			// before any later request of this session, and the shard runs a
			// room's requests in arrival order on one worker.
			r.publishRequest(&Request{Op: OpLeave, SID: s.ID, RID: rid, Name: name})
		}
		return nil, err
	}
	return rep.Users, nil
}

// Leave implements chat.Backend. It returns once the shard has removed the
// member (so its leave message precedes any later push of the room).
func (r *Remote) Leave(s *connector.Session, rid, name string) {
	if _, err := r.request(&Request{Op: OpLeave, SID: s.ID, RID: rid, Name: name}); err != nil {
		r.log.Warn("leave", "rid", rid, "name", name, "err", err)
	}
}

// Send implements chat.Backend.
func (r *Remote) Send(s *connector.Session, rid, from, content, target string) error {
	_, err := r.request(&Request{Op: OpSend, SID: s.ID, RID: rid, Name: from, Content: content, Target: target})
	return err
}

// Forget drops a closed session: call it after the chat handler's Closed
// (which leaves the session's room).
func (r *Remote) Forget(s *connector.Session) {
	r.mu.Lock()
	delete(r.sessions, s.ID)
	r.local.LeaveEndpoint(s, nil)
	r.mu.Unlock()
}

func (r *Remote) request(req *Request) (*Reply, error) {
	req.Conn, req.Epoch = r.opts.ConnID, r.epoch.Load()
	i := room.Dispatch(req.RID, len(r.shards))
	bp := r.bufs.Get().(*[]byte)
	*bp = AppendRequest((*bp)[:0], req)
	m, err := r.nc.Request(r.subjects[i], *bp, r.opts.Timeout)
	r.bufs.Put(bp)
	if err != nil {
		r.Unavailable.Add(1)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return nil, connector.Errorf(chatproto.CodeUnavailable, "chat shard %s for room %q unavailable", r.shards[i], req.RID)
		case errors.Is(err, nats.ErrTimeout):
			return nil, &timeoutError{err: connector.Errorf(chatproto.CodeUnavailable, "chat shard %s for room %q did not answer within %v", r.shards[i], req.RID, r.opts.Timeout)}
		}
		return nil, connector.Errorf(chatproto.CodeUnavailable, "chat shard %s for room %q: %v", r.shards[i], req.RID, err)
	}
	rep, err := DecodeReply(m.Data)
	if err != nil {
		return nil, connector.Errorf(chatproto.CodeUnavailable, "chat shard %s: %v", r.shards[i], err)
	}
	if rep.Code != 0 {
		return nil, &connector.Error{Code: rep.Code, Message: rep.Message}
	}
	return &rep, nil
}

// publishRequest sends req to its room's shard without a reply subject
// (the shard handles it and answers nobody). It does not wait.
func (r *Remote) publishRequest(req *Request) {
	req.Conn, req.Epoch = r.opts.ConnID, r.epoch.Load()
	i := room.Dispatch(req.RID, len(r.shards))
	bp := r.bufs.Get().(*[]byte)
	*bp = AppendRequest((*bp)[:0], req)
	if err := r.nc.Publish(r.subjects[i], *bp); err != nil {
		r.log.Warn("publish", "shard", r.shards[i], "op", req.Op, "rid", req.RID, "err", err)
	}
	r.bufs.Put(bp)
}

// deliver handles one message from a shard, on the subscription's goroutine,
// in the order the shard published (per shard, hence per room).
func (r *Remote) deliver(m *nats.Msg) {
	r.Deliveries.Add(1)
	d, err := DecodeDelivery(m.Data)
	if err != nil {
		r.log.Warn("delivery", "err", err)
		return
	}
	switch d.Op {
	case OpPush:
		if len(d.Name) == 0 {
			r.local.Broadcast(string(d.RID), func(s *connector.Session) { s.EnqueueQueued(d.Packet) })
		} else {
			_ = r.local.SendTo(string(d.RID), string(d.Name), func(s *connector.Session) { s.EnqueueQueued(d.Packet) })
		}
	case OpJoined:
		r.mu.Lock()
		r.shardEpoch(r.ShardFor(string(d.RID)), d.Epoch)
		if s := r.sessions[d.SID]; s != nil { // else the session closed meanwhile: its leave follows
			if _, err := r.local.Join(string(d.RID), string(d.Name), s, nil); err != nil {
				r.log.Warn("local join", "rid", string(d.RID), "name", string(d.Name), "err", err)
			}
		}
		r.mu.Unlock()
	case OpLeft:
		rid, name := string(d.RID), string(d.Name)
		var s *connector.Session
		if r.local.SendTo(rid, name, func(x *connector.Session) { s = x }) == nil {
			r.local.Leave(rid, name, s, nil)
		}
	}
}

// shardBeat handles a shard heartbeat: a new epoch means a restart.
func (r *Remote) shardBeat(m *nats.Msg) {
	l, err := DecodeLiveness(m.Data)
	if err != nil {
		r.log.Warn("shard heartbeat", "err", err)
		return
	}
	r.mu.Lock()
	r.shardEpoch(l.Conn, l.Epoch)
	r.mu.Unlock()
}

// shardEpoch records shard's epoch, handling a restart first; r.mu held.
// Joins and heartbeats both call it under r.mu, so whichever sees a new
// epoch first removes the stale members before the new incarnation's first
// join is applied.
func (r *Remote) shardEpoch(shard string, epoch uint64) {
	if old := r.shardEpochs[shard]; old != epoch {
		if old != 0 {
			r.shardRestarted(shard)
		}
		r.shardEpochs[shard] = epoch
	}
}

// shardRestarted runs when a shard's joins come from a new incarnation: the
// rooms this connector knew on it are gone, so their local members are
// removed and kicked (their clients reconnect and enter again). It runs on
// the delivery goroutine, before the new incarnation's first join, so stale
// members never share a room with new ones.
func (r *Remote) shardRestarted(shard string) {
	r.Restarts.Add(1)
	reason := fmt.Sprintf("chat shard %s restarted", shard)
	n := 0
	for _, rid := range r.local.IDs() {
		if r.ShardFor(rid) != shard {
			continue
		}
		for _, name := range r.local.Members(rid) {
			var s *connector.Session
			if r.local.SendTo(rid, name, func(x *connector.Session) { s = x }) == nil {
				r.local.Leave(rid, name, s, nil)
				s.Kick(reason)
				n++
			}
		}
	}
	r.log.Warn(reason+": its members here were kicked", "shard", shard, "members", n)
}

// Reconnected handles a NATS reconnect: pushes and membership messages
// published while this connector was cut off are lost (core NATS is
// at-most-once), and the shards may have evicted it meanwhile. The
// connector starts a new incarnation (epoch): each shard drops every member
// of the old one when it first hears from the new one, and refuses requests
// still carrying the old one. Its members are removed from the local rooms
// and kicked, so their clients enter again rather than sit in a room that
// no longer holds them.
func (r *Remote) Reconnected() {
	reason := "chat bus reconnected: enter again"
	n := 0
	r.mu.Lock()
	r.epoch.Store(max(uint64(time.Now().UnixNano()), r.epoch.Load()+1))
	r.heartbeat(OpHeartbeat)
	for _, rid := range r.local.IDs() {
		for _, name := range r.local.Members(rid) {
			var s *connector.Session
			if r.local.SendTo(rid, name, func(x *connector.Session) { s = x }) == nil {
				r.local.Leave(rid, name, s, nil)
				s.Kick(reason)
				n++
			}
		}
	}
	r.mu.Unlock()
	r.log.Warn(reason+": members kicked", "members", n)
}

// timeoutError is a 504 for a request that may still have been applied.
type timeoutError struct{ err *connector.Error }

func (e *timeoutError) Error() string { return e.err.Error() }
func (e *timeoutError) Unwrap() error { return e.err }

func (r *Remote) timedOut(err error) bool {
	var te *timeoutError
	return errors.As(err, &te)
}
