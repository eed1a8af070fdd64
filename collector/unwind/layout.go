package unwind

import (
	"errors"
	"fmt"
	"math"

	"github.com/ember-profiler/ember/bpf"
)

// The BPF unwinder reads a table as 4-byte words: an index with one entry
// per bucket of BucketBytes of the table's address range, then the rows.
// Index entry b is the number of rows whose PC is below b*BucketBytes, and
// the last entry the number of rows. A row word is the low 16 bits of its
// PC and a 16-bit rule ID, the rule's index in a table of distinct rules
// shared by every file (about 3,500 on a whole Debian /usr).
//
// A lookup reads two adjacent index entries and binary-searches the rows of
// one bucket (65 on average on /usr, at most BucketBytes): a handful of
// cache lines in two pages, against ~20 lines in as many pages for a binary
// search over the whole table. A row that starts before the bucket and
// holds into it is the one before the bucket's first.
const (
	BucketShift = int(bpf.SamplerUnwindLayoutBUCKET_SHIFT) // sampler.bpf.c's
	BucketBytes = 1 << BucketShift
	// MaxBucketRows bounds a bucket's rows (distinct PCs): the BPF search
	// takes log2(MaxBucketRows)+1 steps.
	MaxBucketRows = BucketBytes

	// A row word is the low rowPCBits of its PC and its rule ID above.
	rowPCBits = int(bpf.SamplerUnwindLayoutROW_PC_BITS)
	rowPCMask = 1<<rowPCBits - 1
)

// Rule IDs are uint16: this fails to compile unless the sampler's rule
// table holds exactly as many.
var _ = [1]struct{}{}[int(bpf.SamplerUnwindLayoutMAX_RULES)-(math.MaxUint16+1)]

// A Rule is how a row unwinds, without its address: the value of struct
// unwind_rule in sampler.bpf.c (CFA offset, saved-RBP offset, kind).
type Rule struct {
	CFAOffset int32
	RBPOffset int8
	Kind      uint8
}

// Rule returns the row's rule.
func (r Row) Rule() Rule { return Rule{CFAOffset: r.CFAOffset, RBPOffset: r.RBPOffset, Kind: r.Kind} }

// ErrNoRuleID: the shared rule table is full.
var ErrNoRuleID = errors.New("unwind rule table full")

// Words returns the table as the BPF unwinder reads it, and the number of
// buckets of its index. ruleID gives a rule's ID in the shared rule table,
// adding it if needed, or fails when the table is full.
func (t *Table) Words(ruleID func(Rule) (uint16, error)) (words []uint32, buckets uint32, err error) {
	if len(t.Rows) == 0 {
		return nil, 0, nil
	}
	last := t.Rows[len(t.Rows)-1].PC
	buckets = last>>BucketShift + 1
	words = make([]uint32, int(buckets)+1+len(t.Rows))
	index, rows := words[:buckets+1], words[buckets+1:]
	b := uint32(0)
	for i, r := range t.Rows {
		for ; b <= r.PC>>BucketShift; b++ {
			index[b] = uint32(i)
		}
		id, err := ruleID(r.Rule())
		if err != nil {
			return nil, 0, err
		}
		rows[i] = r.PC&rowPCMask | uint32(id)<<rowPCBits
	}
	for ; b <= buckets; b++ {
		index[b] = uint32(len(t.Rows))
	}
	// Both are bounded by construction (PCs are distinct); check anyway,
	// the BPF search relies on it.
	for b := uint32(0); b < buckets; b++ {
		if index[b+1]-index[b] > MaxBucketRows {
			return nil, 0, fmt.Errorf("bucket %d holds %d rows", b, index[b+1]-index[b])
		}
	}
	return words, buckets, nil
}

// LookupWords finds the row holding pc (relative to the table's base) in a
// table's words the way the BPF unwinder does, for tests. It returns the
// row's rule ID.
func LookupWords(words []uint32, buckets uint32, pc uint32) (uint16, bool) {
	b := pc >> BucketShift
	if b >= buckets || len(words) < int(buckets)+1 {
		return 0, false
	}
	rows := words[buckets+1:]
	lo, hi := words[b], words[b+1]
	if hi > uint32(len(rows)) || lo > hi {
		return 0, false
	}
	off := pc & rowPCMask
	if lo == hi || rows[lo]&rowPCMask > off {
		// The row holding pc starts before this bucket.
		if lo == 0 {
			return 0, false
		}
		return uint16(rows[lo-1] >> rowPCBits), true
	}
	// Invariant: rows[lo] <= off < rows[hi] (or hi is the bucket's end).
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if rows[mid]&rowPCMask <= off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return uint16(rows[lo] >> rowPCBits), true
}
