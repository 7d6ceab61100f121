package pomelo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

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
	return p.appendDecode(nil, false, route, body)
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
