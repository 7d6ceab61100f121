// Package pomelo is the wire codec of the Pomelo 2.x hybridconnector protocol:
// the package layer (handshake, ack, heartbeat, data, kick), the message layer
// (request, notify, response, push with varint ids and compressed or string
// routes), the handshake bodies, the route dictionary, and pomelo-protobuf
// bodies (Protos, built from a handshake's sys.protos; see protobuf.go).
//
// It does no I/O, starts no goroutines and imports nothing of this project, so
// the reference server, the bench driver and the tests all share one codec.
// Decoders never panic on any input, and never size an allocation by a length
// or count read from it: the package and message decoders allocate nothing
// but a copied route and error values, the JSON and protobuf decoders a
// bounded factor of their input (checked by the fuzz targets). The Append*
// encoders append to a caller's buffer so hot paths can reuse it. The hot
// paths allocate nothing: AppendData, ParsePackage, ForEachPackage,
// ParseMessageRoute (ParseMessage copies a string route: one allocation),
// Dict.Resolve, and Protos.AppendDecodeServerBytes into a buffer with room.
package pomelo

import (
	"errors"
	"fmt"
)

// PackageType is the first byte of every package.
type PackageType byte

// Package types of the hybridconnector protocol.
const (
	Handshake    PackageType = 1 // both directions, JSON body
	HandshakeAck PackageType = 2 // client -> server, empty body
	Heartbeat    PackageType = 3 // both directions, empty body
	Data         PackageType = 4 // carries one message
	Kick         PackageType = 5 // server -> client, JSON body {"reason":...}
)

func (t PackageType) String() string {
	switch t {
	case Handshake:
		return "handshake"
	case HandshakeAck:
		return "handshake-ack"
	case Heartbeat:
		return "heartbeat"
	case Data:
		return "data"
	case Kick:
		return "kick"
	}
	return fmt.Sprintf("package-type(%d)", byte(t))
}

// Valid reports whether t is one of the five package types.
func (t PackageType) Valid() bool { return t >= Handshake && t <= Kick }

// HeaderLen is the size of a package header: type byte plus 3-byte length.
const HeaderLen = 4

// MaxBodyLen is the largest body a package header can describe.
const MaxBodyLen = 1<<24 - 1

// Errors returned by the decoders. They are wrapped with detail; test with errors.Is.
var (
	ErrShort       = errors.New("pomelo: truncated input")
	ErrPackageType = errors.New("pomelo: unknown package type")
	ErrTooLarge    = errors.New("pomelo: package larger than the limit")
	ErrMessageType = errors.New("pomelo: unknown message type")
	ErrMessage     = errors.New("pomelo: malformed message")
)

// HeartbeatPackage and HandshakeAckPackage are the only bytes those packages ever have.
var (
	HeartbeatPackage    = []byte{byte(Heartbeat), 0, 0, 0}
	HandshakeAckPackage = []byte{byte(HandshakeAck), 0, 0, 0}
)

// Package is one decoded package. Body aliases the decoded buffer.
type Package struct {
	Type PackageType
	Body []byte
}

// AppendPackage appends a package with the given type and body to dst.
// It panics if body is longer than MaxBodyLen, which is a programming error.
func AppendPackage(dst []byte, t PackageType, body []byte) []byte {
	dst = AppendPackageHeader(dst, t, len(body))
	return append(dst, body...)
}

// AppendPackageHeader appends only the 4-byte header for a body of n bytes.
func AppendPackageHeader(dst []byte, t PackageType, n int) []byte {
	if n < 0 || n > MaxBodyLen {
		panic(fmt.Sprintf("pomelo: package body of %d bytes exceeds %d", n, MaxBodyLen))
	}
	return append(dst, byte(t), byte(n>>16), byte(n>>8), byte(n))
}

// ParsePackage decodes the first package of buf and returns the remaining
// bytes. maxBody caps the body length (0 means MaxBodyLen). The returned body
// aliases buf.
func ParsePackage(buf []byte, maxBody int) (p Package, rest []byte, err error) {
	if len(buf) < HeaderLen {
		return Package{}, buf, fmt.Errorf("%w: %d header bytes of %d", ErrShort, len(buf), HeaderLen)
	}
	t := PackageType(buf[0])
	if !t.Valid() {
		return Package{}, buf, fmt.Errorf("%w: %d", ErrPackageType, buf[0])
	}
	n := int(buf[1])<<16 | int(buf[2])<<8 | int(buf[3])
	if maxBody > 0 && n > maxBody {
		return Package{}, buf, fmt.Errorf("%w: %d-byte body, limit %d", ErrTooLarge, n, maxBody)
	}
	if len(buf)-HeaderLen < n {
		return Package{}, buf, fmt.Errorf("%w: body of %d bytes has %d", ErrShort, n, len(buf)-HeaderLen)
	}
	return Package{Type: t, Body: buf[HeaderLen : HeaderLen+n]}, buf[HeaderLen+n:], nil
}

// ForEachPackage decodes every package in buf (one websocket frame may carry
// several) and calls fn for each, stopping at the first error.
func ForEachPackage(buf []byte, maxBody int, fn func(Package) error) error {
	for len(buf) > 0 {
		p, rest, err := ParsePackage(buf, maxBody)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		buf = rest
	}
	return nil
}

// MessageType is the kind of a message, bits 1-3 of its flag byte.
type MessageType byte

// Message types.
const (
	Request  MessageType = 0
	Notify   MessageType = 1
	Response MessageType = 2
	Push     MessageType = 3
)

func (t MessageType) String() string {
	switch t {
	case Request:
		return "request"
	case Notify:
		return "notify"
	case Response:
		return "response"
	case Push:
		return "push"
	}
	return fmt.Sprintf("message-type(%d)", byte(t))
}

func (t MessageType) hasID() bool    { return t == Request || t == Response }
func (t MessageType) hasRoute() bool { return t == Request || t == Notify || t == Push }

const (
	flagCompressedRoute = 0x01
	flagGzip            = 0x10
	maxRouteLen         = 255
	maxVarintBytes      = 5 // ids are uint32 in pomelo clients; 5 groups of 7 bits cover it
)

// Message is one decoded message. When the route was compressed, Compressed is
// true and RouteCode holds the code; Route is empty until the caller resolves
// it through a Dict. Body aliases the decoded buffer.
type Message struct {
	Type       MessageType
	ID         uint32
	Route      string
	RouteCode  uint16
	Compressed bool
	Gzip       bool
	Body       []byte
}

// MessageLen returns the encoded size of m, so a caller can write the package
// header before the message without a second buffer.
func MessageLen(m *Message) int {
	n := 1
	if m.Type.hasID() {
		n += varintLen(m.ID)
	}
	if m.Type.hasRoute() {
		if m.Compressed {
			n += 2
		} else {
			n += 1 + len(m.Route)
		}
	}
	return n + len(m.Body)
}

// checkMessage reports why m cannot be encoded, before anything is written.
func checkMessage(m *Message) error {
	if m.Type > Push {
		return fmt.Errorf("%w: %d", ErrMessageType, byte(m.Type))
	}
	if m.Type.hasRoute() && !m.Compressed && len(m.Route) > maxRouteLen {
		return fmt.Errorf("%w: route %q is %d bytes, limit %d", ErrMessage, m.Route, len(m.Route), maxRouteLen)
	}
	return nil
}

// AppendMessage appends the message layer encoding of m to dst. It returns an
// error (and dst unchanged) only for an unknown message type or a string route
// longer than 255 bytes.
func AppendMessage(dst []byte, m *Message) ([]byte, error) {
	if err := checkMessage(m); err != nil {
		return dst, err
	}
	return appendMessage(dst, m), nil
}

func appendMessage(dst []byte, m *Message) []byte {
	flag := byte(m.Type) << 1
	if m.Compressed && m.Type.hasRoute() {
		flag |= flagCompressedRoute
	}
	if m.Gzip {
		flag |= flagGzip
	}
	dst = append(dst, flag)
	if m.Type.hasID() {
		dst = appendVarint(dst, m.ID)
	}
	if m.Type.hasRoute() {
		if m.Compressed {
			dst = append(dst, byte(m.RouteCode>>8), byte(m.RouteCode))
		} else {
			dst = append(dst, byte(len(m.Route)))
			dst = append(dst, m.Route...)
		}
	}
	return append(dst, m.Body...)
}

// AppendData appends a whole DATA package (header and message) for m. On error
// dst is returned unchanged.
func AppendData(dst []byte, m *Message) ([]byte, error) {
	if err := checkMessage(m); err != nil {
		return dst, err
	}
	n := MessageLen(m)
	if n > MaxBodyLen {
		return dst, fmt.Errorf("%w: %d-byte message", ErrTooLarge, n)
	}
	dst = AppendPackageHeader(dst, Data, n)
	return appendMessage(dst, m), nil
}

// ParseMessage decodes the body of a DATA package. A string route is copied
// into a new string (one allocation); everything else aliases b. Hot paths that
// want no allocation use ParseMessageRoute.
func ParseMessage(b []byte) (Message, error) {
	m, route, err := ParseMessageRoute(b)
	if err == nil && len(route) > 0 {
		m.Route = string(route)
	}
	return m, err
}

// ParseMessageRoute decodes like ParseMessage but does not copy a string
// route: m.Route stays empty and the route is returned as bytes aliasing b.
// It allocates nothing unless it returns an error.
func ParseMessageRoute(b []byte) (m Message, route []byte, err error) {
	route, err = parseMessage(b, &m)
	return m, route, err
}

// parseMessage is ParseMessageRoute writing into *m: ParseMessageRoute
// inlines to a call of it, so the caller's Message is filled in place
// instead of copied back (a receive loop's hot path).
func parseMessage(b []byte, m *Message) (route []byte, err error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("%w: empty message", ErrShort)
	}
	flag := b[0]
	if flag&^0x1f != 0 {
		return nil, fmt.Errorf("%w: flag byte %#02x has reserved bits set", ErrMessage, flag)
	}
	m.Type = MessageType(flag >> 1 & 0x07)
	if m.Type > Push {
		return nil, fmt.Errorf("%w: %d", ErrMessageType, byte(m.Type))
	}
	m.Gzip = flag&flagGzip != 0
	off := 1
	if m.Type.hasID() {
		id, n, err := readVarint(b[off:])
		if err != nil {
			return nil, err
		}
		m.ID = id
		off += n
	}
	if m.Type.hasRoute() {
		if flag&flagCompressedRoute != 0 {
			if len(b) < off+2 {
				return nil, fmt.Errorf("%w: compressed route", ErrShort)
			}
			m.Compressed = true
			m.RouteCode = uint16(b[off])<<8 | uint16(b[off+1])
			off += 2
		} else {
			if len(b) < off+1 {
				return nil, fmt.Errorf("%w: route length", ErrShort)
			}
			rl := int(b[off])
			off++
			if len(b) < off+rl {
				return nil, fmt.Errorf("%w: route of %d bytes has %d", ErrShort, rl, len(b)-off)
			}
			route = b[off : off+rl : off+rl]
			off += rl
		}
	} else if flag&flagCompressedRoute != 0 {
		return nil, fmt.Errorf("%w: compressed-route flag on a %s", ErrMessage, m.Type)
	}
	m.Body = b[off:]
	return route, nil
}

func varintLen(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendVarint writes pomelo's id encoding: base-128 groups, low group first,
// continuation bit 0x80 on every byte but the last (128 -> 80 01).
func appendVarint(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

func readVarint(b []byte) (uint32, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < maxVarintBytes; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0, fmt.Errorf("%w: message id overflows 32 bits", ErrMessage)
			}
			return uint32(v), i + 1, nil
		}
	}
	if len(b) < maxVarintBytes {
		return 0, 0, fmt.Errorf("%w: message id", ErrShort)
	}
	return 0, 0, fmt.Errorf("%w: message id longer than %d bytes", ErrMessage, maxVarintBytes)
}
