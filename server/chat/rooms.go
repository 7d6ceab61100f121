// Package chat owns the chat application of the pomelo chat demo: the
// connector.entryHandler and chat.chatHandler routes (plus switchRoom, ours),
// the push bodies (onAdd, onLeave, onChat), and the rooms logic that both the
// single-process server and a split chat shard run over package room.
package chat

import (
	"errors"
	"fmt"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/pomelo"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/room"
)

// Rooms runs the chat semantics over a room registry whose members are
// reached through endpoints of type E. Every push is encoded once and the
// same bytes go to every endpoint.
type Rooms[E comparable] struct {
	Registry *room.Registry[E]
	// Deliver hands pkt (a complete DATA package, shared, read-only) to
	// endpoint e for room rid: to every member of rid behind e when target is
	// "", or only to member target. It runs under the room's lock: no blocking.
	Deliver func(e E, rid, target string, pkt []byte)
	// Joined and Left, when set, run under the room's lock right after a
	// member joined (after the others' onAdd) or left (before the others' onLeave),
	// so a split shard can keep its connectors' view of membership in order
	// with the pushes.
	Joined, Left func(e E, rid, name string)
	// Fanout, when set, runs a chat broadcast's deliveries
	// (room.Registry.BroadcastFanout); nil: one after another.
	Fanout func(n int, part func(lo, hi int))
}

// NewRooms returns Rooms over a new registry with the given limits.
func NewRooms[E comparable](l room.Limits, deliver func(e E, rid, target string, pkt []byte)) *Rooms[E] {
	return &Rooms[E]{Registry: room.NewRegistry[E](l), Deliver: deliver}
}

// Enter adds name to rid behind endpoint e, pushes onAdd to the members
// already in the room (as stock pomelo's chat remote does: the newcomer gets
// no onAdd of itself, it reads the room from the returned names) and returns
// the member names, the newcomer included.
func (c *Rooms[E]) Enter(rid, name string, e E) ([]string, error) {
	return c.EnterWith(rid, name, e, nil)
}

// EnterWith is Enter with a per-call hook: joined, when not nil, runs under
// the room's lock right after the onAdd push to the others, before Joined. A
// split shard uses it to tell the member's connector which session joined, in
// order with the room's pushes: the connector adds the newcomer to its local
// view after the onAdd went by, so the newcomer does not get it.
func (c *Rooms[E]) EnterWith(rid, name string, e E, joined func()) ([]string, error) {
	users, err := c.Registry.Join(rid, name, e, func(r *room.Room[E]) {
		if r.Len() > 1 {
			pkt := EncodeUserPush(chatproto.PushAdd, name)
			r.Endpoints(func(x E) {
				// an endpoint whose only member is the newcomer has nobody to tell
				if x != e || r.Count(e) > 1 {
					c.Deliver(x, rid, "", pkt)
				}
			})
		}
		if joined != nil {
			joined()
		}
		if c.Joined != nil {
			c.Joined(e, rid, name)
		}
	})
	if err != nil {
		return nil, RoomError(rid, err)
	}
	return users, nil
}

// Leave removes name (behind e) from rid and pushes onLeave to the rest.
func (c *Rooms[E]) Leave(rid, name string, e E) bool {
	return c.Registry.Leave(rid, name, e, func(r *room.Room[E]) {
		if c.Left != nil {
			c.Left(e, rid, name)
		}
		pkt := EncodeUserPush(chatproto.PushLeave, name)
		r.Endpoints(func(x E) { c.Deliver(x, rid, "", pkt) })
	})
}

// LeaveEndpoint removes every member behind e (a connector that died) and
// pushes onLeave for each to the rest of its room.
func (c *Rooms[E]) LeaveEndpoint(e E) int {
	return c.Registry.LeaveEndpoint(e, func(r *room.Room[E], name string) {
		if c.Left != nil {
			c.Left(e, r.ID, name)
		}
		pkt := EncodeUserPush(chatproto.PushLeave, name)
		r.Endpoints(func(x E) { c.Deliver(x, r.ID, "", pkt) })
	})
}

// Send pushes onChat from member from of rid: to the whole room (sender
// included) when target is "*", otherwise only to member target.
func (c *Rooms[E]) Send(rid, from, content, target string) error {
	pkt := EncodeChatPush(content, from, target)
	if target == "*" {
		deliver := func(x E) { c.Deliver(x, rid, "", pkt) }
		n := 0
		if c.Fanout != nil {
			n = c.Registry.BroadcastFanout(rid, c.Fanout, deliver)
		} else {
			n = c.Registry.Broadcast(rid, deliver)
		}
		if n == 0 {
			return connector.Errorf(chatproto.CodeNotInRoom, "room %q does not exist", rid)
		}
		return nil
	}
	if err := c.Registry.SendTo(rid, target, func(x E) { c.Deliver(x, rid, target, pkt) }); err != nil {
		return connector.Errorf(chatproto.CodeFailed, "target %q is not in room %q", target, rid)
	}
	return nil
}

// RoomError maps registry errors to pomelo codes.
func RoomError(rid string, err error) error {
	switch {
	case errors.Is(err, room.ErrDuplicate):
		return connector.Errorf(chatproto.CodeFailed, "the name is already taken in room %q", rid)
	case errors.Is(err, room.ErrTooManyRoom), errors.Is(err, room.ErrRoomFull):
		return connector.Errorf(chatproto.CodeCapacity, "%v", err)
	}
	return fmt.Errorf("room %q: %w", rid, err)
}

// EncodeUserPush encodes the onAdd/onLeave push {"route":route,"user":name}.
func EncodeUserPush(route, name string) []byte {
	return encodePush(route, chatproto.AppendUserPush(make([]byte, 0, 32+len(name)), route, name))
}

// EncodeChatPush encodes the onChat push {"msg":..,"from":..,"target":..}.
func EncodeChatPush(content, from, target string) []byte {
	body := chatproto.AppendChatPush(make([]byte, 0, 40+len(content)+len(from)+len(target)), content, from, target)
	return encodePush(chatproto.PushChat, body)
}

func encodePush(route string, body []byte) []byte {
	m := pomelo.Message{Type: pomelo.Push, Route: route, Body: body}
	pkt, err := pomelo.AppendData(make([]byte, 0, pomelo.HeaderLen+pomelo.MessageLen(&m)), &m)
	if err != nil {
		panic(err) // push routes are constants shorter than 255 bytes
	}
	return pkt
}

// usersBody encodes the {"users":[...]} response.
func usersBody(users []string) []byte {
	n := 12
	for _, u := range users {
		n += len(u) + 3
	}
	return chatproto.AppendUsers(make([]byte, 0, n), users)
}
