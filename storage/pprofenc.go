package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/mainmapping"
	"github.com/ember-profiler/ember/schema"
)

// WriteProfile writes the merged profile of q to w as uncompressed pprof
// protobuf: the profile Query returns, encoded without building each of its
// samples first. A day has hundreds of thousands of labelled samples, and
// building and encoding them through profile.Profile took three times as
// long as the merge; here each stack and each label set is encoded once and
// copied into every sample that uses it.
//
// The profile reaches w in pieces of about writeChunkBytes as it is
// encoded, so that a compressor behind w can work alongside (a day's
// profile is over 30 MiB). After an error, w may hold part of a profile.
func (s *Store) WriteProfile(ctx context.Context, q ProfileQuery, w io.Writer) error {
	if err := checkRange(q.From, q.To); err != nil {
		return err
	}
	return s.encodeProfile(ctx, q, w)
}

// writeChunkBytes is how much encoded profile WriteProfile gathers before
// it writes.
const writeChunkBytes = 1 << 20

func (s *Store) encodeProfile(ctx context.Context, q ProfileQuery, w io.Writer) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	planned := s.index.plan(nil, q.From.UnixNano(), q.To.UnixNano(), s.maxLevel())
	recs, vals, err := s.mergePlanned(ctx, txn, planned, q.Selector)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Label sets are read as the records reach them (records come in label
	// set order), not all first: a day of a churning host has a label set
	// per process, and holding them decoded, with each one's encoded
	// labels, was a third of the download's live heap.
	stackIDs, _ := recordIDs(recs, false)
	qd, err := s.loadQueryDict(txn, stackIDs, nil)
	if err != nil {
		return fmt.Errorf("storage: read dictionary: %w", err)
	}
	// Without newProfileBuilder's tables of pprof locations and functions:
	// numberLocation numbers them instead.
	b := profileBuilder{dict: qd, p: &profile.Profile{}, mappings: make(map[uint32]*profile.Mapping)}
	labelSets := newLabelSetCursor(s.dict, txn)
	defer labelSets.close()
	e := pprofEncoder{strings: map[string]int64{"": 0}, stringTable: []string{""}}
	out := make([]byte, 0, writeChunkBytes+64<<10)
	flush := func() error {
		if len(out) < writeChunkBytes {
			return nil
		}
		_, err := w.Write(out)
		out = out[:0]
		return err
	}

	types := vals.types.orCPU()
	idx := types.indexes()
	for _, st := range types.sampleTypes() {
		out = e.appendValueType(out, 1, st.Type, st.Unit)
	}

	// Locations and functions are numbered as samples first meet them and
	// written at the end from the query's dictionary entries: building a
	// pprof Location and Function for each, and keeping each stack's
	// encoding for its repeats, was a third of an hour's live heap.
	// Indexed by dictionary id, which is dense: map probes were a tenth of
	// the time.
	locs, funcs := &pprofNumbering{}, &pprofNumbering{}
	var labels []byte // the label set of the record before's (labelsID)
	labelsID, labelsKnown, encoded := uint32(0), false, 0
	var programs mainmapping.Programs // which mapping goes first
	var ids []uint32
	var packed, stackField []byte
	lastStack := ^uint32(0)
	for i, r := range recs {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if labels == nil || r.labelSet != labelsID {
			ls, known := labelSets.get(r.labelSet)
			labels, labelsID, labelsKnown = e.labelSet(ls), r.labelSet, known
			if known {
				exe := ""
				for _, pair := range ls {
					if pair.name == schema.LabelExe {
						exe = pair.value
					}
				}
				programs.Add(exe)
			}
		}
		if !labelsKnown {
			continue // a label set the dictionary lost: left out, as Query leaves it
		}
		encoded++
		if r.stack != lastStack || stackField == nil {
			enc, known := b.dict.stacks.get(r.stack)
			if !known {
				return fmt.Errorf("storage: unknown stack %d", r.stack)
			}
			if ids, err = decodeStack(ids[:0], enc); err != nil {
				return fmt.Errorf("storage: stack %d: %w", r.stack, err)
			}
			packed = packed[:0]
			for _, id := range ids {
				pid, err := b.numberLocation(locs, funcs, id)
				if err != nil {
					return err
				}
				packed = binary.AppendUvarint(packed, pid)
			}
			stackField = appendBytesField(stackField[:0], 1, packed)
			lastStack = r.stack
		}
		var buf [2 + numValues*binary.MaxVarintLen64]byte
		values := buf[:2]
		for _, t := range idx {
			values = binary.AppendUvarint(values, uint64(r.value(t)))
		}
		buf[0], buf[1] = 2<<3|2, byte(len(values)-2) // field 2, packed; under 128 bytes
		out = binary.AppendUvarint(out, 2<<3|2)
		out = binary.AppendUvarint(out, uint64(len(stackField)+len(values)+len(labels)))
		out = append(out, stackField...)
		out = append(out, values...)
		out = append(out, labels...)
		if err := flush(); err != nil {
			return err
		}
	}

	// Samples refer to locations only: mappings can still be renumbered.
	if encoded > 0 {
		b.p.Mapping = mainmapping.Order(b.p.Mapping, programs)
	}
	var msg []byte
	for _, m := range b.p.Mapping {
		msg = appendVarintField(msg[:0], 1, m.ID)
		msg = appendVarintField(msg, 2, m.Start)
		msg = appendVarintField(msg, 3, m.Limit)
		msg = appendVarintField(msg, 4, m.Offset)
		msg = appendVarintField(msg, 5, uint64(e.str(m.File)))
		msg = appendVarintField(msg, 6, uint64(e.str(m.BuildID)))
		msg = appendBoolField(msg, 7, m.HasFunctions)
		msg = appendBoolField(msg, 8, m.HasFilenames)
		msg = appendBoolField(msg, 9, m.HasLineNumbers)
		msg = appendBoolField(msg, 10, m.HasInlineFrames)
		out = appendBytesField(out, 3, msg)
		if err := flush(); err != nil {
			return err
		}
	}
	var line []byte
	for i, dictID := range locs.order {
		l, _ := b.dict.locations.get(dictID) // numbered, so read
		address := l.address
		msg = appendVarintField(msg[:0], 1, uint64(i+1))
		if l.mappingID != 0 {
			m := b.mappings[l.mappingID] // made when the location was numbered
			msg = appendVarintField(msg, 2, m.ID)
			address += m.Start
		}
		msg = appendVarintField(msg, 3, address)
		for _, ln := range l.lines {
			line = line[:0]
			if ln.functionID != 0 {
				line = appendVarintField(line, 1, uint64(funcs.byDict.get(ln.functionID)))
			}
			line = appendVarintField(line, 2, uint64(ln.line))
			line = appendVarintField(line, 3, uint64(ln.column))
			msg = appendBytesField(msg, 4, line)
		}
		msg = appendBoolField(msg, 5, l.folded)
		out = appendBytesField(out, 4, msg)
		if err := flush(); err != nil {
			return err
		}
	}
	for i, dictID := range funcs.order {
		f, _ := b.dict.functions.get(dictID)
		msg = appendVarintField(msg[:0], 1, uint64(i+1))
		msg = appendVarintField(msg, 2, uint64(e.str(f.name)))
		msg = appendVarintField(msg, 3, uint64(e.str(f.systemName)))
		msg = appendVarintField(msg, 4, uint64(e.str(f.filename)))
		msg = appendVarintField(msg, 5, uint64(f.startLine))
		out = appendBytesField(out, 5, msg)
		if err := flush(); err != nil {
			return err
		}
	}
	out = appendVarintField(out, 9, uint64(q.From.UnixNano()))
	out = appendVarintField(out, 10, uint64(q.To.Sub(q.From).Nanoseconds()))
	out = e.appendValueType(out, 11, schema.PeriodType.Type, schema.PeriodType.Unit)
	out = appendVarintField(out, 12, uint64(vals.periodNanos))
	if def := types.defaultFor(q.SampleType); def != "" {
		out = appendVarintField(out, 14, uint64(e.str(def)))
	}
	// The string table last: every index above has been handed out by now.
	for _, str := range e.stringTable {
		out = binary.AppendUvarint(out, 6<<3|2)
		out = binary.AppendUvarint(out, uint64(len(str)))
		out = append(out, str...)
		if err := flush(); err != nil {
			return err
		}
	}
	_, err = w.Write(out)
	return err
}

// pprofNumbering numbers dictionary entries 1, 2, ... in the order a
// profile first refers to them.
type pprofNumbering struct {
	byDict pagedIDs // by dictionary id: its number, 0 for none yet
	order  []uint32 // dictionary ids by number - 1
}

// numberLocation returns the number of location id, giving it one, its
// functions theirs and making its mapping when it is new, in the order
// profileBuilder.location does, so that the profile is Query's.
func (b *profileBuilder) numberLocation(locs, funcs *pprofNumbering, id uint32) (uint64, error) {
	if n := locs.byDict.get(id); n != 0 {
		return uint64(n), nil
	}
	l, ok := b.dict.locations.get(id)
	if !ok {
		return 0, fmt.Errorf("storage: unknown or unreadable location %d", id)
	}
	if l.mappingID != 0 {
		if _, err := b.mapping(l.mappingID); err != nil {
			return 0, err
		}
	}
	for _, ln := range l.lines {
		if ln.functionID == 0 {
			continue
		}
		if _, known := b.dict.functions.get(ln.functionID); !known {
			return 0, fmt.Errorf("storage: unknown function %d", ln.functionID)
		}
		if funcs.byDict.get(ln.functionID) == 0 {
			funcs.order = append(funcs.order, ln.functionID)
			funcs.byDict.set(ln.functionID, int32(len(funcs.order)))
		}
	}
	locs.order = append(locs.order, id)
	locs.byDict.set(id, int32(len(locs.order)))
	return uint64(len(locs.order)), nil
}

// pprofEncoder holds a profile's string table while it is written.
type pprofEncoder struct {
	strings     map[string]int64
	stringTable []string
}

func (e *pprofEncoder) str(s string) int64 {
	if i, ok := e.strings[s]; ok {
		return i
	}
	i := int64(len(e.stringTable))
	s = strings.Clone(s) // s may point into a label set's entry, not to be kept
	e.strings[s] = i
	e.stringTable = append(e.stringTable, s)
	return i
}

func (e *pprofEncoder) appendValueType(b []byte, field int, typ, unit string) []byte {
	var msg []byte
	msg = appendVarintField(msg, 1, uint64(e.str(typ)))
	msg = appendVarintField(msg, 2, uint64(e.str(unit)))
	return appendBytesField(b, field, msg)
}

// labelSet encodes a label set's sample labels as Query labels them: string
// labels in name order, then pid as a number when it is one.
func (e *pprofEncoder) labelSet(ls labelSet) []byte {
	var out, msg []byte
	pid, hasPid := int64(0), false
	for _, pair := range ls {
		if pair.name == schema.LabelPID {
			if n, err := strconv.ParseInt(pair.value, 10, 64); err == nil {
				pid, hasPid = n, true
				continue
			}
		}
		msg = appendVarintField(msg[:0], 1, uint64(e.str(pair.name)))
		msg = appendVarintField(msg, 2, uint64(e.str(pair.value)))
		out = appendBytesField(out, 3, msg)
	}
	if hasPid {
		msg = appendVarintField(msg[:0], 1, uint64(e.str(schema.LabelPID)))
		msg = appendVarintField(msg, 3, uint64(pid))
		out = appendBytesField(out, 3, msg)
	}
	if out == nil {
		out = []byte{} // not nil: marks the label set as done
	}
	return out
}

// labelSetCursor reads label sets in increasing id order, with one
// iterator that steps forward or seeks.
type labelSetCursor struct {
	d  *dictionary
	it *badger.Iterator
}

func newLabelSetCursor(d *dictionary, txn *badger.Txn) *labelSetCursor {
	return &labelSetCursor{d: d, it: txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict, kindLabelSet}, PrefetchValues: false})}
}

// get returns label set id and whether it is stored and readable.
func (c *labelSetCursor) get(id uint32) (labelSet, bool) {
	if enc, ok := c.d.cache.get(kindLabelSet, id); ok {
		ls, err := decodeLabelSet(enc)
		return ls, err == nil
	}
	key := dictKey(kindLabelSet, id)
	it := c.it
	// A few steps forward cost less than a seek.
	for step := 0; step < 16 && it.Valid() && bytes.Compare(it.Item().Key(), key) < 0; step++ {
		it.Next()
	}
	if !it.Valid() || bytes.Compare(it.Item().Key(), key) < 0 {
		it.Seek(key)
	}
	if !it.Valid() || !bytes.Equal(it.Item().Key(), key) {
		return nil, false
	}
	var ls labelSet
	err := it.Item().Value(func(v []byte) error {
		var err error
		ls, err = decodeLabelSet(string(v))
		return err
	})
	return ls, err == nil
}

func (c *labelSetCursor) close() { c.it.Close() }

// Protocol buffer wire format: a key is field<<3 | wire type (0 varint,
// 2 length-delimited). Zero varints are left out, as proto3 does.

func appendVarintField(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(field)<<3)
	return binary.AppendUvarint(b, v)
}

func appendBoolField(b []byte, field int, v bool) []byte {
	if !v {
		return b
	}
	return appendVarintField(b, field, 1)
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
