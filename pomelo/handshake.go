package pomelo

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Handshake response codes.
const (
	CodeOK          = 200
	CodeBadRequest  = 500 // missing sys or malformed JSON; the server closes after it
	CodeOldClient   = 501
	ClientTypeJSWS  = "js-websocket"
	ClientVersionJS = "0.0.1"
)

// HandshakeRequest is the JSON body a client sends in its HANDSHAKE package.
type HandshakeRequest struct {
	Sys  *ClientSys      `json:"sys"`
	User json.RawMessage `json:"user,omitempty"`
}

// ClientSys is the "sys" part of a client handshake.
type ClientSys struct {
	Type         string          `json:"type,omitempty"`
	Version      string          `json:"version,omitempty"`
	RSA          json.RawMessage `json:"rsa,omitempty"`
	DictVersion  string          `json:"dictVersion,omitempty"`
	ProtoVersion json.RawMessage `json:"protoVersion,omitempty"`
}

// HandshakeResponse is the JSON body of the server's HANDSHAKE package.
type HandshakeResponse struct {
	Code int             `json:"code"`
	Sys  *ServerSys      `json:"sys,omitempty"`
	User json.RawMessage `json:"user,omitempty"`
}

// ServerSys is the "sys" part of a server handshake. Dict maps are omitted when
// the client already holds the same dictionary version.
type ServerSys struct {
	Heartbeat   int               `json:"heartbeat"` // seconds; 0 disables heartbeats
	Dict        map[string]uint16 `json:"dict,omitempty"`
	RouteToCode map[string]uint16 `json:"routeToCode,omitempty"`
	CodeToRoute map[string]string `json:"codeToRoute,omitempty"`
	DictVersion string            `json:"dictVersion,omitempty"`
	UseDict     bool              `json:"useDict"`
	UseProto    bool              `json:"useProto"`
	Protos      json.RawMessage   `json:"protos,omitempty"`
}

// ParseHandshakeRequest decodes a client handshake body; a body without "sys"
// is an error (pomelo answers it with code 500).
func ParseHandshakeRequest(body []byte) (HandshakeRequest, error) {
	var r HandshakeRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("handshake: %w", err)
	}
	if r.Sys == nil {
		return r, fmt.Errorf("handshake: missing \"sys\"")
	}
	return r, nil
}

// DefaultHandshakeRequest is the body a stock pomelo JS websocket client sends.
func DefaultHandshakeRequest() []byte {
	return []byte(`{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{}},"user":{}}`)
}

// Dict is a route dictionary: every server route numbered from 1 in sorted order.
// It is immutable after NewDict and safe for concurrent use.
type Dict struct {
	routes  []string          // routes[code-1]; "" for a missing code
	sparse  map[uint16]string // instead of routes when the codes are far apart
	codes   map[string]uint16
	version string
}

// NewDict numbers the given routes from 1 after sorting them, as pomelo does.
func NewDict(routes []string) *Dict {
	sorted := append([]string(nil), routes...)
	sort.Strings(sorted)
	d := &Dict{codes: make(map[string]uint16, len(sorted))}
	h := sha1.New()
	for _, r := range sorted {
		if _, dup := d.codes[r]; dup {
			continue
		}
		d.routes = append(d.routes, r)
		d.codes[r] = uint16(len(d.routes))
		h.Write([]byte(r))
		h.Write([]byte{0})
	}
	d.version = hex.EncodeToString(h.Sum(nil))[:16]
	return d
}

// DictFromHandshake rebuilds a client-side dictionary from a server handshake.
// It accepts either routeToCode or dict (older servers send only dict); a nil
// sys gives an empty dictionary. Code 0 is ignored; when two routes claim one
// code the smaller route wins, so the result does not depend on map order.
// Its memory is proportional to the number of routes, not to the largest code.
func DictFromHandshake(sys *ServerSys) *Dict {
	d := &Dict{codes: map[string]uint16{}}
	if sys == nil {
		return d
	}
	d.version = sys.DictVersion
	src := sys.RouteToCode
	if len(src) == 0 {
		src = sys.Dict
	}
	names := make([]string, 0, len(src))
	for r, c := range src {
		if c != 0 {
			names = append(names, r)
		}
	}
	sort.Strings(names)
	byCode := make(map[uint16]string, len(names))
	max := 0
	for _, r := range names {
		c := src[r]
		if _, taken := byCode[c]; taken {
			continue
		}
		byCode[c] = r
		d.codes[r] = c
		if int(c) > max {
			max = int(c)
		}
	}
	if max <= 2*len(byCode)+16 {
		d.routes = make([]string, max)
		for c, r := range byCode {
			d.routes[c-1] = r
		}
	} else {
		d.sparse = byCode
	}
	return d
}

// Code returns the code of route.
func (d *Dict) Code(route string) (uint16, bool) {
	if d == nil {
		return 0, false
	}
	c, ok := d.codes[route]
	return c, ok
}

// Route returns the route of code.
func (d *Dict) Route(code uint16) (string, bool) {
	if d == nil || code == 0 {
		return "", false
	}
	if d.sparse != nil {
		r, ok := d.sparse[code]
		return r, ok
	}
	if int(code) > len(d.routes) || d.routes[code-1] == "" {
		return "", false
	}
	return d.routes[code-1], true
}

// Version identifies the dictionary's content.
func (d *Dict) Version() string { return d.version }

// Routes returns the routes in code order ("" for a missing code in a
// dictionary rebuilt from a handshake; a sparse one lists only its routes).
func (d *Dict) Routes() []string {
	if d.sparse != nil {
		codes := make([]int, 0, len(d.sparse))
		for c := range d.sparse {
			codes = append(codes, int(c))
		}
		sort.Ints(codes)
		out := make([]string, len(codes))
		for i, c := range codes {
			out[i] = d.sparse[uint16(c)]
		}
		return out
	}
	return append([]string(nil), d.routes...)
}

// FillSys fills the dictionary fields of a server handshake.
func (d *Dict) FillSys(sys *ServerSys) {
	sys.UseDict = true
	sys.DictVersion = d.version
	sys.Dict = make(map[string]uint16, len(d.codes))
	sys.RouteToCode = make(map[string]uint16, len(d.codes))
	sys.CodeToRoute = make(map[string]string, len(d.codes))
	for r, c := range d.codes {
		sys.Dict[r] = c
		sys.RouteToCode[r] = c
		sys.CodeToRoute[strconv.Itoa(int(c))] = r
	}
}

// Resolve fills m.Route from m.RouteCode when the route was compressed.
func (d *Dict) Resolve(m *Message) error {
	if !m.Compressed {
		return nil
	}
	r, ok := d.Route(m.RouteCode)
	if !ok {
		return fmt.Errorf("%w: unknown route code %d", ErrMessage, m.RouteCode)
	}
	m.Route = r
	return nil
}
