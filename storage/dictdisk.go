package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
)

// On disk, besides the entries themselves ('d' kind id), the dictionary
// keeps two indexes (see the key list in index.go):
//
//   - 'h' kind hash → id: the entry whose value key hashes to hash, so that
//     an append finds an entry that has left the cache with one read. On a
//     hash collision the newer entry takes the key; the older one is then
//     found through the cache only, and at worst written again under a new
//     id, which costs a little space and no correctness.
//   - 'u' start level → the stack and label set ids a block uses that no
//     earlier record of its hour lists. The records of the hours still
//     stored say which entries are in use, without a table per entry in
//     memory (see dictgc.go).

// fnv-1a, inlined: stable across runs and allocation-free.
func hashValueKey(kind byte, key []byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	h = (h ^ uint64(kind)) * prime
	for _, c := range key {
		h = (h ^ uint64(c)) * prime
	}
	return h
}

func hashKey(kind byte, key []byte) []byte {
	k := []byte{prefixHash, kind, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(k[2:], hashValueKey(kind, key))
	return k
}

func idBytes(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

// readEntry reads one encoded entry.
func (d *dictionary) readEntry(txn *badger.Txn, kind byte, id uint32) (string, bool, error) {
	item, err := txn.Get(dictKey(kind, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var enc string
	err = item.Value(func(v []byte) error { enc = string(v); return nil })
	return enc, err == nil, err
}

// findOnDisk looks a value key up in the hash index.
func (d *dictionary) findOnDisk(txn *badger.Txn, kind byte, key []byte) (uint32, string, bool, error) {
	item, err := txn.Get(hashKey(kind, key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, err
	}
	var id uint32
	err = item.Value(func(v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("bad dictionary hash entry %x", item.Key())
		}
		id = binary.BigEndian.Uint32(v)
		return nil
	})
	if err != nil {
		return 0, "", false, err
	}
	enc, ok, err := d.readEntry(txn, kind, id)
	if err != nil || !ok {
		return 0, "", false, err // a stale index entry: not found
	}
	vk, err := valueKey(kind, enc)
	if err != nil || string(vk) != string(key) {
		return 0, "", false, nil // a collision
	}
	return id, enc, true, nil
}

// usedMemo is the set of stack and label set ids that the 'u' records of
// one hour already list, so that each block records only what is new in
// its hour. It is bounded: when full it starts over, and blocks list some
// ids again.
type usedMemo struct {
	hour uint32
	ids  map[entryID]struct{}
	max  int
}

// usedMemoEntryBytes approximates a memo entry's share of its map.
const usedMemoEntryBytes = 40

func usedKey(startNanos int64, level int) []byte {
	k := []byte{prefixUsed, 0, 0, 0, 0, 0, 0, 0, 0, byte(level)}
	binary.BigEndian.PutUint64(k[1:], uint64(startNanos))
	return k
}

func parseUsedKey(k []byte) (startNanos int64, level int, ok bool) {
	if len(k) != 10 || k[0] != prefixUsed {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(k[1:])), int(k[9]), true
}

// usedIDs are the stack and label set ids of a block, sorted.
type usedIDs struct{ stacks, labelSets []uint32 }

func usedIDsOf(recs []record) usedIDs {
	var u usedIDs
	for _, r := range recs {
		u.stacks = append(u.stacks, r.stack)
		if n := len(u.labelSets); n == 0 || u.labelSets[n-1] != r.labelSet {
			u.labelSets = append(u.labelSets, r.labelSet)
		}
	}
	slices.Sort(u.stacks)
	u.stacks = slices.Compact(u.stacks)
	slices.Sort(u.labelSets) // records are sorted by label set; never trust it blindly
	u.labelSets = slices.Compact(u.labelSets)
	return u
}

// newUsed drops the ids that the memo lists for hour.
func (m *usedMemo) newUsed(hour uint32, u usedIDs) usedIDs {
	if m.ids == nil || m.hour != hour {
		return u
	}
	keep := func(kind byte, ids []uint32) []uint32 {
		out := ids[:0]
		for _, id := range ids {
			if _, ok := m.ids[entryID{kind, id}]; !ok {
				out = append(out, id)
			}
		}
		return out
	}
	return usedIDs{stacks: keep(kindStack, u.stacks), labelSets: keep(kindLabelSet, u.labelSets)}
}

// recorded adds ids written in a record of hour.
func (m *usedMemo) recorded(hour uint32, u usedIDs) {
	if m.ids == nil || m.hour != hour || len(m.ids)+len(u.stacks)+len(u.labelSets) > m.max {
		m.ids = make(map[entryID]struct{})
		m.hour = hour
	}
	if len(u.stacks)+len(u.labelSets) > m.max {
		return
	}
	for _, id := range u.stacks {
		m.ids[entryID{kindStack, id}] = struct{}{}
	}
	for _, id := range u.labelSets {
		m.ids[entryID{kindLabelSet, id}] = struct{}{}
	}
}

func (u usedIDs) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(u.stacks)))
	b = appendDeltas(b, u.stacks)
	b = binary.AppendUvarint(b, uint64(len(u.labelSets)))
	return appendDeltas(b, u.labelSets)
}

func appendDeltas(b []byte, ids []uint32) []byte {
	var prev uint32
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(id-prev))
		prev = id
	}
	return b
}

// decodeUsed calls stack and labelSet with each id of a record.
func decodeUsed(b []byte, stack, labelSet func(uint32)) error {
	r := reader{b: b}
	for _, visit := range []func(uint32){stack, labelSet} {
		n := r.uvarint()
		if n > uint64(len(b)) {
			return errCorrupt
		}
		var id uint32
		for range n {
			id += uint32(r.uvarint())
			visit(id)
		}
	}
	return r.err
}

// blockWrites are the dictionary's keys to write with a block: new
// entries, their hash index keys, and the record of the ids the block
// uses (level 0 only: roll-ups use the ids of their hour's intervals).
func (d *dictionary) blockWrites(startNanos int64, recs []record) (kvs []keyValue, used usedIDs) {
	for _, e := range d.pending {
		kvs = append(kvs, keyValue{dictKey(e.kind, e.id), e.value}, keyValue{hashKey(e.kind, e.key), idBytes(e.id)})
	}
	if len(d.pending) > 0 {
		kvs = append(kvs, keyValue{metaDictIndexKey, d.indexMeta()})
	}
	// Written even when empty: a block without a record is one that an
	// older Ember wrote, which Open reads to make one.
	used = d.used.newUsed(hourOf(startNanos), usedIDsOf(recs))
	return append(kvs, keyValue{usedKey(startNanos, 0), used.encode()}), used
}

type keyValue struct{ key, value []byte }
