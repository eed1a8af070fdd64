package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	mathbits "math/bits"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
)

// fetch calls fn with the encoding of each of ids (sorted, distinct) that
// exists, from the cache or else the disk. Misses are read with one
// iterator in id order: the ids of a result are mostly runs of neighbours,
// which the iterator reaches with Next instead of a lookup each. What comes
// from disk enters the cache unreferenced, first to leave again, unless it
// would fill much of it: a day-long query would only push out what appends
// use, and pay for the inserts.
func (d *dictionary) fetch(txn *badger.Txn, kind byte, ids []uint32, fn func(id uint32, enc string)) error {
	var misses []uint32
	type hit struct {
		id  uint32
		enc string
	}
	var hits []hit
	d.cache.mu.Lock()
	for _, id := range ids {
		if enc, ok := d.cache.getLocked(kind, id); ok {
			hits = append(hits, hit{id, enc})
		} else {
			misses = append(misses, id)
		}
	}
	d.cache.mu.Unlock()
	for _, h := range hits {
		fn(h.id, h.enc)
	}
	if len(misses) == 0 {
		return nil
	}
	read := make([]hit, 0, len(misses))
	if len(misses) <= 4 {
		for _, id := range misses {
			enc, ok, err := d.readEntry(txn, kind, id)
			if err != nil {
				return fmt.Errorf("read dictionary entry %c%d: %w", kind, id, err)
			}
			if ok {
				read = append(read, hit{id, enc})
			}
		}
	} else {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict, kind}, PrefetchValues: false})
		defer it.Close()
		for _, id := range misses {
			key := dictKey(kind, id)
			// A few steps forward cost less than a seek.
			for step := 0; step < 16 && it.Valid() && bytes.Compare(it.Item().Key(), key) < 0; step++ {
				it.Next()
			}
			if !it.Valid() || bytes.Compare(it.Item().Key(), key) < 0 {
				it.Seek(key)
			}
			if !it.Valid() || !bytes.Equal(it.Item().Key(), key) {
				continue // not stored: the caller says so
			}
			var enc string
			if err := it.Item().Value(func(v []byte) error { enc = string(v); return nil }); err != nil {
				return fmt.Errorf("read dictionary entry %c%d: %w", kind, id, err)
			}
			read = append(read, hit{id, enc})
			it.Next()
		}
	}
	var readBytes int64
	for _, h := range read {
		fn(h.id, h.enc)
		readBytes += int64(len(h.enc)) + cacheSlotOverhead
	}
	if readBytes > d.cache.budget/4 {
		return nil
	}
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	for _, h := range read {
		key, err := valueKey(kind, h.enc)
		if err == nil {
			d.cache.addLocked(kind, h.id, h.enc, key, false)
		}
	}
	return nil
}

// readAhead calls fn with the encoding of the entry id and of up to n-1
// entries of the same kind after it, in id order, without caching them:
// the label sets a query meets are read in runs this way, where a lookup
// each cost a few microseconds.
func (d *dictionary) readAhead(kind byte, id uint32, n int, fn func(id uint32, enc string)) error {
	if enc, ok := d.cache.get(kind, id); ok {
		fn(id, enc)
		return nil
	}
	return d.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict, kind}, PrefetchValues: false})
		defer it.Close()
		for it.Seek(dictKey(kind, id)); it.Valid() && n > 0; it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				fn(binary.BigEndian.Uint32(item.Key()[2:]), string(v))
				return nil
			})
			if err != nil {
				return fmt.Errorf("read dictionary entry %x: %w", item.Key(), err)
			}
			n--
		}
		return nil
	})
}

// labelSetReader reads the label sets one query meets, in runs of
// readAhead, and keeps them for the query. Read one Get at a time, each
// label set cost a block of Badger's table decompressed: on a churning
// host's store (a label set per process) the series and label endpoints
// allocated 1.5 GB in four minutes that way.
type labelSetReader struct {
	d    *dictionary
	sets map[uint32]labelSet // nil: not stored or unreadable
}

func (d *dictionary) newLabelSetReader() *labelSetReader {
	return &labelSetReader{d: d, sets: make(map[uint32]labelSet)}
}

func (r *labelSetReader) get(id uint32) labelSet {
	ls, _ := r.lookup(id)
	return ls
}

// lookup returns label set id and whether it is stored and readable.
func (r *labelSetReader) lookup(id uint32) (labelSet, bool) {
	if ls, ok := r.sets[id]; ok {
		return ls, ls != nil
	}
	_ = r.d.readAhead(kindLabelSet, id, labelSetReadAhead, func(lid uint32, enc string) {
		if _, ok := r.sets[lid]; !ok {
			if ls, err := decodeLabelSet(enc); err == nil {
				if ls == nil {
					ls = labelSet{} // stored, without labels: not nil, which means unknown
				}
				r.sets[lid] = ls
			}
		}
	}) // an unreadable label set is an empty one
	ls, ok := r.sets[id]
	if !ok || ls == nil {
		r.sets[id] = nil
		return nil, false
	}
	return ls, true
}

// queryDict holds the dictionary entries one query's result needs, read
// in batches before the result is built.
type queryDict struct {
	stacks    idTable[string]
	locations idTable[location]
	functions idTable[function]
	mappings  idTable[mapping]
	labelSets idTable[labelSet]
}

// idTable holds entries beside their sorted ids: a day's query reads
// hundreds of thousands of entries, and maps of them held about twice
// what the entries do.
type idTable[V any] struct {
	ids  []uint32 // sorted, distinct
	vals []V
	has  []bool // read and decoded
}

func newIDTable[V any](ids []uint32) idTable[V] {
	return idTable[V]{ids: ids, vals: make([]V, len(ids)), has: make([]bool, len(ids))}
}

func (t *idTable[V]) set(id uint32, v V) {
	if i, ok := slices.BinarySearch(t.ids, id); ok {
		t.vals[i], t.has[i] = v, true
	}
}

// get returns entry id and whether it was read.
func (t *idTable[V]) get(id uint32) (V, bool) {
	if i, ok := slices.BinarySearch(t.ids, id); ok && t.has[i] {
		return t.vals[i], true
	}
	var zero V
	return zero, false
}

// loadQueryDict reads the entries of the given stacks (and what they refer
// to) and label sets. Entries that are not stored are left out; the
// profile builder reports them.
func (s *Store) loadQueryDict(txn *badger.Txn, stackIDs, labelSetIDs []uint32) (*queryDict, error) {
	d := s.dict
	// Sized by distinct ids: a result's records repeat their stacks and
	// label sets, and maps sized by the records held 39 of a 24 h
	// profile's 83 MiB of dictionary.
	stackIDs, labelSetIDs = sortedIDs(stackIDs), sortedIDs(labelSetIDs)
	q := &queryDict{stacks: newIDTable[string](stackIDs), labelSets: newIDTable[labelSet](labelSetIDs)}
	// Each location once, in a bit set: appended with their repeats, a
	// day's stacks' location ids were 65-160 MB allocated.
	locSet := growableIDSet{set: newIDSet(d.locations.last)}
	var ids []uint32
	err := d.fetch(txn, kindStack, stackIDs, func(id uint32, enc string) {
		q.stacks.set(id, enc)
		ids, _ = decodeStack(ids[:0], enc) // a corrupt stack is reported when it is built
		for _, l := range ids {
			locSet.add(l)
		}
	})
	if err != nil {
		return nil, err
	}
	locIDs := locSet.members()
	locSet = growableIDSet{}
	q.locations = newIDTable[location](locIDs)
	var funcIDs, mapIDs []uint32
	err = d.fetch(txn, kindLocation, locIDs, func(id uint32, enc string) {
		l, err := decodeLocation(enc)
		if err != nil {
			return // reported as unknown
		}
		q.locations.set(id, l)
		if l.mappingID != 0 {
			mapIDs = append(mapIDs, l.mappingID)
		}
		for _, ln := range l.lines {
			if ln.functionID != 0 {
				funcIDs = append(funcIDs, ln.functionID)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	q.functions = newIDTable[function](sortedIDs(funcIDs))
	err = d.fetch(txn, kindFunction, q.functions.ids, func(id uint32, enc string) {
		if f, err := decodeFunction([]byte(enc)); err == nil {
			q.functions.set(id, f)
		}
	})
	if err != nil {
		return nil, err
	}
	q.mappings = newIDTable[mapping](sortedIDs(mapIDs))
	err = d.fetch(txn, kindMapping, q.mappings.ids, func(id uint32, enc string) {
		if m, err := decodeMapping([]byte(enc)); err == nil {
			q.mappings.set(id, m)
		}
	})
	if err != nil {
		return nil, err
	}
	err = d.fetch(txn, kindLabelSet, labelSetIDs, func(id uint32, enc string) {
		if ls, err := decodeLabelSet(enc); err == nil {
			q.labelSets.set(id, ls)
		}
	})
	return q, err
}

// sortedIDs returns ids in order without repeats, in place. A result's
// records repeat their stacks many times over: a bit per id and one pass
// beat sorting them all (a fifth of a 1 h query's time).
func sortedIDs(ids []uint32) []uint32 {
	var top uint32
	for _, id := range ids {
		top = max(top, id)
	}
	if len(ids) < 64 || int(top/64) > 4*len(ids) {
		slices.Sort(ids)
		return slices.Compact(ids)
	}
	set := newIDSet(top)
	for _, id := range ids {
		set.add(id)
	}
	out := ids[:0]
	for w, bits := range set {
		for ; bits != 0; bits &= bits - 1 {
			out = append(out, uint32(w*64+mathbits.TrailingZeros64(bits)))
		}
	}
	return out
}

// recordIDs returns the stack and label set ids of records.
func recordIDs(recs []record, withLabels bool) (stacks, labelSets []uint32) {
	stacks = make([]uint32, len(recs))
	for i, r := range recs {
		stacks[i] = r.stack
		if withLabels && (i == 0 || recs[i-1].labelSet != r.labelSet) {
			labelSets = append(labelSets, r.labelSet)
		}
	}
	return stacks, labelSets
}
