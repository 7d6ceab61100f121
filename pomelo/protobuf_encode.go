package pomelo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

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
	return p.appendEncode(nil, false, route, jsonBody)
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

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

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
