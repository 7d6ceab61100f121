package pomelo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
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

// DecodeServer decodes a protobuf body the server sent on route (a push or
// a response) into JSON.
func (p *Protos) DecodeServer(route string, body []byte) ([]byte, error) {
	return p.AppendDecodeServer(nil, route, body)
}

// AppendDecodeServer is DecodeServer appending to dst (returned unchanged on
// error), so a hot path can reuse a buffer: with enough capacity it does not
// allocate.
func (p *Protos) AppendDecodeServer(dst []byte, route string, body []byte) ([]byte, error) {
	return p.appendDecode(dst, true, route, body)
}

// HasServerBytes is HasServer for a route held as bytes (as
// ParseMessageRoute returns it); it does not allocate.
func (p *Protos) HasServerBytes(route []byte) bool {
	return p != nil && p.server.routes[string(route)] != nil
}

// AppendDecodeServerBytes is AppendDecodeServer for a route held as bytes:
// unlike string(route) passed to AppendDecodeServer, it does not allocate.
func (p *Protos) AppendDecodeServerBytes(dst []byte, route, body []byte) ([]byte, error) {
	var m *protoMsg
	if p != nil {
		m = p.server.routes[string(route)]
	}
	if m == nil {
		return p.appendDecode(dst, true, string(route), body) // the error
	}
	out, perr := decodeProtoMsg(dst, m, body, 0, 0)
	if perr != nil {
		perr.Route = string(route)
		return dst, perr
	}
	return out, nil
}

// DecodeClient decodes a protobuf body a client sent on route into JSON.
func (p *Protos) DecodeClient(route string, body []byte) ([]byte, error) {
	return p.AppendDecodeClient(nil, route, body)
}

// AppendDecodeClient is DecodeClient appending to dst.
func (p *Protos) AppendDecodeClient(dst []byte, route string, body []byte) ([]byte, error) {
	return p.appendDecode(dst, false, route, body)
}

// EncodeServer encodes a JSON body for route with the server protos, as a
// stock pomelo server does for pushes and responses.
func (p *Protos) EncodeServer(route string, jsonBody []byte) ([]byte, error) {
	return p.AppendEncodeServer(nil, route, jsonBody)
}

// AppendEncodeServer is EncodeServer appending to dst (returned unchanged on error).
func (p *Protos) AppendEncodeServer(dst []byte, route string, jsonBody []byte) ([]byte, error) {
	return p.appendEncode(dst, true, route, jsonBody)
}

// EncodeClient encodes a JSON request body for route with the client protos,
// as a stock pomelo client does.
func (p *Protos) EncodeClient(route string, jsonBody []byte) ([]byte, error) {
	return p.AppendEncodeClient(nil, route, jsonBody)
}

// AppendEncodeClient is EncodeClient appending to dst.
func (p *Protos) AppendEncodeClient(dst []byte, route string, jsonBody []byte) ([]byte, error) {
	return p.appendEncode(dst, false, route, jsonBody)
}

func (p *Protos) appendDecode(dst []byte, server bool, route string, body []byte) ([]byte, error) {
	m, err := p.msg(server, route)
	if err != nil {
		return dst, err
	}
	out, perr := decodeProtoMsg(dst, m, body, 0, 0)
	if perr != nil {
		perr.Route = route
		return dst, perr
	}
	return out, nil
}

func (p *Protos) appendEncode(dst []byte, server bool, route string, jsonBody []byte) ([]byte, error) {
	m, err := p.msg(server, route)
	if err != nil {
		return dst, err
	}
	out, perr := encodeProtoMsg(dst, m, jsonBody, 0)
	if perr != nil {
		perr.Route = route
		return dst, perr
	}
	return out, nil
}

// ---- decoding ----

func decodeErr(f *protoField, wt int, off int, format string, args ...any) *ProtoError {
	e := &ProtoError{WireType: wt, Offset: off, Msg: fmt.Sprintf(format, args...)}
	if f != nil {
		e.Path, e.Tag = f.name, f.tag
	}
	return e
}

// within prefixes the path of an error from a nested message or element.
func within(e *ProtoError, f *protoField, idx int) *ProtoError {
	p := f.name
	if idx >= 0 {
		p += "[" + strconv.Itoa(idx) + "]"
	}
	if e.Path != "" {
		p += "." + e.Path
	}
	e.Path = p
	return e
}

// protoEntry is one key/value of a message body.
type protoEntry struct {
	f     *protoField
	wt    int
	off   int    // offset of data in the message
	data  []byte // scalar bytes, length-delimited payload, or packed elements
	count int    // elements in data: -1 for standard packed (until the end)
}

// scalarLen is the length of the first element of kind k in b, 0 if b is
// too short or the varint is too long.
func scalarLen(k protoKind, b []byte) int {
	switch k.wireType() {
	case 5:
		if len(b) < 4 {
			return 0
		}
		return 4
	case 1:
		if len(b) < 8 {
			return 0
		}
		return 8
	}
	_, n := binary.Uvarint(b)
	if n <= 0 {
		return 0
	}
	return n
}

// nextEntry reads the entry at b[off:] of message m into *e and returns the
// offset of the next one. (An out parameter: returning the struct cost more
// than the rest of the work.)
func nextEntry(m *protoMsg, b []byte, off int, e *protoEntry) (int, *ProtoError) {
	key, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return 0, decodeErr(nil, -1, off, "bad field key varint")
	}
	if key>>3 > math.MaxUint32 {
		return 0, decodeErr(nil, -1, off, "field key %d out of range", key)
	}
	tag, wt := uint32(key>>3), int(key&7)
	f := m.field(tag)
	if f == nil {
		return 0, &ProtoError{Tag: tag, WireType: wt, Offset: off, Msg: fmt.Sprintf("unknown tag in message %q", m.name)}
	}
	off += n
	*e = protoEntry{f: f, wt: wt, count: 1}
	want := f.kind.wireType()
	switch {
	case f.label == labelRepeated && f.kind.packed() && wt == 2, wt == 2 && want == 2:
		l, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, decodeErr(f, wt, off, "bad length varint")
		}
		off += n
		if l > uint64(len(b)-off) {
			return 0, decodeErr(f, wt, off, "length %d past the end (%d bytes left)", l, len(b)-off)
		}
		e.off, e.data = off, b[off:off+int(l)]
		if want != 2 { // standard packed
			e.count = -1
			for rest := e.data; len(rest) > 0; {
				sl := scalarLen(f.kind, rest)
				if sl == 0 {
					return 0, decodeErr(f, wt, off+len(e.data)-len(rest), "truncated packed %s element", f.typeName)
				}
				rest = rest[sl:]
			}
		}
		return off + int(l), nil
	case wt != want:
		return 0, decodeErr(f, wt, off, "want wire type %d for %s", want, f.typeName)
	case f.label == labelRepeated && f.kind.packed():
		c, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, decodeErr(f, wt, off, "bad element count varint")
		}
		off += n
		start := off
		for i := uint64(0); i < c; i++ {
			sl := scalarLen(f.kind, b[off:])
			if sl == 0 {
				return 0, decodeErr(f, wt, off, "packed count %d but the body ends after %d elements", c, i)
			}
			off += sl
		}
		e.off, e.data, e.count = start, b[start:off], int(c)
		return off, nil
	default:
		sl := scalarLen(f.kind, b[off:])
		if sl == 0 {
			return 0, decodeErr(f, wt, off, "truncated %s value", f.typeName)
		}
		e.off, e.data = off, b[off:off+sl]
		return off + sl, nil
	}
}

func decodeProtoMsg(dst []byte, m *protoMsg, b []byte, base, depth int) ([]byte, *ProtoError) {
	if depth > maxProtoDepth {
		return dst, decodeErr(nil, -1, base, "messages nested deeper than %d", maxProtoDepth)
	}
	inOrder, perr := checkEntries(m, b, base)
	if perr != nil {
		return dst, perr
	}
	if inOrder {
		return decodeInOrder(dst, m, b, base, depth)
	}
	// General path: the fields in tag order, each gathered from the whole
	// body (a non-repeated field's last value wins).
	var e protoEntry
	dst = append(dst, '{')
	first := true
	for i := range m.fields {
		f := &m.fields[i]
		var last protoEntry
		found, idx := false, 0
		for off := 0; off < len(b); {
			off, _ = nextEntry(m, b, off, &e)
			if e.f != f {
				continue
			}
			if f.label != labelRepeated {
				last, found = e, true
				continue
			}
			if !found {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = append(dst, f.key...)
				dst = append(dst, '[')
				found = true
			}
			var err *ProtoError
			dst, idx, err = decodeElements(dst, f, e, idx, base, depth)
			if err != nil {
				return dst, err
			}
		}
		if f.label == labelRepeated {
			if found {
				dst = append(dst, ']')
			}
			continue
		}
		if !found {
			if f.label == labelRequired {
				return dst, decodeErr(f, -1, base, "required field missing")
			}
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.key...)
		var err *ProtoError
		dst, _, err = decodeValue(dst, f, last.data, base+last.off, depth)
		if err != nil {
			return dst, within(err, f, -1)
		}
	}
	return append(dst, '}'), nil
}

// checkEntries walks the entries of a message body: it reports structure
// errors (keys, unknown tags, wire types, lengths) and whether the body is
// in order: fields in tag order, only a repeated field's entries adjacent to
// each other, every required field present. That is what pomelo writes for
// a JSON object whose keys follow the proto, and it is decoded in one walk.
func checkEntries(m *protoMsg, b []byte, base int) (inOrder bool, perr *ProtoError) {
	var e protoEntry
	inOrder = true
	next, open := 0, -1
	for off := 0; off < len(b); {
		n, err := nextEntry(m, b, off, &e)
		if err != nil {
			err.Offset += base
			return false, err
		}
		off = n
		if !inOrder || e.f.index == open {
			continue
		}
		if e.f.index < next {
			inOrder = false
			continue
		}
		for _, skipped := range m.fields[next:e.f.index] {
			if skipped.label == labelRequired {
				inOrder = false
			}
		}
		next, open = e.f.index+1, -1
		if e.f.label == labelRepeated {
			open = e.f.index
		}
	}
	for _, rest := range m.fields[next:] {
		if rest.label == labelRequired {
			inOrder = false
		}
	}
	return inOrder, nil
}

// decodeInOrder decodes a body that checkEntries found in order.
func decodeInOrder(dst []byte, m *protoMsg, b []byte, base, depth int) ([]byte, *ProtoError) {
	dst = append(dst, '{')
	var e protoEntry
	var err *ProtoError
	open, elems := -1, 0 // the repeated field whose array is open
	first := true
	for off := 0; off < len(b); {
		off, _ = nextEntry(m, b, off, &e)
		f := e.f
		if f.index == open {
			if dst, elems, err = decodeElements(dst, f, e, elems, base, depth); err != nil {
				return dst, err
			}
			continue
		}
		if open >= 0 {
			dst = append(dst, ']')
			open = -1
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.key...)
		if f.label == labelRepeated {
			dst = append(dst, '[')
			open = f.index
			if dst, elems, err = decodeElements(dst, f, e, 0, base, depth); err != nil {
				return dst, err
			}
		} else if dst, _, err = decodeValue(dst, f, e.data, base+e.off, depth); err != nil {
			return dst, within(err, f, -1)
		}
	}
	if open >= 0 {
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

// decodeElements appends the elements of one entry of repeated field f,
// numbering them from idx.
func decodeElements(dst []byte, f *protoField, e protoEntry, idx, base, depth int) ([]byte, int, *ProtoError) {
	if !f.kind.packed() {
		if idx > 0 {
			dst = append(dst, ',')
		}
		dst, _, err := decodeValue(dst, f, e.data, base+e.off, depth)
		if err != nil {
			return dst, idx, within(err, f, idx)
		}
		return dst, idx + 1, nil
	}
	data, off := e.data, base+e.off
	for n := 0; (e.count < 0 && len(data) > 0) || n < e.count; n++ {
		if idx > 0 {
			dst = append(dst, ',')
		}
		var used int
		var err *ProtoError
		dst, used, err = decodeValue(dst, f, data, off, depth)
		if err != nil {
			return dst, idx, within(err, f, idx)
		}
		data, off = data[used:], off+used
		idx++
	}
	return dst, idx, nil
}

// decodeValue appends the JSON of one value of f read from the front of b
// (b is the whole payload for length-delimited kinds) and says how many
// bytes it used. Errors carry f's tag; the caller adds the path.
func decodeValue(dst []byte, f *protoField, b []byte, off, depth int) ([]byte, int, *ProtoError) {
	fail := func(format string, args ...any) *ProtoError {
		e := decodeErr(nil, -1, off, format, args...)
		e.Tag = f.tag
		return e
	}
	switch f.kind {
	case kindString:
		return appendJSONString(dst, b), len(b), nil
	case kindObject:
		if !json.Valid(b) {
			return dst, 0, fail("object value is not valid JSON")
		}
		return append(dst, bytes.TrimSpace(b)...), len(b), nil
	case kindMessage:
		out, err := decodeProtoMsg(dst, f.msg, b, off, depth+1)
		if err != nil {
			return dst, 0, err
		}
		return out, len(b), nil
	case kindFloat:
		v := math.Float32frombits(binary.LittleEndian.Uint32(b))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return dst, 0, fail("float %v has no JSON form", v)
		}
		return strconv.AppendFloat(dst, float64(v), 'g', -1, 32), 4, nil
	case kindDouble:
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, 0, fail("double %v has no JSON form", v)
		}
		return strconv.AppendFloat(dst, v, 'g', -1, 64), 8, nil
	}
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return dst, 0, fail("bad varint") // not reached: checked by nextEntry
	}
	switch f.kind {
	case kindUInt32, kindUInt64:
		dst = strconv.AppendUint(dst, v, 10)
	case kindInt32, kindSInt32, kindInt64, kindSInt64:
		dst = strconv.AppendInt(dst, unzigzag(v), 10)
	case kindBool:
		dst = strconv.AppendBool(dst, v != 0)
	}
	return dst, n, nil
}

func unzigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// AppendJSONString appends s as a JSON string without reflection: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by
// U+FFFD and U+2028/U+2029 escaped, as encoding/json does (it leaves <, >
// and & alone: bodies are data, pages render them as text). Push encoders
// and the protobuf decoder share it.
func AppendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONString is AppendJSONString over bytes, without copying them.
func appendJSONString(dst, s []byte) []byte {
	return AppendJSONString(dst, unsafe.String(unsafe.SliceData(s), len(s)))
}

// ---- encoding ----

func encodeErr(f *protoField, format string, args ...any) *ProtoError {
	e := &ProtoError{WireType: -1, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	if f != nil {
		e.Path, e.Tag = f.name, f.tag
	}
	return e
}

func appendKey(dst []byte, tag uint32, wt int) []byte {
	return binary.AppendUvarint(dst, uint64(tag)<<3|uint64(wt))
}

func encodeProtoMsg(dst []byte, m *protoMsg, raw []byte, depth int) ([]byte, *ProtoError) {
	if depth > maxProtoDepth {
		return dst, encodeErr(nil, "messages nested deeper than %d", maxProtoDepth)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		msg := "want a JSON object"
		if err != nil {
			msg += ": " + err.Error()
		}
		return dst, encodeErr(nil, "message %q: %s", m.name, msg)
	}
	for i := range m.fields {
		f := &m.fields[i]
		v, ok := obj[f.name]
		if !ok || string(v) == "null" {
			if f.label == labelRequired {
				return dst, encodeErr(f, "required field missing")
			}
			continue
		}
		if f.label != labelRepeated {
			dst = appendKey(dst, f.tag, f.kind.wireType())
			var err *ProtoError
			if dst, err = encodeValue(dst, f, v, depth); err != nil {
				return dst, within(err, f, -1)
			}
			continue
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(v, &elems); err != nil {
			return dst, encodeErr(f, "repeated field wants a JSON array")
		}
		if len(elems) == 0 {
			continue // pomelo writes nothing for an empty array
		}
		if f.kind.packed() {
			dst = appendKey(dst, f.tag, f.kind.wireType())
			dst = binary.AppendUvarint(dst, uint64(len(elems)))
		}
		for j, el := range elems {
			if !f.kind.packed() {
				dst = appendKey(dst, f.tag, f.kind.wireType())
			}
			var err *ProtoError
			if dst, err = encodeValue(dst, f, el, depth); err != nil {
				return dst, within(err, f, j)
			}
		}
	}
	return dst, nil
}

// encodeValue appends one value of f (no key) from its JSON.
func encodeValue(dst []byte, f *protoField, raw json.RawMessage, depth int) ([]byte, *ProtoError) {
	raw = bytes.TrimSpace(raw)
	fail := func(format string, args ...any) *ProtoError {
		e := encodeErr(nil, format, args...)
		e.Tag = f.tag
		return e
	}
	isNumber := len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
	switch f.kind {
	case kindString:
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return dst, fail("want a JSON string for string, got %.32s", raw)
		}
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		return append(dst, s...), nil
	case kindObject:
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return dst, fail("object value: %v", err)
		}
		dst = binary.AppendUvarint(dst, uint64(buf.Len()))
		return append(dst, buf.Bytes()...), nil
	case kindMessage:
		start := len(dst)
		out, err := encodeProtoMsg(dst, f.msg, raw, depth+1)
		if err != nil {
			return dst[:start], err
		}
		return prefixLength(out, start), nil
	case kindBool:
		switch string(raw) {
		case "true":
			return append(dst, 1), nil
		case "false":
			return append(dst, 0), nil
		}
		return dst, fail("want true or false for bool, got %.32s", raw)
	case kindFloat, kindDouble:
		if !isNumber {
			return dst, fail("want a JSON number for %s, got %.32s", f.typeName, raw)
		}
		if f.kind == kindFloat {
			v, err := strconv.ParseFloat(string(raw), 32)
			if err != nil {
				return dst, fail("%s out of float range", raw)
			}
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(v))), nil
		}
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return dst, fail("%s out of double range", raw)
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v)), nil
	}
	if !isNumber {
		return dst, fail("want a JSON number for %s, got %.32s", f.typeName, raw)
	}
	switch f.kind {
	case kindUInt32, kindUInt64:
		v, ok := jsonUint(raw)
		if !ok {
			return dst, fail("%s is not a %s (an integer in 0..2^64-1)", raw, f.typeName)
		}
		return binary.AppendUvarint(dst, v), nil
	default: // int32, sInt32, int64, sInt64: zigzag
		v, ok := jsonInt(raw)
		if !ok {
			return dst, fail("%s is not a %s (an integer in -2^63..2^63-1)", raw, f.typeName)
		}
		return binary.AppendUvarint(dst, zigzag(v)), nil
	}
}

// prefixLength turns dst[start:] into a length-delimited value in place.
func prefixLength(dst []byte, start int) []byte {
	n := len(dst) - start
	var lenBuf [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(lenBuf[:], uint64(n))
	dst = append(dst, lenBuf[:l]...)
	copy(dst[start+l:], dst[start:start+n])
	copy(dst[start:], lenBuf[:l])
	return dst
}

// jsonUint and jsonInt read an integral JSON number (1, 1.0 and 1e3 are
// integral; 1.5 is not).
func jsonUint(raw []byte) (uint64, bool) {
	if v, err := strconv.ParseUint(string(raw), 10, 64); err == nil {
		return v, true
	} else if !bytes.ContainsAny(raw, ".eE") {
		return 0, false // an integer literal out of range: no float rounding
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f >= 1<<64 {
		return 0, false
	}
	return uint64(f), true
}

func jsonInt(raw []byte) (int64, bool) {
	if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return v, true
	} else if !bytes.ContainsAny(raw, ".eE") {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}
