// Package bus is how connectors (front-ends) and chat shards (back-ends) of
// the split topology talk over NATS: the subjects, a compact binary encoding
// of every bus message, the shard service (Shard) that runs rooms for remote
// connectors, and the connector side (Remote): a chat.Backend over NATS
// request/reply plus the local membership that the shards' join/leave control
// messages keep in order with their pushes.
//
// The single-process topology does not use this package: chat.Local is its
// in-process bus.
//
// Subjects (prefix "chatbench" by default):
//
//	<prefix>.shard.<shardID>   requests from connectors (enter, leave, send), request/reply
//	<prefix>.conn.<connID>     from shards to one connector: join, leave and push messages,
//	                           in room order (one publisher connection per shard)
//	<prefix>.hb                connector liveness: heartbeats and goodbyes
//	<prefix>.ping.<connID>     a shard's probe of a silent connector, request/reply
//	<prefix>.shardhb           shard heartbeats: a new epoch means a restart
//
// A NATS outage: requests answer 504 at once (nothing is buffered while
// the connection is down, and requests in flight fail when it drops);
// sessions stay connected. Deliveries are numbered per shard and connector,
// so what NATS lost is counted by the connector (a gap) and what a shard
// could not publish by the shard. Once back, each connector sends every
// shard its membership (OpSync) and leaves that failed; a shard that evicted
// the connector meanwhile restores its members, and a shard that meets a
// connector it does not know asks for its membership (OpResync).
//
// Encoding: a message is one op byte followed by fields; a string or byte
// field is a uvarint length and the bytes, an integer a uvarint. A push
// carries the encoded pomelo package as its last field, unframed, so a
// connector hands the very bytes the shard encoded to its sessions.
package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is the first byte of every bus message.
type Op byte

// Bus message kinds.
const (
	OpEnter     Op = 'E' // request: conn, epoch, sid, rid, name
	OpLeave     Op = 'L' // request: conn, epoch, sid, rid, name
	OpSend      Op = 'S' // request: conn, epoch, sid, rid, from, content, target
	OpSync      Op = 'Y' // request: conn, epoch, 0, rid, "", members (sid, name)...: the connector's members of rid
	OpReply     Op = 'R' // reply: code (0 = ok), message, users...
	OpJoined    Op = 'j' // to a connector: rid, name, sid, shard epoch
	OpLeft      Op = 'l' // to a connector: rid, name, sid
	OpPush      Op = 'p' // to a connector: rid, target, pkt (rest of the message)
	OpResync    Op = 'y' // to a connector: "", shard id, 0, shard epoch: send OpSync for your rooms on this shard
	OpHeartbeat Op = 'h' // liveness: conn, epoch
	OpBye       Op = 'b' // liveness: conn, epoch (graceful stop)
)

// ErrMalformed is returned for a bus message that cannot be decoded.
var ErrMalformed = errors.New("bus: malformed message")

// Request is a connector's request to a shard.
type Request struct {
	Op      Op
	Conn    string // connector id (the shard's endpoint)
	Epoch   uint64 // connector incarnation: a new one makes the shard drop the old one's members
	SID     uint64 // session id on the connector
	RID     string
	Name    string   // member name (the sender for OpSend)
	Content string   // OpSend only
	Target  string   // OpSend only
	Members []Member // OpSync only
}

// Member is one member of a room as a connector knows it (OpSync).
type Member struct {
	SID  uint64
	Name string
}

// AppendRequest appends the encoding of r to b.
func AppendRequest(b []byte, r *Request) []byte {
	b = append(b, byte(r.Op))
	b = appendString(b, r.Conn)
	b = binary.AppendUvarint(b, r.Epoch)
	b = binary.AppendUvarint(b, r.SID)
	b = appendString(b, r.RID)
	b = appendString(b, r.Name)
	switch r.Op {
	case OpSend:
		b = appendString(b, r.Content)
		b = appendString(b, r.Target)
	case OpSync:
		b = binary.AppendUvarint(b, uint64(len(r.Members)))
		for _, m := range r.Members {
			b = binary.AppendUvarint(b, m.SID)
			b = appendString(b, m.Name)
		}
	}
	return b
}

// DecodeRequest decodes a request. Strings are copied.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	d := decoder{b: b}
	r.Op = Op(d.byte())
	switch r.Op {
	case OpEnter, OpLeave, OpSend, OpSync:
	default:
		return r, fmt.Errorf("%w: request op %q", ErrMalformed, byte(r.Op))
	}
	r.Conn = d.string()
	r.Epoch = d.uvarint()
	r.SID = d.uvarint()
	r.RID = d.string()
	r.Name = d.string()
	switch r.Op {
	case OpSend:
		r.Content = d.string()
		r.Target = d.string()
	case OpSync:
		n := d.uvarint()
		if n > uint64(len(b)) {
			return r, fmt.Errorf("%w: %d members in %d bytes", ErrMalformed, n, len(b))
		}
		for range n {
			sid := d.uvarint()
			r.Members = append(r.Members, Member{SID: sid, Name: d.string()})
		}
	}
	return r, d.finish()
}

// RequestRID returns the room id of an encoded request without decoding the
// rest (the shard's dispatcher uses it to pick the room's worker).
func RequestRID(b []byte) ([]byte, error) {
	d := decoder{b: b}
	d.byte()
	d.bytes() // conn
	d.uvarint()
	d.uvarint()
	rid := d.bytes()
	if d.err != nil {
		return nil, d.err
	}
	return rid, nil
}

// Reply is a shard's answer. Code 0 means success; otherwise Code and
// Message are the pomelo error to answer the client with.
type Reply struct {
	Code    int
	Message string
	Users   []string // OpEnter
}

// AppendReply appends the encoding of r to b.
func AppendReply(b []byte, r *Reply) []byte {
	b = append(b, byte(OpReply))
	b = binary.AppendUvarint(b, uint64(r.Code))
	b = appendString(b, r.Message)
	b = binary.AppendUvarint(b, uint64(len(r.Users)))
	for _, u := range r.Users {
		b = appendString(b, u)
	}
	return b
}

// DecodeReply decodes a reply.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	d := decoder{b: b}
	if Op(d.byte()) != OpReply && d.err == nil {
		return r, fmt.Errorf("%w: not a reply", ErrMalformed)
	}
	r.Code = int(d.uvarint())
	r.Message = d.string()
	n := d.uvarint()
	if n > uint64(len(b)) {
		return r, fmt.Errorf("%w: %d users in %d bytes", ErrMalformed, n, len(b))
	}
	if n > 0 {
		r.Users = make([]string, 0, n)
		for range n {
			r.Users = append(r.Users, d.string())
		}
	}
	return r, d.finish()
}

// Delivery is a message from a shard to a connector. On the wire it is
// preceded by its sequence number (AppendSeq): the shard numbers the
// messages to each connector 1, 2, 3... so a connector counts the ones NATS
// lost (a gap) instead of missing them without a trace.
type Delivery struct {
	Seq    uint64
	Op     Op     // OpJoined, OpLeft, OpPush or OpResync
	RID    []byte // aliases the message
	Name   []byte // OpJoined, OpLeft: the member; OpPush: the target member, empty for the whole room
	SID    uint64 // OpJoined, OpLeft
	Epoch  uint64 // OpJoined, OpResync: the shard's incarnation
	Packet []byte // OpPush: the encoded pomelo package; aliases the message
}

// AppendSeq appends the sequence number that precedes a delivery.
func AppendSeq(b []byte, seq uint64) []byte { return binary.AppendUvarint(b, seq) }

// AppendPush appends a push of pkt to room rid (only to member target when
// target is not empty).
func AppendPush(b []byte, rid, target string, pkt []byte) []byte {
	b = append(b, byte(OpPush))
	b = appendString(b, rid)
	b = appendString(b, target)
	return append(b, pkt...)
}

// AppendMember appends a join (OpJoined) or leave (OpLeft) control message.
// epoch is the shard's incarnation (used with OpJoined).
func AppendMember(b []byte, op Op, rid, name string, sid, epoch uint64) []byte {
	b = append(b, byte(op))
	b = appendString(b, rid)
	b = appendString(b, name)
	b = binary.AppendUvarint(b, sid)
	return binary.AppendUvarint(b, epoch)
}

// DecodeDelivery decodes a delivery without copying: its slices alias b.
func DecodeDelivery(b []byte) (Delivery, error) {
	var m Delivery
	d := decoder{b: b}
	m.Seq = d.uvarint()
	m.Op = Op(d.byte())
	m.RID = d.bytes()
	m.Name = d.bytes()
	switch m.Op {
	case OpPush:
		if d.err != nil {
			return m, d.err
		}
		m.Packet = d.b
		if len(m.Packet) == 0 {
			return m, fmt.Errorf("%w: empty push", ErrMalformed)
		}
		return m, nil
	case OpJoined, OpLeft, OpResync:
		m.SID = d.uvarint()
		m.Epoch = d.uvarint()
		return m, d.finish()
	}
	if d.err != nil {
		return m, d.err
	}
	return m, fmt.Errorf("%w: delivery op %q", ErrMalformed, byte(m.Op))
}

// Liveness is a connector heartbeat or goodbye, or a shard heartbeat.
type Liveness struct {
	Op    Op     // OpHeartbeat or OpBye
	Conn  string // the connector's id (the shard's, on ShardLiveness)
	Epoch uint64
}

// AppendLiveness appends the encoding of l.
func AppendLiveness(b []byte, l *Liveness) []byte {
	b = append(b, byte(l.Op))
	b = appendString(b, l.Conn)
	return binary.AppendUvarint(b, l.Epoch)
}

// DecodeLiveness decodes a heartbeat or goodbye.
func DecodeLiveness(b []byte) (Liveness, error) {
	var l Liveness
	d := decoder{b: b}
	l.Op = Op(d.byte())
	if l.Op != OpHeartbeat && l.Op != OpBye && d.err == nil {
		return l, fmt.Errorf("%w: liveness op %q", ErrMalformed, byte(l.Op))
	}
	l.Conn = d.string()
	l.Epoch = d.uvarint()
	return l, d.finish()
}

func appendString[S string | []byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields; the first error sticks and later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("op")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("field")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

// Subjects names the bus subjects under one prefix.
type Subjects struct{ Prefix string }

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "chatbench"

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Shard is the request subject of shard id.
func (s Subjects) Shard(id string) string { return s.prefix() + ".shard." + id }

// Conn is the delivery subject of connector id.
func (s Subjects) Conn(id string) string { return s.prefix() + ".conn." + id }

// Ping is the subject on which connector id answers liveness probes.
func (s Subjects) Ping(id string) string { return s.prefix() + ".ping." + id }

// ShardLiveness is the subject of the shards' heartbeats (id and epoch).
func (s Subjects) ShardLiveness() string { return s.prefix() + ".shardhb" }

// Liveness is the heartbeat subject.
func (s Subjects) Liveness() string { return s.prefix() + ".hb" }
