package driver

import "strconv"

// A chat message's content starts with a stamp the receivers read back:
//
//	~<gid>.<sender>.<seq>.<intended>~xxxx...
//
// all in base 36: gid is the driver-wide message id (its accounting entry),
// sender the client index, seq the sender's sequence number, intended the
// scheduled send time (client.Now nanoseconds). Padding fills the payload.

// appendStamp appends the stamp and padding up to payload bytes in total.
func appendStamp(dst []byte, gid uint64, sender int32, seq uint32, intended int64, payload int) []byte {
	start := len(dst)
	dst = append(dst, '~')
	dst = strconv.AppendUint(dst, gid, 36)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(sender), 36)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(seq), 36)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(intended), 36)
	dst = append(dst, '~')
	for len(dst)-start < payload {
		dst = append(dst, 'x')
	}
	return dst
}

type stamp struct {
	gid      uint64
	sender   int32
	seq      uint32
	intended int64
}

const noDigit = 0xff

// base36 is the value of each base-36 digit, noDigit for other bytes: a
// single load per byte of the stamp, which every delivery parses.
var base36 = func() (t [256]byte) {
	for i := range t {
		t[i] = noDigit
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c-'a') + 10
	}
	return t
}()

// parseStamp reads a stamp at the start of msg without allocating.
func parseStamp(msg []byte) (s stamp, ok bool) {
	if len(msg) < 2 || msg[0] != '~' {
		return s, false
	}
	var vals [4]uint64
	i := 1
	for k := 0; k < 4; k++ {
		var v uint64
		n := 0
		for ; i < len(msg); i++ {
			d := base36[msg[i]]
			if d == noDigit {
				goto end
			}
			v = v*36 + uint64(d)
			n++
		}
	end:
		if n == 0 || n > 13 || i >= len(msg) {
			return s, false
		}
		want := byte('.')
		if k == 3 {
			want = '~'
		}
		if msg[i] != want {
			return s, false
		}
		i++
		vals[k] = v
	}
	if vals[1] > 1<<31-1 || vals[2] > 1<<32-1 || vals[3] > 1<<62 {
		return s, false
	}
	return stamp{gid: vals[0], sender: int32(vals[1]), seq: uint32(vals[2]), intended: int64(vals[3])}, true
}
