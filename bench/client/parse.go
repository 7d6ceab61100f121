package client

import (
	"bytes"
	"unsafe"
)

// unsafeBytes views a string's bytes without copying; the result must not be modified.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// ResponseCode finds a top-level-looking "code": N in a JSON response body
// without decoding it. ok is false when the body has no code.
func ResponseCode(body []byte) (code int, ok bool) {
	v := jsonValue(body, "code")
	if len(v) == 0 {
		return 0, false
	}
	n, neg := 0, false
	if v[0] == '-' {
		neg, v = true, v[1:]
	}
	i := 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		n = n*10 + int(v[i]-'0')
	}
	if i == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// jsonValue returns the raw value that follows "key": in body (for a string,
// its content between the quotes, still escaped). It is a scanner for flat
// objects such as pomelo pushes, not a JSON parser.
func jsonValue(body []byte, key string) []byte {
	for off := 0; off < len(body); {
		i := bytes.Index(body[off:], unsafeBytes(key))
		if i < 0 {
			return nil
		}
		i += off
		off = i + len(key)
		if i == 0 || body[i-1] != '"' || off >= len(body) || body[off] != '"' {
			continue
		}
		j := skipSpace(body, off+1)
		if j >= len(body) || body[j] != ':' {
			continue
		}
		j = skipSpace(body, j+1)
		if j >= len(body) {
			return nil
		}
		if body[j] == '"' {
			start := j + 1
			for k := start; k < len(body); k++ {
				switch body[k] {
				case '\\':
					k++
				case '"':
					return body[start:k]
				}
			}
			return nil
		}
		k := j
		for k < len(body) && body[k] != ',' && body[k] != '}' && body[k] != ']' && body[k] != ' ' {
			k++
		}
		return body[j:k]
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// ChatFields reads msg, from and target of an onChat push, JSON or protobuf,
// without allocating. The slices alias the push body; JSON strings are
// returned still escaped.
func ChatFields(p *Push) (msg, from, target []byte, ok bool) {
	if p.Proto {
		return p.Client.protos.chatFields(p.Body)
	}
	msg = jsonValue(p.Body, "msg")
	from = jsonValue(p.Body, "from")
	target = jsonValue(p.Body, "target")
	return msg, from, target, msg != nil
}

// ChatMsg reads only msg of an onChat push (JSON or protobuf), without
// allocating: the receive path of the driver.
func ChatMsg(p *Push) ([]byte, bool) {
	if p.Proto {
		msg, _, _, ok := p.Client.protos.chatFields(p.Body)
		return msg, ok
	}
	b := p.Body
	const prefix = `{"msg":"` // how both pomelo and the reference server order it
	if len(b) > len(prefix) && string(b[:len(prefix)]) == prefix {
		// the closing quote is the first one not escaped; IndexByte scans
		// the whole message (the padded stamps the driver sends) word-wise
		for k := len(prefix); k < len(b); {
			q := bytes.IndexByte(b[k:], '"')
			if q < 0 {
				break
			}
			q += k
			e := bytes.IndexByte(b[k:q], '\\')
			if e < 0 {
				return b[len(prefix):q], true
			}
			k += e + 2 // past the escaped byte
		}
		return nil, false
	}
	msg := jsonValue(b, "msg")
	return msg, msg != nil
}

// UserField reads "user" of an onAdd/onLeave push without allocating.
func UserField(p *Push) []byte {
	if p.Proto {
		js, err := p.DecodeBody(nil)
		if err != nil {
			return nil
		}
		return jsonValue(js, "user")
	}
	return jsonValue(p.Body, "user")
}

// protoFields scans a protobuf message for three length-delimited fields by tag.
func protoFields(b []byte, tags [3]uint64) (out [3][]byte, ok bool) {
	for len(b) > 0 {
		key, n := uvarint(b)
		if n <= 0 {
			return out, false
		}
		b = b[n:]
		tag, wt := key>>3, key&7
		switch wt {
		case 0:
			_, n = uvarint(b)
			if n <= 0 {
				return out, false
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return out, false
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return out, false
			}
			b = b[4:]
		case 2:
			l, n := uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return out, false
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			for i, t := range tags {
				if t == tag {
					out[i] = v
				}
			}
		default:
			return out, false
		}
	}
	return out, true
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, -1
}
