package storage

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/ember-profiler/ember/schema"
)

// A block holds the samples of one interval (level 0) or of one roll-up
// bucket (a minute, ten minutes, an hour): records of (label set id, stack
// id, a value per sample type), grouped by label set so that a query skips
// the groups its selector rejects without decoding them.
//
//	block:  version, start (varint ns), duration (ns), period (ns), [types], groups...
//	group:  label set id delta, record count, byte length, records...
//	record: stack id delta, a value per type of the block, in schema.Known order
//
// The types are a bit set of positions in schema.Known (uvarint), written
// in version 2 only: version 1 blocks hold samples/count and cpu/nanoseconds,
// the one pair Ember knew, and a block of exactly those types is still
// written as version 1, so that a CPU-only store stays byte for byte what
// older Embers wrote and read. The count is a uvarint; cpu is stored as
// cpu - count*period (zigzag), almost always one zero byte; any other
// value as a uvarint. Ids are sorted, so deltas are small. A block larger
// than maxPartBytes is split into parts at group boundaries, each a
// complete block.

const (
	blockVersionCPU   = 1 // types implied: samples/count, cpu/nanoseconds
	blockVersionTyped = 2 // types in the header
	// maxPartBytes keeps each part, and so each table block Badger
	// compresses, under zstd's 128 KiB block: past it the encoder keeps a
	// 16 MiB history window per CPU for the life of the process.
	maxPartBytes = 64 << 10

	// numValues is how many sample types a record has room for.
	numValues = len(schema.Known)
)

// typeSet is a set of sample types: bit i is schema.Known[i].
type typeSet uint64

const cpuTypes typeSet = 1<<schema.SamplesIndex | 1<<schema.CPUIndex

func (t typeSet) has(i int) bool { return t&(1<<i) != 0 }

// orCPU returns t, or the CPU pair if t is empty: what a query that read
// no block has always returned.
func (t typeSet) orCPU() typeSet {
	if t == 0 {
		return cpuTypes
	}
	return t
}

// sampleTypes returns the types of t in Known order.
func (t typeSet) sampleTypes() []schema.SampleType {
	var out []schema.SampleType
	for i, k := range schema.Known {
		if t.has(i) {
			out = append(out, k)
		}
	}
	return out
}

// defaultType is the type a viewer should show first: cpu when the set
// holds it beside others, or "" (pprof then takes the last) for the CPU
// pair alone, whose answers stay as they were.
func (t typeSet) defaultType() string {
	if t != cpuTypes && t.has(schema.CPUIndex) {
		return schema.CPU.Type
	}
	return ""
}

// defaultFor is the default sample type of an answer to a query that asks
// for want: want when t holds it, else t's own.
func (t typeSet) defaultFor(want string) string {
	for _, st := range t.sampleTypes() {
		if want != "" && st.Type == want {
			return want
		}
	}
	return t.defaultType()
}

// indexes returns the positions in Known of t's types.
func (t typeSet) indexes() []int {
	var out []int
	for i := range numValues {
		if t.has(i) {
			out = append(out, i)
		}
	}
	return out
}

// A record's values are those of schema.Known, by position. The count and
// the CPU time (positions 0 and 1) are inline; the other types sit behind
// a pointer, nil while they are zero, so that records of CPU samples,
// which a day's merge holds by the hundred thousand, stay small.
type record struct {
	labelSet, stack uint32
	cpu             [2]int64
	more            *[numValues - 2]int64
}

func (r *record) value(i int) int64 {
	if i < len(r.cpu) {
		return r.cpu[i]
	}
	if r.more == nil {
		return 0
	}
	return r.more[i-len(r.cpu)]
}

func (r *record) setValue(i int, v int64) {
	if i < len(r.cpu) {
		r.cpu[i] = v
		return
	}
	if r.more == nil {
		if v == 0 {
			return
		}
		r.more = new([numValues - 2]int64)
	}
	r.more[i-len(r.cpu)] = v
}

func (r *record) count() int64 { return r.cpu[schema.SamplesIndex] }

func (r *record) cpuNanos() int64 { return r.cpu[schema.CPUIndex] }

// add adds o's values to r's. Records are copied by value, so r.more may
// be another record's too: it is replaced, never changed.
func (r *record) add(o *record) {
	r.cpu[0] += o.cpu[0]
	r.cpu[1] += o.cpu[1]
	if o.more != nil {
		var m [numValues - 2]int64
		if r.more != nil {
			m = *r.more
		}
		for i := range m {
			m[i] += o.more[i]
		}
		r.more = &m
	}
}

type blockHeader struct {
	startNanos, durationNanos, periodNanos int64
	types                                  typeSet
}

func (h blockHeader) appendTo(b []byte) []byte {
	if h.types == cpuTypes {
		b = append(b, blockVersionCPU)
	} else {
		b = append(b, blockVersionTyped)
	}
	b = binary.AppendVarint(b, h.startNanos)
	b = binary.AppendUvarint(b, uint64(h.durationNanos))
	b = binary.AppendUvarint(b, uint64(h.periodNanos))
	if h.types != cpuTypes {
		b = binary.AppendUvarint(b, uint64(h.types))
	}
	return b
}

// appendValues encodes a record's values of the types idx (in order).
func appendValues(b []byte, r *record, idx []int, periodNanos int64) []byte {
	for _, i := range idx {
		if i == schema.CPUIndex {
			b = binary.AppendVarint(b, r.cpuNanos()-r.count()*periodNanos)
		} else {
			b = binary.AppendUvarint(b, uint64(r.value(i)))
		}
	}
	return b
}

func sortRecords(recs []record) {
	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(cmp.Compare(a.labelSet, b.labelSet), cmp.Compare(a.stack, b.stack))
	})
}

// encodeBlock encodes records sorted by (label set, stack) into one or more parts.
func encodeBlock(h blockHeader, recs []record) [][]byte {
	h.types = h.types.orCPU() // empty: a roll-up of blocks retention removed meanwhile
	var parts [][]byte
	idx := h.types.indexes()
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
			body = appendValues(body, &r, idx, h.periodNanos)
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
	version := r.byte()
	if version != blockVersionCPU && version != blockVersionTyped {
		return h, fmt.Errorf("block format version %d, want %d or %d", version, blockVersionCPU, blockVersionTyped)
	}
	h.startNanos = r.varint()
	h.durationNanos = int64(r.uvarint())
	h.periodNanos = int64(r.uvarint())
	h.types = cpuTypes
	if version == blockVersionTyped {
		h.types = typeSet(r.uvarint())
		if h.types == 0 || h.types>>numValues != 0 {
			return h, fmt.Errorf("block of sample types %#x: none, or one this build does not know", uint64(h.types))
		}
	}
	idx := h.types.indexes()
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
			rec := record{labelSet: labelSetID, stack: stack}
			for _, t := range idx {
				if t == schema.CPUIndex {
					rec.cpu[t] = gr.varint() + rec.count()*h.periodNanos
				} else {
					rec.setValue(t, int64(gr.uvarint()))
				}
			}
			if gr.err == nil {
				visit(rec)
			}
		}
		if gr.err != nil {
			return h, gr.err
		}
	}
	return h, r.err
}

// sums accumulates records by (label set, stack).
type sums map[uint64]*record

func (s sums) add(r record) {
	k := uint64(r.labelSet)<<32 | uint64(r.stack)
	v := s[k]
	if v == nil {
		s[k] = &r
		return
	}
	v.add(&r)
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
		recs[i] = *s[k]
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
			r.add(&b[j])
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
