package storage

import (
	"encoding/binary"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Dictionary collection, without a table per entry in memory: the used-id
// records of the hours still stored say which stacks and label sets are in
// use (each block's record lists what no earlier record of its hour did,
// so an hour's records together list everything its blocks use); the live
// stacks say which locations are, and those which functions and mappings.
// Everything else, with its hash index key, and the records of hours no
// longer stored, is deleted. One pass over the dictionary on disk, with a
// bit per id in memory, once the oldest stored hour moves.

// idSet is a set of ids, a bit each.
type idSet []uint64

func newIDSet(last uint32) idSet { return make(idSet, last/64+1) }

func (s idSet) add(id uint32) {
	if int(id/64) < len(s) {
		s[id/64] |= 1 << (id % 64)
	}
}

func (s idSet) has(id uint32) bool { return int(id/64) < len(s) && s[id/64]&(1<<(id%64)) != 0 }

// garbage is what a collection deletes.
type garbage struct {
	entries []entryID
	records [][]byte // used-id record keys of hours no longer stored
}

// findGarbage finds the entries that no block starting in oldestHour or
// later uses. The caller holds s.mu for writing, so no append runs.
func (s *Store) findGarbage(txn *badger.Txn, oldestHour uint32) (garbage, error) {
	d := s.dict
	var g garbage
	live := map[byte]idSet{}
	for _, k := range dictKinds {
		last, _ := d.counters(k)
		live[k] = newIDSet(*last)
	}
	oldestNanos := int64(oldestHour) * int64(time.Hour)
	err := iterate(txn, []byte{prefixUsed}, true, func(k, v []byte) error {
		start, _, ok := parseUsedKey(k)
		if ok && start < oldestNanos {
			g.records = append(g.records, append([]byte(nil), k...))
			return nil
		}
		return decodeUsed(v, live[kindStack].add, live[kindLabelSet].add)
	})
	if err != nil {
		return g, err
	}
	// Stacks, then the locations they use, then what those use.
	var ids []uint32
	for _, kind := range []byte{kindStack, kindLabelSet, kindLocation, kindFunction, kindMapping} {
		withValues := kind == kindStack || kind == kindLocation
		err := iterate(txn, []byte{prefixDict, kind}, withValues, func(k, v []byte) error {
			id := binary.BigEndian.Uint32(k[2:])
			if !live[kind].has(id) {
				g.entries = append(g.entries, entryID{kind, id})
				return nil
			}
			switch kind {
			case kindStack:
				var err error
				if ids, err = decodeStack(ids[:0], string(v)); err != nil {
					return nil // unreadable: leave what it may refer to
				}
				for _, loc := range ids {
					live[kindLocation].add(loc)
				}
			case kindLocation:
				l, err := decodeLocation(string(v))
				if err != nil {
					return nil
				}
				live[kindMapping].add(l.mappingID)
				for _, ln := range l.lines {
					live[kindFunction].add(ln.functionID)
				}
			}
			return nil
		})
		if err != nil {
			return g, err
		}
	}
	return g, nil
}

// deleteGarbage deletes what findGarbage found, with the hash index keys
// that point at dead entries.
func (s *Store) deleteGarbage(txn *badger.Txn, g garbage) error {
	d := s.dict
	dead := map[byte]idSet{}
	for _, k := range dictKinds {
		last, _ := d.counters(k)
		dead[k] = newIDSet(*last)
	}
	for _, e := range g.entries {
		dead[e.kind].add(e.id)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := iterate(txn, []byte{prefixHash}, true, func(k, v []byte) error {
		if len(k) < 2 || len(v) != 4 || dead[k[1]] == nil || !dead[k[1]].has(binary.BigEndian.Uint32(v)) {
			return nil
		}
		return wb.Delete(append([]byte(nil), k...))
	})
	if err != nil {
		return err
	}
	for _, e := range g.entries {
		if err := wb.Delete(dictKey(e.kind, e.id)); err != nil {
			return err
		}
	}
	for _, k := range g.records {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	for _, e := range g.entries {
		_, count := d.counters(e.kind)
		*count--
		d.cache.remove(e.kind, e.id)
	}
	d.used = usedMemo{max: d.used.max} // its hour's records may be gone
	return nil
}

// iterate calls fn with each key under prefix and, if withValues, its
// value; both are valid during the call only.
func iterate(txn *badger.Txn, prefix []byte, withValues bool, fn func(k, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var err error
		if withValues {
			err = item.Value(func(v []byte) error { return fn(item.Key(), v) })
		} else {
			err = fn(item.Key(), nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
