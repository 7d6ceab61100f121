package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// protoSet is what a client needs of a server's pomelo-protobuf declarations:
// which push routes carry protobuf bodies, and the tags of onChat's fields for
// the allocation-free fast path. One protoSet is shared per protoVersion.
type protoSet struct {
	server   map[string]bool
	chatTags [3]uint64 // msg, from, target
}

func (ps *protoSet) hasServer(route []byte) bool {
	return ps != nil && ps.server[string(route)]
}

func (ps *protoSet) chatFields(body []byte) (msg, from, target []byte, ok bool) {
	if ps == nil {
		return nil, nil, nil, false
	}
	f, ok := protoFields(body, ps.chatTags)
	return f[0], f[1], f[2], ok && f[0] != nil
}

// adoptProtos parses sys.protos ({"server":{route:{"required string msg":1,...}},
// "client":{...},"version":V}) once per version for the whole fleet.
// The caller holds f.mu.
func (f *Fleet) adoptProtos(raw json.RawMessage) (*protoSet, string, error) {
	var p struct {
		Server  map[string]map[string]json.RawMessage `json:"server"`
		Version json.RawMessage                       `json:"version"`
	}
	if len(raw) == 0 {
		return nil, "", nil
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, "", fmt.Errorf("handshake protos: %w", err)
	}
	ver := strings.Trim(string(p.Version), `"`)
	if ps := f.protos[ver]; ps != nil && ver != "" {
		return ps, ver, nil
	}
	ps := &protoSet{server: map[string]bool{}, chatTags: [3]uint64{1, 2, 3}}
	for route, fields := range p.Server {
		ps.server[route] = true
		if route != "onChat" {
			continue
		}
		for decl, tagRaw := range fields {
			parts := strings.Fields(decl) // "required string msg"
			if len(parts) != 3 {
				continue
			}
			tag, err := strconv.ParseUint(string(tagRaw), 10, 32)
			if err != nil {
				continue
			}
			switch parts[2] {
			case "msg":
				ps.chatTags[0] = tag
			case "from":
				ps.chatTags[1] = tag
			case "target":
				ps.chatTags[2] = tag
			}
		}
	}
	if ver != "" {
		f.protos[ver] = ps
	}
	return ps, ver, nil
}
