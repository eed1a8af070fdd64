package storage

import (
	"encoding/binary"
	"sort"
	"time"
)

// Resolutions: level 0 holds intervals as appended; each higher level holds
// one merged block per aligned bucket of its duration (UTC epoch aligned),
// covering the intervals whose start falls in the bucket.
var levelDurations = [...]time.Duration{0, time.Minute, 10 * time.Minute, time.Hour}

const numLevels = len(levelDurations)

// Keys. Blocks are keyed by the hour of their start first, so that whole
// hours leave with one DropPrefix, which rewrites the few tables holding
// them instead of waiting for tombstones to be compacted away.
//
//	'b' hour(4) level(1) start ns(8) part(2)   a block part
//	'd' kind(1) id(4)                          a dictionary entry
//	'h' kind(1) hash(8)                        the id of an entry, by value (dictdisk.go)
//	'u' start ns(8) level(1)                   the dictionary ids a block uses (dictdisk.go)
//	'M' "format"                               the format version
//	'M' "dictidx"                              the ids the hash index covers
const (
	prefixBlock = 'b'
	prefixDict  = 'd'
	prefixHash  = 'h'
	prefixUsed  = 'u'
	prefixMeta  = 'M'
)

var metaFormatKey = []byte{prefixMeta, 'f', 'o', 'r', 'm', 'a', 't'}

const blockKeyLen = 1 + 4 + 1 + 8 + 2

func hourOf(startNanos int64) uint32 {
	return uint32(startNanos / int64(time.Hour))
}

func hourPrefix(hour uint32) []byte {
	k := []byte{prefixBlock, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(k[1:], hour)
	return k
}

func blockKey(level int, startNanos int64, part uint16) []byte {
	k := make([]byte, blockKeyLen)
	k[0] = prefixBlock
	binary.BigEndian.PutUint32(k[1:], hourOf(startNanos))
	k[5] = byte(level)
	binary.BigEndian.PutUint64(k[6:], uint64(startNanos))
	binary.BigEndian.PutUint16(k[14:], part)
	return k
}

func parseBlockKey(k []byte) (level int, startNanos int64, part uint16, ok bool) {
	if len(k) != blockKeyLen || k[0] != prefixBlock || int(k[5]) >= numLevels {
		return 0, 0, 0, false
	}
	return int(k[5]), int64(binary.BigEndian.Uint64(k[6:])), binary.BigEndian.Uint16(k[14:]), true
}

// blockRef is the index's entry for a stored block.
type blockRef struct {
	startNanos int64
	parts      uint16
	bytes      int64 // encoded size of all parts, before Badger's compression
}

// index lists every stored block by level, sorted by start. It is rebuilt
// from the keys at Open and kept in memory: a week is about 70,000 entries.
type index [numLevels][]blockRef

func (ix *index) search(level int, startNanos int64) int {
	refs := ix[level]
	return sort.Search(len(refs), func(i int) bool { return refs[i].startNanos >= startNanos })
}

func (ix *index) find(level int, startNanos int64) (blockRef, bool) {
	i := ix.search(level, startNanos)
	if i < len(ix[level]) && ix[level][i].startNanos == startNanos {
		return ix[level][i], true
	}
	return blockRef{}, false
}

// put adds or replaces a block.
func (ix *index) put(level int, ref blockRef) {
	i := ix.search(level, ref.startNanos)
	refs := ix[level]
	if i < len(refs) && refs[i].startNanos == ref.startNanos {
		refs[i] = ref
		return
	}
	refs = append(refs, blockRef{})
	copy(refs[i+1:], refs[i:])
	refs[i] = ref
	ix[level] = refs
}

func (ix *index) remove(level int, startNanos int64) {
	i := ix.search(level, startNanos)
	refs := ix[level]
	if i < len(refs) && refs[i].startNanos == startNanos {
		ix[level] = append(refs[:i], refs[i+1:]...)
	}
}

// between returns the blocks of a level starting in [from, to).
func (ix *index) between(level int, from, to int64) []blockRef {
	if from >= to {
		return nil
	}
	return ix[level][ix.search(level, from):ix.search(level, to)]
}

// plannedBlock is a block a query reads.
type plannedBlock struct {
	level int
	ref   blockRef
}

// plan returns the blocks covering the intervals that start in [from, to),
// using the coarsest blocks that fit: whole buckets of level maxLevel or
// below where they exist, finer ones at the edges and where a bucket has no
// roll-up (not yet built, or cut by retention).
func (ix *index) plan(out []plannedBlock, from, to int64, maxLevel int) []plannedBlock {
	if from >= to {
		return out
	}
	if maxLevel == 0 {
		for _, ref := range ix.between(0, from, to) {
			out = append(out, plannedBlock{0, ref})
		}
		return out
	}
	d := int64(levelDurations[maxLevel])
	first, last := ceilTo(from, d), floorTo(to, d)
	if first >= last {
		return ix.plan(out, from, to, maxLevel-1)
	}
	out = ix.plan(out, from, first, maxLevel-1)
	// Walk only the buckets that hold data at some level: the roll-ups of
	// this level, and the raw intervals between them.
	b := first
	for b < last {
		if ref, ok := ix.find(maxLevel, b); ok {
			out = append(out, plannedBlock{maxLevel, ref})
			b += d
			continue
		}
		// Skip to the next roll-up of this level, or the end.
		next := last
		if i := ix.search(maxLevel, b); i < len(ix[maxLevel]) && ix[maxLevel][i].startNanos < last {
			next = ix[maxLevel][i].startNanos
		}
		out = ix.plan(out, b, next, maxLevel-1)
		b = next
	}
	return ix.plan(out, last, to, maxLevel-1)
}

func floorTo(t, d int64) int64 {
	r := t % d
	if r < 0 {
		r += d
	}
	return t - r
}

func ceilTo(t, d int64) int64 {
	f := floorTo(t, d)
	if f == t {
		return t
	}
	return f + d
}

// oldest is the earliest start of any stored block, at any level.
func (ix *index) oldest() (int64, bool) {
	var oldest int64
	found := false
	for level := range numLevels {
		if len(ix[level]) > 0 && (!found || ix[level][0].startNanos < oldest) {
			oldest, found = ix[level][0].startNanos, true
		}
	}
	return oldest, found
}

// newest is the latest start of any stored block, at any level.
func (ix *index) newest() (int64, bool) {
	var newest int64
	found := false
	for level := range numLevels {
		if n := len(ix[level]); n > 0 && (!found || ix[level][n-1].startNanos > newest) {
			newest, found = ix[level][n-1].startNanos, true
		}
	}
	return newest, found
}
