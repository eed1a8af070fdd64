package storage

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// A block holds the samples of one interval (level 0) or of one roll-up
// bucket (a minute, ten minutes, an hour): records of (label set id, stack
// id, sample count, cpu nanoseconds), grouped by label set so that a query
// skips the groups its selector rejects without decoding them.
//
//	block:  version, start (varint ns), duration (ns), period (ns), groups...
//	group:  label set id delta, record count, byte length, records...
//	record: stack id delta, count, cpu ns - count*period (zigzag)
//
// Ids are sorted, so deltas are small; cpu is almost always count*period,
// so its field is one zero byte. A block larger than maxPartBytes is split
// into parts at group boundaries, each a complete block.

const (
	blockVersion = 1
	maxPartBytes = 256 << 10
)

type record struct {
	labelSet, stack uint32
	count, cpuNanos int64
}

type blockHeader struct {
	startNanos, durationNanos, periodNanos int64
}

func (h blockHeader) appendTo(b []byte) []byte {
	b = append(b, blockVersion)
	b = binary.AppendVarint(b, h.startNanos)
	b = binary.AppendUvarint(b, uint64(h.durationNanos))
	return binary.AppendUvarint(b, uint64(h.periodNanos))
}

func sortRecords(recs []record) {
	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(cmp.Compare(a.labelSet, b.labelSet), cmp.Compare(a.stack, b.stack))
	})
}

// encodeBlock encodes records sorted by (label set, stack) into one or more parts.
func encodeBlock(h blockHeader, recs []record) [][]byte {
	var parts [][]byte
	part := h.appendTo(nil)
	var prevLabelSet uint32
	var body []byte
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].labelSet == recs[i].labelSet {
			j++
		}
		body = body[:0]
		var prevStack uint32
		for _, r := range recs[i:j] {
			body = binary.AppendUvarint(body, uint64(r.stack-prevStack))
			body = binary.AppendUvarint(body, uint64(r.count))
			body = binary.AppendVarint(body, r.cpuNanos-r.count*h.periodNanos)
			prevStack = r.stack
		}
		if len(part) > 32 && len(part)+len(body) > maxPartBytes {
			parts = append(parts, part)
			part = h.appendTo(nil)
			prevLabelSet = 0
		}
		part = binary.AppendUvarint(part, uint64(recs[i].labelSet-prevLabelSet))
		part = binary.AppendUvarint(part, uint64(j-i))
		part = binary.AppendUvarint(part, uint64(len(body)))
		part = append(part, body...)
		prevLabelSet = recs[i].labelSet
		i = j
	}
	return append(parts, part)
}

// decodeBlock calls wantGroup for each label set in the block and, where it
// returns true, visit for each of its records.
func decodeBlock(b []byte, wantGroup func(labelSet uint32) bool, visit func(r record)) (blockHeader, error) {
	var h blockHeader
	r := reader{b: b}
	if v := r.byte(); v != blockVersion {
		return h, fmt.Errorf("block format version %d, want %d", v, blockVersion)
	}
	h.startNanos = r.varint()
	h.durationNanos = int64(r.uvarint())
	h.periodNanos = int64(r.uvarint())
	var labelSetID uint32
	for !r.done() {
		labelSetID += uint32(r.uvarint())
		n := r.uvarint()
		body := r.bytes(r.uvarint())
		if r.err != nil || !wantGroup(labelSetID) || visit == nil {
			continue
		}
		gr := reader{b: body}
		var stack uint32
		for i := uint64(0); i < n && !gr.done(); i++ {
			stack += uint32(gr.uvarint())
			count := int64(gr.uvarint())
			cpu := gr.varint() + count*h.periodNanos
			if gr.err == nil {
				visit(record{labelSet: labelSetID, stack: stack, count: count, cpuNanos: cpu})
			}
		}
		if gr.err != nil {
			return h, gr.err
		}
	}
	return h, r.err
}

// sums accumulates records by (label set, stack).
type sums map[uint64]*[2]int64

func (s sums) add(r record) {
	k := uint64(r.labelSet)<<32 | uint64(r.stack)
	v := s[k]
	if v == nil {
		v = new([2]int64)
		s[k] = v
	}
	v[0] += r.count
	v[1] += r.cpuNanos
}

// records returns the sums sorted by (label set, stack).
func (s sums) records() []record {
	keys := make([]uint64, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys) // (label set, stack) order, as the keys are built
	recs := make([]record, len(keys))
	for i, k := range keys {
		v := s[k]
		recs[i] = record{labelSet: uint32(k >> 32), stack: uint32(k), count: v[0], cpuNanos: v[1]}
	}
	return recs
}

// mergeRecords merges two record lists sorted by (label set, stack) into
// dst, adding the values of equal keys. Blocks are sorted, so merging them
// one after another this way is linear in what they hold, and much faster
// than a hash map at hundreds of thousands of keys.
func mergeRecords(dst, a, b []record) []record {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ka := uint64(a[i].labelSet)<<32 | uint64(a[i].stack)
		kb := uint64(b[j].labelSet)<<32 | uint64(b[j].stack)
		switch {
		case ka < kb:
			dst = append(dst, a[i])
			i++
		case ka > kb:
			dst = append(dst, b[j])
			j++
		default:
			r := a[i]
			r.count += b[j].count
			r.cpuNanos += b[j].cpuNanos
			dst = append(dst, r)
			i++
			j++
		}
	}
	dst = append(dst, a[i:]...)
	return append(dst, b[j:]...)
}

// isSorted reports whether records are in strictly increasing key order.
func isSorted(recs []record) bool {
	for i := 1; i < len(recs); i++ {
		if uint64(recs[i-1].labelSet)<<32|uint64(recs[i-1].stack) >= uint64(recs[i].labelSet)<<32|uint64(recs[i].stack) {
			return false
		}
	}
	return true
}
