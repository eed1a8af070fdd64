package storage

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// metaDictIndexKey holds, per kind, the highest id that the hash index
// covers: entries above it (written by an Ember that kept the dictionary
// in memory and wrote no index) are indexed at Open.
var metaDictIndexKey = []byte{prefixMeta, 'd', 'i', 'c', 't', 'i', 'd', 'x'}

// scanDictionary counts the entries of each kind on disk and finds the
// highest id, reading keys only.
func (d *dictionary) scanDictionary(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict}, PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		last, count := (*uint32)(nil), (*int)(nil)
		if len(k) == 6 {
			last, count = d.counters(k[1])
		}
		if last == nil {
			return fmt.Errorf("bad dictionary key %x", k)
		}
		id := binary.BigEndian.Uint32(k[2:])
		if id == 0 {
			return fmt.Errorf("dictionary entry %x with id 0", k)
		}
		*last = max(*last, id)
		*count++
	}
	return nil
}

// indexMeta is the value of metaDictIndexKey for the current last ids.
func (d *dictionary) indexMeta() []byte {
	var b []byte
	for _, k := range dictKinds {
		last, _ := d.counters(k)
		b = binary.BigEndian.AppendUint32(b, *last)
	}
	return b
}

// buildHashIndex indexes the entries that the hash index does not cover
// yet: all of them in a store written before it existed.
func (s *Store) buildHashIndex() error {
	d := s.dict
	var indexed [5]uint32
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaDictIndexKey)
		if err == badger.ErrKeyNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			for i := range indexed {
				if len(v) >= 4*(i+1) {
					indexed[i] = binary.BigEndian.Uint32(v[4*i:])
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	began := time.Now()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	for i, kind := range dictKinds {
		last, _ := d.counters(kind)
		if *last <= indexed[i] {
			continue
		}
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict, kind}})
			defer it.Close()
			for it.Seek(dictKey(kind, indexed[i]+1)); it.Valid(); it.Next() {
				k := it.Item().Key()
				id := binary.BigEndian.Uint32(k[2:])
				var key []byte
				err := it.Item().Value(func(v []byte) error {
					var err error
					key, err = valueKey(kind, string(v))
					return err
				})
				if err != nil {
					return fmt.Errorf("dictionary entry %x: %w", k, err)
				}
				if err := wb.Set(hashKey(kind, key), idBytes(id)); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	if err := wb.Set(metaDictIndexKey, d.indexMeta()); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.log.Info("dictionary hash index built", slog.Int("entries", n), slog.Duration("took", time.Since(began)))
	return nil
}

// recordUsedIDs writes the used-id records that blocks lack: all of them
// in a store written before records existed. Intervals without a record
// are read; so are roll-ups of hours that have no intervals left (their
// intervals record what the roll-ups hold).
func (s *Store) recordUsedIDs() error {
	recorded := make(map[int64]bool) // level-0 starts with a record
	hours := make(map[uint32]bool)   // hours with any record
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixUsed}, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			start, level, ok := parseUsedKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("bad used-id record key %x", it.Item().Key())
			}
			if level == 0 {
				recorded[start] = true
			}
			hours[hourOf(start)] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	var missing []plannedBlock
	for _, ref := range s.index[0] {
		if !recorded[ref.startNanos] {
			missing = append(missing, plannedBlock{0, ref})
			hours[hourOf(ref.startNanos)] = true
		}
	}
	for level := 1; level < numLevels; level++ {
		for _, ref := range s.index[level] {
			if !hours[hourOf(ref.startNanos)] {
				missing = append(missing, plannedBlock{level, ref})
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	began := time.Now()
	memo := usedMemo{max: s.dict.used.max}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	all := func(uint32) bool { return true }
	var recs []record
	for _, pb := range missing {
		recs = recs[:0]
		if _, err := readBlock(txn, pb, all, func(r record) { recs = append(recs, r) }); err != nil {
			return fmt.Errorf("read block to record its ids: %w", err)
		}
		hour := hourOf(pb.ref.startNanos)
		u := memo.newUsed(hour, usedIDsOf(recs))
		if err := wb.Set(usedKey(pb.ref.startNanos, pb.level), u.encode()); err != nil {
			return err
		}
		memo.recorded(hour, u)
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.log.Info("recorded the dictionary ids that stored blocks use", slog.Int("blocks", len(missing)),
		slog.Duration("took", time.Since(began)))
	return nil
}
