package workers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// chunks cuts data as publishBig does.
func chunks(id byte, data []byte, size int) [][]byte {
	n := max((len(data)+size-1)/size, 1)
	var out [][]byte
	for i := range n {
		lo, hi := i*size, min((i+1)*size, len(data))
		b := make([]byte, chunkHeader)
		b[0] = id
		binary.BigEndian.PutUint32(b[8:], uint32(i))
		binary.BigEndian.PutUint32(b[12:], uint32(n))
		out = append(out, append(b, data[lo:hi]...))
	}
	return out
}

func TestAssembler(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 1000)
	tests := []struct {
		name  string
		parts [][]byte
		want  []byte // the message, after the last part
		err   bool
	}{
		{"one chunk", chunks(1, []byte("hello"), 100), []byte("hello"), false},
		{"many chunks", chunks(2, big, 333), big, false},
		{"interleaved with another message", append(chunks(3, big[:500], 100)[:2], append(chunks(4, []byte("x"), 10), chunks(3, big[:500], 100)[2:]...)...), big[:500], false},
		{"too short", [][]byte{{1, 2, 3}}, nil, true},
		{"index past count", [][]byte{append(make([]byte, 8), 0, 0, 0, 2, 0, 0, 0, 1)}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a assembler
			var got []byte
			var err error
			for _, p := range tc.parts {
				var m []byte
				if m, err = a.add(p); err != nil {
					break
				}
				if m != nil && !bytes.Equal(m, []byte("x")) {
					got = m
				}
			}
			if tc.err {
				if !errors.Is(err, errChunk) {
					t.Fatalf("err %v, want errChunk", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, err %v; want %d bytes", len(got), err, len(tc.want))
			}
			if len(a.pending) != 0 {
				t.Errorf("%d messages still pending", len(a.pending))
			}
		})
	}
}
