package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/pomelo"
)

// ErrHandshakeMismatch is a server handshake that relies on a route
// dictionary or protos the client does not hold: it says useDict (useProto)
// without sending them, and the client did not announce a version it has.
var ErrHandshakeMismatch = errors.New("client: handshake mismatch")

// versions are the dictVersion and protoVersion (raw JSON, as the server sent
// it) a client holds for a server address and announces in its handshake.
type versions [2]string

// adopted is what a client takes from a server handshake.
type adopted struct {
	dict   *pomelo.Dict
	protos *protoSet
	vers   versions // what to announce next time to the same address
}

// adoptSys takes the dictionary and protos of a server handshake as pomelo's
// own client does. A pomelo server sends dict/routeToCode/codeToRoute/
// dictVersion only when the client's sys.dictVersion differs from its own,
// and protos only when sys.protoVersion differs; when they match it answers
// useDict (useProto) alone and the client keeps what it holds for the
// version it sent. The fleet keeps one parsed copy per version, shared by
// its clients. sent is what this client announced. The caller holds f.mu.
func (f *Fleet) adoptSys(sys *pomelo.ServerSys, sent versions) (adopted, error) {
	var a adopted
	if sys == nil {
		return a, nil
	}
	if sys.UseDict {
		switch {
		case sys.Dict != nil || sys.RouteToCode != nil || sys.DictVersion != "":
			v := sys.DictVersion
			d := f.dicts[v]
			if d == nil || v == "" {
				d = pomelo.DictFromHandshake(sys)
				if v != "" {
					f.dicts[v] = d
				}
			}
			a.dict, a.vers[0] = d, v
		case sent[0] != "" && f.dicts[sent[0]] != nil:
			a.dict, a.vers[0] = f.dicts[sent[0]], sent[0]
		default:
			return a, fmt.Errorf("%w: the server uses a route dictionary without sending it (this client announced dictVersion %q and holds no dictionary of that version)", ErrHandshakeMismatch, sent[0])
		}
	}
	if sys.UseProto {
		ps, v, err := f.adoptProtos(sys.Protos, sent[1])
		if err != nil {
			return a, err
		}
		a.protos, a.vers[1] = ps, v
	}
	return a, nil
}

// adoptProtos parses sys.protos once per version for the whole fleet (the
// caller holds f.mu); a server that omits protos because the client
// announced their version gets the cached set.
func (f *Fleet) adoptProtos(raw json.RawMessage, sent string) (*protoSet, string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		if ps := f.protos[sent]; ps != nil && sent != "" {
			return ps, sent, nil
		}
		return nil, "", fmt.Errorf("%w: the server uses protobuf without sending its protos (this client announced protoVersion %s and holds none of that version)", ErrHandshakeMismatch, orNone(sent))
	}
	p, err := pomelo.ParseProtos(raw)
	if err != nil {
		return nil, "", fmt.Errorf("handshake protos: %w", err)
	}
	ver := string(p.Version)
	if ps := f.protos[ver]; ps != nil && ver != "" {
		return ps, ver, nil
	}
	ps := &protoSet{p: p, server: map[string]bool{}, client: map[string]bool{}}
	for _, r := range p.ServerRoutes() {
		ps.server[r] = true
	}
	for _, r := range p.ClientRoutes() {
		ps.client[r] = true
	}
	if ps.server[chatproto.PushChat] {
		ps.chatTags = chatTags(p)
	}
	if ver != "" {
		f.protos[ver] = ps
	}
	return ps, ver, nil
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
