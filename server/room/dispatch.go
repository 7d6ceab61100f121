package room

import (
	"hash/crc32"
	"unicode/utf16"
)

// PomeloCRC32 is stock pomelo's crc of a key: IEEE CRC-32 over the low byte of
// each UTF-16 code unit, read as a signed int32 (as its JavaScript does).
func PomeloCRC32(key string) int32 {
	units := utf16.Encode([]rune(key))
	var buf [64]byte
	b := buf[:0]
	for _, u := range units {
		b = append(b, byte(u))
	}
	return int32(crc32.ChecksumIEEE(b))
}

// Dispatch returns which of n servers (ordered by id) owns key:
// abs(crc32(key)) % n, as pomelo's dispatcher does. n must be > 0.
func Dispatch(key string, n int) int {
	c := int64(PomeloCRC32(key))
	if c < 0 {
		c = -c
	}
	return int(c % int64(n))
}
