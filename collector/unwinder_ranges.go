package collector

import (
	"encoding/binary"
	"math/bits"

	"github.com/ember-profiler/ember/bpf"
)

// rangeKeys splits [start, limit) of a process into the aligned prefixes
// that the LPM trie matches.
func rangeKeys(pid uint32, start, limit uint64) []bpf.SamplerRangeKey {
	var keys []bpf.SamplerRangeKey
	for start < limit {
		size := uint64(1) << 63
		if start != 0 {
			size = start & -start
		}
		for size > limit-start {
			size >>= 1
		}
		k := bpf.SamplerRangeKey{Prefixlen: uint32(32 + 64 - bits.TrailingZeros64(size))}
		var raw [12]byte
		binary.BigEndian.PutUint32(raw[0:], pid)
		binary.BigEndian.PutUint64(raw[4:], start)
		// The key fields are in host order in Go; store the big-endian bytes.
		k.PidBe = binary.LittleEndian.Uint32(raw[0:])
		k.AddrBe = binary.LittleEndian.Uint64(raw[4:])
		keys = append(keys, k)
		start += size
	}
	return keys
}
