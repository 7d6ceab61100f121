package bus

import (
	"context"
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
	// pendingLeaves are leaves that could not reach their shard (the bus
	// was down): sent again before the next sync with that shard, so the
	// shard does not keep a member whose session is gone.
	pendingLeaves []Request

	// link is canceled when the NATS connection drops (Disconnected), so
	// requests in flight answer 504 at once instead of at their timeout;
	// Reconnected makes a new one.
	link       context.Context
	linkCancel context.CancelFunc

	// seqs is the last delivery sequence number seen per shard (only the
	// delivery goroutine uses it).
	seqs map[string]uint64

	// toSync are the shards to sync with, served by the syncer goroutine
	// (woken by syncWake).
	toSync   map[string]bool
	syncWake chan struct{}

	// Counters for metrics and tests.
	Deliveries  atomic.Uint64 // delivery messages handled
	Unavailable atomic.Uint64 // requests failed with 504
	Restarts    atomic.Uint64 // shard restarts seen (their members kicked)
	// Lost counts deliveries NATS lost on the way from a shard (gaps in
	// its numbering), such as pushes published while this connector was
	// cut off from NATS: one per push, as the shards count theirs.
	Lost     atomic.Uint64
	Syncs    atomic.Uint64 // membership syncs sent (one per room per shard sync)
	SyncLost atomic.Uint64 // members a sync could not restore (kicked)
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
		toSync: map[string]bool{}, syncWake: make(chan struct{}, 1), seqs: map[string]uint64{},
	}
	r.epoch.Store(uint64(time.Now().UnixNano()))
	r.link, r.linkCancel = context.WithCancel(context.Background())
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
	r.wg.Add(2)
	go r.beat()
	go r.syncer()
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
	r.Disconnected()
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
	req := Request{Op: OpLeave, SID: s.ID, RID: rid, Name: name}
	if _, err := r.request(&req); err != nil {
		r.log.Warn("leave", "rid", rid, "name", name, "err", err)
		if isUnavailable(err) {
			r.addPendingLeave(req)
		}
	}
}

func isUnavailable(err error) bool {
	var ce *connector.Error
	return errors.As(err, &ce) && ce.Code == chatproto.CodeUnavailable
}

func (r *Remote) addPendingLeave(req Request) {
	r.mu.Lock()
	r.pendingLeaves = append(r.pendingLeaves, req)
	r.mu.Unlock()
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
	if !r.nc.IsConnected() {
		r.Unavailable.Add(1)
		return nil, connector.Errorf(chatproto.CodeUnavailable, "chat bus (NATS) disconnected: room %q is unavailable until it is back", req.RID)
	}
	r.mu.Lock()
	link := r.link
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(link, r.opts.Timeout)
	bp := r.bufs.Get().(*[]byte)
	*bp = AppendRequest((*bp)[:0], req)
	m, err := r.nc.RequestWithContext(ctx, r.subjects[i], *bp)
	cancel()
	r.bufs.Put(bp)
	if err != nil {
		r.Unavailable.Add(1)
		switch {
		case link.Err() != nil:
			// The connection dropped while the request was out: the shard
			// may have applied it (like a timeout).
			return nil, &timeoutError{err: connector.Errorf(chatproto.CodeUnavailable, "chat bus (NATS) connection lost during the request for room %q", req.RID)}
		case errors.Is(err, context.DeadlineExceeded):
			err = nats.ErrTimeout
		}
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
		if req.Op == OpLeave {
			r.addPendingLeave(*req)
		}
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
	shard := string(d.Name)
	if d.Op != OpResync {
		shard = r.ShardFor(string(d.RID))
	}
	switch last := r.seqs[shard]; {
	case last == 0 || d.Seq <= last:
		// the first message from this shard, or a restarted one starting
		// again: no gap to count
	case d.Seq > last+1:
		n := d.Seq - last - 1
		r.Lost.Add(n)
		r.log.Warn("deliveries lost on the bus", "shard", shard, "count", n)
	}
	r.seqs[shard] = d.Seq
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
	case OpResync:
		r.mu.Lock()
		r.shardEpoch(shard, d.Epoch) // a restart first kicks the members it lost
		r.mu.Unlock()
		r.requestSync(shard)
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

// Reconnected handles a NATS reconnect. Sessions stay connected and in
// their rooms: pushes published while the bus was down are lost (and
// counted by the shards), requests failed with 504. The connector then
// sends each shard its membership (syncShard), so a shard that evicted it
// meanwhile restores its members; leaves that could not be sent go first.
func (r *Remote) Reconnected() {
	r.mu.Lock()
	if r.link.Err() != nil {
		r.link, r.linkCancel = context.WithCancel(context.Background())
	}
	r.mu.Unlock()
	r.heartbeat(OpHeartbeat)
	for _, shard := range r.shards {
		r.requestSync(shard)
	}
}

// Disconnected handles the loss of the NATS connection: requests in flight
// fail with 504 at once (new ones too, until Reconnected).
func (r *Remote) Disconnected() {
	r.mu.Lock()
	r.linkCancel()
	r.mu.Unlock()
}

// requestSync asks the syncer goroutine to sync with shard.
func (r *Remote) requestSync(shard string) {
	r.mu.Lock()
	r.toSync[shard] = true
	r.mu.Unlock()
	select {
	case r.syncWake <- struct{}{}:
	default:
	}
}

// syncer runs the syncs asked for, one at a time, until Close.
func (r *Remote) syncer() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case <-r.syncWake:
		}
		for {
			r.mu.Lock()
			shard := ""
			for id := range r.toSync {
				shard = id
				break
			}
			delete(r.toSync, shard)
			r.mu.Unlock()
			if shard == "" {
				break
			}
			r.syncShard(shard)
		}
	}
}

// syncShard sends shard the leaves that failed to reach it, then, room by
// room, the members this connector holds in the shard's rooms; members the
// shard cannot restore (their name was taken meanwhile) are removed here
// and kicked.
func (r *Remote) syncShard(shard string) {
	select {
	case <-r.stop:
		return
	default:
	}
	r.mu.Lock()
	var leaves, keep []Request
	for _, l := range r.pendingLeaves {
		if r.ShardFor(l.RID) == shard {
			leaves = append(leaves, l)
		} else {
			keep = append(keep, l)
		}
	}
	r.pendingLeaves = keep
	rooms := map[string][]Member{}
	for _, rid := range r.local.IDs() {
		if r.ShardFor(rid) != shard {
			continue
		}
		for _, name := range r.local.Members(rid) {
			_ = r.local.SendTo(rid, name, func(s *connector.Session) {
				rooms[rid] = append(rooms[rid], Member{SID: s.ID, Name: name})
			})
		}
	}
	r.mu.Unlock()
	for _, l := range leaves {
		if _, err := r.request(&l); err != nil {
			r.log.Warn("pending leave", "rid", l.RID, "name", l.Name, "err", err)
			if isUnavailable(err) {
				r.addPendingLeave(l)
			}
		}
	}
	for rid, members := range rooms {
		r.Syncs.Add(1)
		rep, err := r.request(&Request{Op: OpSync, RID: rid, Members: members})
		if err != nil {
			r.log.Warn("membership sync", "shard", shard, "rid", rid, "err", err)
			continue
		}
		for _, name := range rep.Users {
			var s *connector.Session
			if r.local.SendTo(rid, name, func(x *connector.Session) { s = x }) == nil {
				r.local.Leave(rid, name, s, nil)
				r.SyncLost.Add(1)
				s.Kick(fmt.Sprintf("lost its place in room %q while the chat bus was down: enter again", rid))
			}
		}
	}
}

// timeoutError is a 504 for a request that may still have been applied.
type timeoutError struct{ err *connector.Error }

func (e *timeoutError) Error() string { return e.err.Error() }
func (e *timeoutError) Unwrap() error { return e.err }

func (r *Remote) timedOut(err error) bool {
	var te *timeoutError
	return errors.As(err, &te)
}
