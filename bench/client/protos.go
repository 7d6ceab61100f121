package client

import (
	"slices"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/pomelo"
)

// protoSet is what a client needs of a server's pomelo-protobuf declarations
// (pomelo.Protos, parsed once per protoVersion for the whole fleet): which
// routes carry protobuf bodies, and the tags of onChat's string fields for an
// allocation-free fast path on the hottest push.
type protoSet struct {
	p        *pomelo.Protos
	server   map[string]bool // routes with protobuf server bodies (lookups do not allocate)
	client   map[string]bool
	chatTags [3]uint64 // msg, from, target; 0 when onChat is not a plain three-string message
}

func (ps *protoSet) hasServer(route []byte) bool {
	return ps != nil && ps.server[string(route)]
}

func (ps *protoSet) hasClient(route string) bool {
	return ps != nil && ps.client[route]
}

func (ps *protoSet) chatFields(body []byte) (msg, from, target []byte, ok bool) {
	if ps == nil || ps.chatTags[0] == 0 {
		return nil, nil, nil, false
	}
	f, ok := protoFields(body, ps.chatTags)
	return f[0], f[1], f[2], ok && f[0] != nil
}

// chatTags finds the tags of onChat's msg, from and target: zero tags
// unless msg, and any of from and target that is declared, are single strings.
func chatTags(p *pomelo.Protos) [3]uint64 {
	var none, tags [3]uint64
	for _, f := range p.ServerFields(chatproto.PushChat) {
		i := slices.Index([]string{"msg", "from", "target"}, f.Name)
		if i < 0 {
			continue
		}
		if f.Type != "string" || f.Label == "repeated" {
			return none
		}
		tags[i] = uint64(f.Tag)
	}
	if tags[0] == 0 {
		return none
	}
	return tags
}

// DecodeBody returns the JSON body of a push, decoding a protobuf body with
// the server's protos (appending to dst); a JSON body is returned as is.
func (p *Push) DecodeBody(dst []byte) ([]byte, error) {
	if !p.Proto {
		return p.Body, nil
	}
	return p.Client.protos.p.AppendDecodeServerBytes(dst, p.Route, p.Body)
}
