package client

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// rxState is the receive state of a client on an epoll loop (poll_linux.go):
// where it is registered and the bytes a read left over. Both buffers are
// pooled and held only while a frame or a fragmented message is incomplete,
// so an idle client holds none.
type rxState struct {
	p     *poller
	sc    *sockConn // the socket under gorilla (for wake)
	fd    int       // the socket; closed only by the loop (through sc)
	slot  int32     // index in p.slots, the epoll event's data
	gen   int32     // registration generation of the slot, also in the event
	need  int       // total length of the frame in carry when its header is complete, else 0
	carry *[]byte   // bytes of an incomplete frame at the end of the last read
	msg   *[]byte   // payload so far of a fragmented message
	op    byte      // opcode of that message
}

// ctlWait bounds the close frame written to the gate's connection, before
// the send path is non-blocking.
const ctlWait = time.Second

// Websocket opcodes and header bits (RFC 6455 section 5.2).
const (
	opContinuation = 0
	opText         = 1
	opBinary       = 2
	opClose        = 8
	opPing         = 9
	opPong         = 10

	finBit  = 0x80
	rsvBits = 0x70
	maskBit = 0x80
)

// errLocalClose stops parsing when the client was closed locally meanwhile
// (finish reports nil or the abort's cause).
var errLocalClose = errors.New("client: closed locally")

// parseFrames consumes the complete websocket frames at the front of b (a
// server's frames: unmasked), hands every complete data message to the pomelo
// parser with push.At already set, answers pings, and returns how many bytes
// it consumed. When it stops at an incomplete frame whose header is complete,
// need is that frame's whole length (header included). It enforces
// Options.MaxMessage on each message, including reassembled ones, as soon as
// a header announces too much. It allocates only to start or grow a
// fragmented message (pooled buffers).
func (c *Client) parseFrames(b []byte, push *Push) (used, need int, err error) {
	rx := c.rx
	limit := uint64(c.f.opts.MaxMessage)
	for {
		if c.closed.Load() {
			return used, 0, errLocalClose
		}
		rest := b[used:]
		if len(rest) < 2 {
			return used, 0, nil
		}
		b0, b1 := rest[0], rest[1]
		fin, op := b0&finBit != 0, b0&0x0f
		if b0&rsvBits != 0 { // no extension negotiated; worded as gorilla
			return used, 0, c.protocolError(rsvError(b0))
		}
		if b1&maskBit != 0 {
			return used, 0, c.protocolError("masked frame from the server")
		}
		hdr, n := 2, uint64(b1&0x7f)
		switch n {
		case 126:
			if len(rest) < 4 {
				return used, 0, nil
			}
			hdr, n = 4, uint64(binary.BigEndian.Uint16(rest[2:]))
		case 127:
			if len(rest) < 10 {
				return used, 0, nil
			}
			hdr, n = 10, binary.BigEndian.Uint64(rest[2:])
		}
		switch op {
		case opClose, opPing, opPong:
			if !fin || n > 125 {
				return used, 0, c.protocolError("invalid control frame")
			}
		case opText, opBinary:
			if rx.msg != nil {
				return used, 0, c.protocolError("data frame inside a fragmented message")
			}
			if n > limit {
				return used, 0, c.tooBig()
			}
		case opContinuation:
			if rx.msg == nil {
				return used, 0, c.protocolError("continuation frame without a message")
			}
			if n > limit || uint64(len(*rx.msg))+n > limit {
				return used, 0, c.tooBig()
			}
		default:
			return used, 0, c.protocolError("unknown opcode " + hex2(op))
		}
		end := hdr + int(n)
		if len(rest) < end {
			return used, end, nil
		}
		payload := rest[hdr:end]
		used += end
		switch op {
		case opText, opBinary:
			if fin {
				err = c.deliver(payload, push)
			} else {
				rx.msg, rx.op = c.f.getBuf(), op
				*rx.msg = append(*rx.msg, payload...)
			}
		case opContinuation:
			*rx.msg = append(*rx.msg, payload...)
			if fin {
				m := rx.msg
				rx.msg = nil
				err = c.deliver(*m, push)
				c.f.putBuf(m)
			}
		case opClose:
			return used, 0, c.closeFrame(payload)
		case opPing:
			_ = c.writeCtl(opPong, payload) // as gorilla's default ping handler
		}
		if err != nil {
			return used, 0, err
		}
	}
}

// deliver hands one websocket message to the pomelo parser, as the reader
// goroutine does.
func (c *Client) deliver(msg []byte, push *Push) error {
	return pomelo.ForEachPackage(msg, 0, func(p pomelo.Package) error {
		return c.handle(p, push)
	})
}

// closeFrame answers a server's close frame as gorilla's default close
// handler does and returns the same *websocket.CloseError.
func (c *Client) closeFrame(payload []byte) error {
	code, text := websocket.CloseNoStatusReceived, ""
	switch {
	case len(payload) == 1:
		return c.protocolError("invalid close frame")
	case len(payload) >= 2:
		code, text = int(binary.BigEndian.Uint16(payload)), string(payload[2:])
	}
	var echo []byte
	if code != websocket.CloseNoStatusReceived {
		echo = websocket.FormatCloseMessage(code, "")
	}
	_ = c.writeCtl(opClose, echo)
	return &websocket.CloseError{Code: code, Text: text}
}

// protocolError closes with 1002 and a reason, as gorilla does.
func (c *Client) protocolError(msg string) error {
	data := websocket.FormatCloseMessage(websocket.CloseProtocolError, msg)
	if len(data) > 125 {
		data = data[:125]
	}
	_ = c.writeCtl(opClose, data)
	return errors.New("websocket: " + msg)
}

// tooBig closes with 1009 and returns websocket.ErrReadLimit, as gorilla does
// past its read limit.
func (c *Client) tooBig() error {
	_ = c.writeCtl(opClose, websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""))
	return websocket.ErrReadLimit
}

// errEOF is what gorilla reports when the server's socket ends without a
// close frame (reported as "closed by the server: code 1006").
var errEOF = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: "unexpected EOF"}

func rsvError(b0 byte) string {
	var s []string
	for i, name := range []string{"RSV1", "RSV2", "RSV3"} {
		if b0&(0x40>>i) != 0 {
			s = append(s, name+" set")
		}
	}
	return strings.Join(s, ", ")
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0x0f]})
}
