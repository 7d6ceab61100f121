package chat

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/room"
)

// Backend is where rooms live, seen from a connector: in this process
// (Local), or on the chat shard that owns the room (over a bus). Errors
// should be *connector.Error so the client gets a precise code.
type Backend interface {
	Enter(s *connector.Session, rid, name string) ([]string, error)
	Leave(s *connector.Session, rid, name string)
	Send(s *connector.Session, rid, from, content, target string) error
}

// Limits caps what clients may send. Zero values mean the defaults.
type Limits struct {
	MaxContentBytes int // chat content; default 8 KiB
	MaxNameBytes    int // username and room id; default 64
}

func (l *Limits) setDefaults() {
	if l.MaxContentBytes == 0 {
		l.MaxContentBytes = 8 << 10
	}
	if l.MaxNameBytes == 0 {
		l.MaxNameBytes = 64
	}
}

// Handler serves the connector's chat routes over a Backend. It implements
// connector.Handler.
type Handler struct {
	backend Backend
	limits  Limits
}

// NewHandler returns the chat front-end handler.
func NewHandler(b Backend, l Limits) *Handler {
	l.setDefaults()
	return &Handler{backend: b, limits: l}
}

var emptyObject = []byte(`{}`)

type enterRequest struct {
	Username *string `json:"username"`
	RID      *string `json:"rid"`
}

type switchRequest struct {
	RID *string `json:"rid"`
}

type sendRequest struct {
	Content *string `json:"content"`
	Target  *string `json:"target"`
	// rid and from are ignored: the session's room and name are used, as pomelo does.
}

// Request implements connector.Handler.
func (h *Handler) Request(s *connector.Session, route string, body []byte) ([]byte, error) {
	switch route {
	case chatproto.RouteSend:
		var req sendRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		if s.Room == "" {
			return nil, connector.Errorf(chatproto.CodeNotInRoom, "enter a room (%s) before sending", chatproto.RouteEnter)
		}
		if req.Content == nil {
			return nil, connector.Errorf(chatproto.CodeBadRequest, `missing field "content" (string)`)
		}
		if len(*req.Content) > h.limits.MaxContentBytes {
			return nil, connector.Errorf(chatproto.CodeTooLarge, "content is %d bytes, limit %d", len(*req.Content), h.limits.MaxContentBytes)
		}
		target := "*"
		if req.Target != nil && *req.Target != "" {
			target = *req.Target
		}
		if err := h.backend.Send(s, s.Room, s.Name, *req.Content, target); err != nil {
			return nil, err
		}
		return emptyObject, nil

	case chatproto.RouteEnter:
		var req enterRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		if err := h.checkName("username", req.Username); err != nil {
			return nil, err
		}
		if err := h.checkName("rid", req.RID); err != nil {
			return nil, err
		}
		if s.Room != "" {
			return nil, connector.Errorf(chatproto.CodeBadRequest, "already in room %q: use %s to change rooms", s.Room, chatproto.RouteSwitch)
		}
		users, err := h.backend.Enter(s, *req.RID, *req.Username)
		if err != nil {
			return nil, err
		}
		s.Name, s.Room, s.UID = *req.Username, *req.RID, *req.Username+"*"+*req.RID
		return usersBody(users), nil

	case chatproto.RouteSwitch:
		var req switchRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		if err := h.checkName("rid", req.RID); err != nil {
			return nil, err
		}
		if s.Room == "" {
			return nil, connector.Errorf(chatproto.CodeNotInRoom, "enter a room (%s) before switching", chatproto.RouteEnter)
		}
		if *req.RID == s.Room {
			return nil, connector.Errorf(chatproto.CodeBadRequest, "already in room %q", s.Room)
		}
		// Enter the new room first: if that fails the member stays where it was.
		users, err := h.backend.Enter(s, *req.RID, s.Name)
		if err != nil {
			return nil, err
		}
		h.backend.Leave(s, s.Room, s.Name)
		s.Room, s.UID = *req.RID, s.Name+"*"+*req.RID
		return usersBody(users), nil

	case chatproto.RouteQueryEntry:
		return nil, connector.Errorf(chatproto.CodeNoRoute, "route %q is served by the gate, not by a connector", route)
	}
	return nil, connector.Errorf(chatproto.CodeNoRoute, "unknown route %q", route)
}

// Closed implements connector.Handler: a closed session leaves its room.
func (h *Handler) Closed(s *connector.Session) {
	if s.Room != "" {
		h.backend.Leave(s, s.Room, s.Name)
		s.Room = ""
	}
}

func (h *Handler) checkName(field string, v *string) error {
	switch {
	case v == nil || *v == "":
		return connector.Errorf(chatproto.CodeBadRequest, "missing field %q (non-empty string)", field)
	case len(*v) > h.limits.MaxNameBytes:
		return connector.Errorf(chatproto.CodeTooLarge, "%s is %d bytes, limit %d", field, len(*v), h.limits.MaxNameBytes)
	case !utf8.ValidString(*v):
		return connector.Errorf(chatproto.CodeBadRequest, "%s is not valid UTF-8", field)
	}
	for _, r := range *v {
		if r == '*' || r < 0x20 {
			return connector.Errorf(chatproto.CodeBadRequest, "%s %q may not contain '*' or control characters", field, *v)
		}
	}
	return nil
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return connector.Errorf(chatproto.CodeBadRequest, "malformed JSON body: %v", err)
	}
	return nil
}

// Local is the single-process Backend: rooms in this process, endpoints are
// the sessions themselves.
type Local struct {
	Rooms *Rooms[*connector.Session]
}

// NewLocal returns an in-process backend whose broadcasts' deliveries run
// through fanout (wsout.Options.Fanout; nil: one after another).
func NewLocal(l room.Limits, fanout func(n int, part func(lo, hi int))) *Local {
	rooms := NewRooms[*connector.Session](l, func(s *connector.Session, _, _ string, pkt []byte) {
		s.Enqueue(pkt)
	})
	rooms.Fanout = fanout
	return &Local{Rooms: rooms}
}

// Enter implements Backend.
func (b *Local) Enter(s *connector.Session, rid, name string) ([]string, error) {
	return b.Rooms.Enter(rid, name, s)
}

// Leave implements Backend.
func (b *Local) Leave(s *connector.Session, rid, name string) { b.Rooms.Leave(rid, name, s) }

// Send implements Backend.
func (b *Local) Send(s *connector.Session, rid, from, content, target string) error {
	if err := b.Rooms.Send(rid, from, content, target); err != nil {
		return fmt.Errorf("send in %q: %w", rid, err)
	}
	return nil
}
