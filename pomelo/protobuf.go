package pomelo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// pomelo-protobuf bodies.
//
// A server that uses pomelo-protobuf announces its definitions in the
// handshake as sys.protos = {"server":{route:def,...},"client":{...},
// "version":V}. Bodies of the routes in "server" (pushes and responses) are
// protobuf, and so are the bodies a client sends on the routes in "client".
//
// A def is either the source form of a protos JSON file,
//
//	{"required string msg": 1, "repeated Item items": 2, "message Item": {"optional uInt32 id": 1}}
//
// or the parsed form pomelo-protobuf's parser produces and stock pomelo
// servers actually put in the handshake,
//
//	{"msg": {"option":"required","type":"string","tag":1}, "__messages": {...}, "__tags": {...}}
//
// Top-level "message Name" entries of server/client are shared message types.
//
// Wire format, as pomelo-protobuf writes it (which is not quite Google's):
//   - uInt32, uInt64: varint. int32, sInt32, int64, sInt64: zigzag varint
//     (pomelo-protobuf encodes int32 exactly like sInt32). The 32-bit types
//     are not held to 32 bits: pomelo-protobuf writes any JS integer in them
//     (apps put millisecond timestamps in uInt32), so they carry 64-bit
//     values both ways. bool: varint 0/1.
//     float: 32-bit little-endian (wire type 5), double: 64-bit (wire type 1).
//     string: length-delimited UTF-8. object: length-delimited JSON text.
//     A message: length-delimited.
//   - repeated numeric and bool fields are "packed" the pomelo way: ONE key
//     with the element's own wire type, then a varint element COUNT, then the
//     elements. The decoder also accepts standard packed (wire type 2, byte
//     length). Repeated string, object and message fields repeat key+value.
//   - Required fields must be present (encoder and decoder), unknown JSON
//     keys are ignored by the encoder (as pomelo does), unknown tags in a body
//     are an error, the last value of a repeated non-repeated field wins.
//
// The decoder writes JSON with the fields in tag order; it never panics,
// allocates only its output, and reports errors as *ProtoError.

// ErrProtobuf is wrapped by every protobuf definition, encode and decode error.
var ErrProtobuf = errors.New("pomelo: protobuf")

// ProtoError locates a protobuf encode or decode failure.
type ProtoError struct {
	Route    string // the route whose proto was used
	Path     string // field path in the message, e.g. "items[2].name"; "" for the message itself
	Tag      uint32 // field tag, 0 when unknown
	WireType int    // wire type read from the body, -1 when not relevant
	Offset   int    // byte offset in the protobuf body, -1 when encoding
	Msg      string
}

func (e *ProtoError) Error() string {
	var b strings.Builder
	b.WriteString("pomelo: protobuf")
	if e.Route != "" {
		fmt.Fprintf(&b, ": route %q", e.Route)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, ": field %q", e.Path)
	}
	if e.Tag != 0 {
		fmt.Fprintf(&b, " tag %d", e.Tag)
	}
	if e.WireType >= 0 {
		fmt.Fprintf(&b, " wire type %d", e.WireType)
	}
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " at byte %d", e.Offset)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrProtobuf) true.
func (e *ProtoError) Unwrap() error { return ErrProtobuf }

// maxProtoDepth bounds message nesting in bodies and JSON.
const maxProtoDepth = 64

type protoKind uint8

const (
	kindUInt32 protoKind = iota + 1
	kindInt32
	kindSInt32
	kindUInt64
	kindInt64
	kindSInt64
	kindBool
	kindFloat
	kindDouble
	kindString
	kindObject
	kindMessage
)

var protoKinds = map[string]protoKind{
	"uInt32": kindUInt32, "uint32": kindUInt32,
	"int32":  kindInt32,
	"sInt32": kindSInt32, "sint32": kindSInt32,
	"uInt64": kindUInt64, "uint64": kindUInt64,
	"int64":  kindInt64,
	"sInt64": kindSInt64, "sint64": kindSInt64,
	"bool": kindBool, "boolean": kindBool,
	"float":  kindFloat,
	"double": kindDouble,
	"string": kindString,
	"object": kindObject,
}

// wireType is the wire type of one value of kind k.
func (k protoKind) wireType() int {
	switch k {
	case kindFloat:
		return 5
	case kindDouble:
		return 1
	case kindString, kindObject, kindMessage:
		return 2
	}
	return 0
}

// packed reports whether repeated values of kind k share one key.
func (k protoKind) packed() bool { return k <= kindDouble }

type protoLabel uint8

const (
	labelRequired protoLabel = iota + 1
	labelOptional
	labelRepeated
)

var protoLabels = map[string]protoLabel{"required": labelRequired, "optional": labelOptional, "repeated": labelRepeated}

type protoField struct {
	name     string
	key      []byte // `"name":`
	label    protoLabel
	kind     protoKind
	typeName string
	msg      *protoMsg // kindMessage
	tag      uint32
	index    int // in protoMsg.fields
}

type protoMsg struct {
	name   string
	fields []protoField // sorted by tag
	nested map[string]*protoMsg
	parent *protoMsg
}

func (m *protoMsg) field(tag uint32) *protoField {
	i := sort.Search(len(m.fields), func(i int) bool { return m.fields[i].tag >= tag })
	if i < len(m.fields) && m.fields[i].tag == tag {
		return &m.fields[i]
	}
	return nil
}

type protoSet struct {
	routes  map[string]*protoMsg
	globals map[string]*protoMsg
}

// Protos holds the pomelo-protobuf definitions of a handshake's sys.protos.
// It is immutable after ParseProtos and safe for concurrent use. A nil
// *Protos has no routes.
type Protos struct {
	// Version is sys.protos.version as sent (a number or a string), or nil.
	// Clients echo it as sys.protoVersion in later handshakes.
	Version json.RawMessage
	server  protoSet
	client  protoSet
}

// ParseProtos parses sys.protos of a server handshake:
// {"server":{...},"client":{...},"version":V}. Either side may be absent.
// Definitions may be in source or parsed form (see the package notes in
// protobuf.go); every field type must resolve.
func ParseProtos(raw json.RawMessage) (*Protos, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("%w: protos: want a JSON object: %v", ErrProtobuf, err)
	}
	p := &Protos{}
	if v, ok := top["version"]; ok && string(v) != "null" {
		p.Version = append(json.RawMessage(nil), v...)
	}
	var err error
	if p.server, err = parseProtoSet(top["server"], "server"); err != nil {
		return nil, err
	}
	if p.client, err = parseProtoSet(top["client"], "client"); err != nil {
		return nil, err
	}
	return p, nil
}

func parseProtoSet(raw json.RawMessage, side string) (protoSet, error) {
	s := protoSet{routes: map[string]*protoMsg{}, globals: map[string]*protoMsg{}}
	if len(raw) == 0 || string(raw) == "null" {
		return s, nil
	}
	var defs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &defs); err != nil {
		return s, fmt.Errorf("%w: protos.%s: want an object: %v", ErrProtobuf, side, err)
	}
	for key, def := range defs {
		parts := strings.Fields(key)
		if len(parts) == 2 && parts[0] == "message" {
			m, err := parseProtoMsg(def, parts[1], nil)
			if err != nil {
				return s, fmt.Errorf("%w: protos.%s: %q: %v", ErrProtobuf, side, key, err)
			}
			s.globals[parts[1]] = m
			continue
		}
		m, err := parseProtoMsg(def, key, nil)
		if err != nil {
			return s, fmt.Errorf("%w: protos.%s: route %q: %v", ErrProtobuf, side, key, err)
		}
		s.routes[key] = m
	}
	for _, m := range s.globals {
		if err := s.resolve(m); err != nil {
			return s, fmt.Errorf("%w: protos.%s: message %q: %v", ErrProtobuf, side, m.name, err)
		}
	}
	for r, m := range s.routes {
		if err := s.resolve(m); err != nil {
			return s, fmt.Errorf("%w: protos.%s: route %q: %v", ErrProtobuf, side, r, err)
		}
	}
	return s, nil
}

// resolve links the message-typed fields of m and its nested messages: the
// type is looked up in m's nested messages, then its parents', then the
// shared top-level ones.
func (s *protoSet) resolve(m *protoMsg) error {
	for i := range m.fields {
		f := &m.fields[i]
		if f.kind != kindMessage {
			continue
		}
		for scope := m; scope != nil && f.msg == nil; scope = scope.parent {
			f.msg = scope.nested[f.typeName]
		}
		if f.msg == nil {
			f.msg = s.globals[f.typeName]
		}
		if f.msg == nil {
			return fmt.Errorf("field %q: unknown type %q", f.name, f.typeName)
		}
	}
	for _, n := range m.nested {
		if err := s.resolve(n); err != nil {
			return fmt.Errorf("message %q: %w", n.name, err)
		}
	}
	return nil
}

type parsedField struct {
	Option string          `json:"option"`
	Type   string          `json:"type"`
	Tag    json.RawMessage `json:"tag"`
}

func parseProtoMsg(raw json.RawMessage, name string, parent *protoMsg) (*protoMsg, error) {
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, fmt.Errorf("definition is not a JSON object")
	}
	m := &protoMsg{name: name, parent: parent, nested: map[string]*protoMsg{}}
	addNested := func(n string, def json.RawMessage) error {
		if _, dup := m.nested[n]; dup {
			return fmt.Errorf("message %q defined twice", n)
		}
		nm, err := parseProtoMsg(def, n, m)
		if err != nil {
			return fmt.Errorf("message %q: %w", n, err)
		}
		m.nested[n] = nm
		return nil
	}
	for key, val := range entries {
		switch key {
		case "__tags":
			continue // derived from the fields
		case "__messages":
			var ms map[string]json.RawMessage
			if err := json.Unmarshal(val, &ms); err != nil {
				return nil, fmt.Errorf("__messages is not an object")
			}
			for n, def := range ms {
				if err := addNested(n, def); err != nil {
					return nil, err
				}
			}
			continue
		}
		parts := strings.Fields(key)
		var f protoField
		var tag json.RawMessage
		switch {
		case len(parts) == 2 && parts[0] == "message":
			if err := addNested(parts[1], val); err != nil {
				return nil, err
			}
			continue
		case len(parts) == 3:
			f.name, f.typeName, tag = parts[2], parts[1], val
			f.label = protoLabels[parts[0]]
			if f.label == 0 {
				return nil, fmt.Errorf("%q: unknown option %q", key, parts[0])
			}
		case len(parts) == 1:
			var pf parsedField
			if err := json.Unmarshal(val, &pf); err != nil {
				return nil, fmt.Errorf("field %q: want {option,type,tag}: %v", key, err)
			}
			f.name, f.typeName, tag = key, pf.Type, pf.Tag
			f.label = protoLabels[pf.Option]
			if f.label == 0 {
				return nil, fmt.Errorf("field %q: unknown option %q", key, pf.Option)
			}
		default:
			return nil, fmt.Errorf("%q: want \"option type name\" or \"message Name\"", key)
		}
		t, err := strconv.ParseUint(strings.Trim(string(bytes.TrimSpace(tag)), `"`), 10, 32)
		if err != nil || t == 0 || t > 1<<29-1 {
			return nil, fmt.Errorf("field %q: tag %s is not in 1..%d", f.name, tag, 1<<29-1)
		}
		f.tag = uint32(t)
		if k, ok := protoKinds[f.typeName]; ok {
			f.kind = k
		} else if f.typeName != "" {
			f.kind = kindMessage
		} else {
			return nil, fmt.Errorf("field %q: no type", f.name)
		}
		f.key = append(appendJSONString(nil, []byte(f.name)), ':')
		m.fields = append(m.fields, f)
	}
	sort.Slice(m.fields, func(i, j int) bool { return m.fields[i].tag < m.fields[j].tag })
	for i := range m.fields {
		m.fields[i].index = i
	}
	for i := 1; i < len(m.fields); i++ {
		if m.fields[i].tag == m.fields[i-1].tag {
			return nil, fmt.Errorf("fields %q and %q share tag %d", m.fields[i-1].name, m.fields[i].name, m.fields[i].tag)
		}
	}
	seen := make(map[string]bool, len(m.fields))
	for _, f := range m.fields {
		if seen[f.name] {
			return nil, fmt.Errorf("field %q defined twice", f.name)
		}
		seen[f.name] = true
	}
	return m, nil
}

// MarshalJSON writes p in the parsed form that stock pomelo servers send as
// sys.protos and stock clients read ({option,type,tag} per field, __messages,
// __tags), so a server can announce protos with json.Marshal(p).
func (p *Protos) MarshalJSON() ([]byte, error) {
	out := map[string]any{"server": p.server.parsedForm(), "client": p.client.parsedForm()}
	if len(p.Version) > 0 {
		out["version"] = p.Version
	}
	return json.Marshal(out)
}

func (s protoSet) parsedForm() map[string]any {
	o := make(map[string]any, len(s.routes)+len(s.globals))
	for r, m := range s.routes {
		o[r] = m.parsedForm()
	}
	for n, m := range s.globals {
		o["message "+n] = m.parsedForm()
	}
	return o
}

var labelNames = map[protoLabel]string{labelRequired: "required", labelOptional: "optional", labelRepeated: "repeated"}

func (m *protoMsg) parsedForm() map[string]any {
	o := make(map[string]any, len(m.fields)+2)
	tags := make(map[string]string, len(m.fields))
	for _, f := range m.fields {
		o[f.name] = map[string]any{"option": labelNames[f.label], "type": f.typeName, "tag": f.tag}
		tags[strconv.FormatUint(uint64(f.tag), 10)] = f.name
	}
	nested := make(map[string]any, len(m.nested))
	for n, nm := range m.nested {
		nested[n] = nm.parsedForm()
	}
	o["__messages"] = nested
	o["__tags"] = tags
	return o
}

// HasServer reports whether route's server-to-client bodies are protobuf.
func (p *Protos) HasServer(route string) bool { return p != nil && p.server.routes[route] != nil }

// HasClient reports whether route's client-to-server bodies are protobuf.
func (p *Protos) HasClient(route string) bool { return p != nil && p.client.routes[route] != nil }

// ServerRoutes and ClientRoutes list the routes with protobuf bodies, sorted.
func (p *Protos) ServerRoutes() []string { return p.routes(true) }

// ClientRoutes lists the client routes with protobuf bodies, sorted.
func (p *Protos) ClientRoutes() []string { return p.routes(false) }

// Field is one field of a pomelo-protobuf message as declared.
type Field struct {
	Name  string
	Tag   uint32
	Type  string // as declared: "string", "uInt32", ..., or a message type name
	Label string // "required", "optional" or "repeated"
}

// ServerFields lists the fields of route's server-to-client message in tag
// order, so a reader can pick fields out of a body by tag; nil when route
// has no server proto.
func (p *Protos) ServerFields(route string) []Field {
	if p == nil || p.server.routes[route] == nil {
		return nil
	}
	m := p.server.routes[route]
	out := make([]Field, len(m.fields))
	for i, f := range m.fields {
		out[i] = Field{Name: f.name, Tag: f.tag, Type: f.typeName, Label: labelNames[f.label]}
	}
	return out
}

func (p *Protos) routes(server bool) []string {
	if p == nil {
		return nil
	}
	s := p.client
	if server {
		s = p.server
	}
	out := make([]string, 0, len(s.routes))
	for r := range s.routes {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func (p *Protos) msg(server bool, route string) (*protoMsg, error) {
	var m *protoMsg
	if p != nil {
		if server {
			m = p.server.routes[route]
		} else {
			m = p.client.routes[route]
		}
	}
	if m == nil {
		side := "client"
		if server {
			side = "server"
		}
		return nil, &ProtoError{Route: route, WireType: -1, Offset: -1, Msg: "no " + side + " proto for this route"}
	}
	return m, nil
}
