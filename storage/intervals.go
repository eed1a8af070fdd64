package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/pprof/profile"
)

// The read side for exporters: stored intervals one at a time, in the order
// they were appended, and a cursor per exporter that survives restarts. The
// store is the exporters' buffer: what a backend missed is read back from
// here, as far as retention reaches.

// IntervalRef names one stored interval (a level-0 block) by its key: the
// start it was stored under, unique and increasing in append order.
type IntervalRef struct {
	Key int64
}

// Start is when the interval began.
func (r IntervalRef) Start() time.Time { return time.Unix(0, r.Key) }

// IntervalsAfter returns up to max stored intervals whose key is greater
// than after, oldest first, and how many such intervals there are in all
// (the backlog of a reader at after).
func (s *Store) IntervalsAfter(after int64, max int) (refs []IntervalRef, backlog int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	level := s.index[0]
	i := s.index.search(0, after)
	if i < len(level) && level[i].startNanos == after {
		i++
	}
	backlog = len(level) - i
	for ; i < len(level) && len(refs) < max; i++ {
		refs = append(refs, IntervalRef{Key: level[i].startNanos})
	}
	return refs, backlog
}

// NewestInterval is the key of the newest stored interval; ok is false for
// an empty store.
func (s *Store) NewestInterval() (key int64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	level := s.index[0]
	if len(level) == 0 {
		return 0, false
	}
	return level[len(level)-1].startNanos, true
}

// ErrIntervalGone is returned (wrapped) by ReadInterval for an interval that
// retention or the disk limit removed since it was listed.
var ErrIntervalGone = errors.New("storage: interval no longer stored")

// ReadInterval returns one stored interval as Query would: its samples
// labelled comm, pid, exe, cgroup, container and the host labels, TimeNanos
// and DurationNanos those of the interval.
func (s *Store) ReadInterval(ctx context.Context, ref IntervalRef) (*profile.Profile, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	block, ok := s.index.find(0, ref.Key)
	if !ok {
		return nil, fmt.Errorf("interval at %s: %w", ref.Start().UTC().Format(time.RFC3339Nano), ErrIntervalGone)
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	var recs []record
	h, err := readBlock(txn, plannedBlock{0, block}, s.labelSetFilter(Selector{}, nil), func(r record) { recs = append(recs, r) })
	if err != nil {
		return nil, fmt.Errorf("storage: read interval: %w", err)
	}
	if !isSorted(recs) { // blocks are written sorted; never trust it blindly
		acc := make(sums)
		for _, r := range recs {
			acc.add(r)
		}
		recs = acc.records()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var vals blockValues
	vals.add(h)
	return s.buildProfile(recs, vals, ref.Start(), ref.Start().Add(time.Duration(h.durationNanos)), true)
}

// cursorKey is where the cursor of reader name is kept: 'M' "cursor/" name.
func cursorKey(name string) []byte {
	return append([]byte{prefixMeta}, "cursor/"+name...)
}

// Cursor returns the key of the last interval reader name has finished
// with (see SetCursor); ok is false when it has none yet.
func (s *Store) Cursor(name string) (key int64, ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(cursorKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("cursor %q: %d bytes", name, len(v))
			}
			key, ok = int64(binary.BigEndian.Uint64(v)), true
			return nil
		})
	})
	if err != nil {
		return 0, false, fmt.Errorf("storage: read cursor: %w", err)
	}
	return key, ok, nil
}

// SetCursor records that reader name has finished with the interval at
// key. It is written like an interval (no fsync): after a crash the reader
// may see an interval again, never skip one that it had not finished.
func (s *Store) SetCursor(name string, key int64) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(cursorKey(name), binary.BigEndian.AppendUint64(nil, uint64(key)))
	})
	if err != nil {
		return fmt.Errorf("storage: write cursor: %w", err)
	}
	return nil
}
