package storage

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// maintain runs retention, the disk limit and value-log GC every
// maintenanceEvery until ctx ends.
func (s *Store) maintain(ctx context.Context) {
	every(ctx, s.opts.maintenanceEvery, nil, s.done, func() {
		s.maintainOnce()
		if s.opts.afterMaintenance != nil {
			s.opts.afterMaintenance()
		}
	})
}

// compactLoop compacts the LSM tree when Append signals compactNow, or
// every maintenanceEvery, if Badger's levels ask for it. It takes no s.mu:
// an Append stalled on level 0 holds it, and compacting is what unstalls it.
func (s *Store) compactLoop(ctx context.Context) {
	every(ctx, s.opts.maintenanceEvery, s.compactNow, s.compacted, func() {
		if err := s.compactIfNeeded(); err != nil {
			s.log.Error("compaction failed", slog.Any("error", err))
		}
	})
}

// wakeCompaction asks compactLoop to look at the levels, without waiting.
func (s *Store) wakeCompaction() {
	select {
	case s.compactNow <- struct{}{}:
	default:
	}
}

// every calls fn every period and whenever wake fires (a nil wake never
// does) until ctx ends, then closes done.
func every(ctx context.Context, period time.Duration, wake <-chan struct{}, done chan<- struct{}, fn func()) {
	defer close(done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		fn()
	}
}

// compactIfNeeded compacts when level 0 holds more tables than Badger
// lets it keep, or a level has outgrown its target size, as Badger's own
// compactors would. Flatten moves the new tables down to the level that
// holds the rest: keys grow with time and ids, so they rarely overlap the
// older tables and the move is cheap.
func (s *Store) compactIfNeeded() error {
	need := false
	for _, l := range s.db.Levels() {
		if (l.Level == 0 && l.NumTables >= numLevelZeroTables) || (l.Level > 0 && l.Score >= 1) {
			need = true
		}
	}
	if !need || !s.roomToMaintain() {
		return nil
	}
	s.lsmMu.Lock()
	defer s.lsmMu.Unlock()
	start := time.Now()
	err := s.db.Flatten(1)
	s.log.Debug("compacted", slog.Duration("took", time.Since(start)), slog.Any("error", err))
	return err
}

// maintainOnce is one maintenance round; errors are logged, and the next
// round tries again.
func (s *Store) maintainOnce() {
	if !s.roomToMaintain() {
		return
	}
	if err := s.applyRetention(); err != nil {
		s.log.Error("retention failed", slog.Any("error", err))
	}
	if err := s.applyDiskLimit(); err != nil {
		s.log.Error("disk limit failed", slog.Any("error", err))
	}
	if err := s.collectDictionary(); err != nil {
		s.log.Error("dictionary garbage collection failed", slog.Any("error", err))
	}
	s.collectValueLog()
	if n, err := s.opts.diskBytes(s.opts.Dir); err == nil {
		s.diskBytes.Store(n)
	}
}

// roomToMaintain reports whether the filesystem has room for maintenance,
// which writes (deletions, compacted tables) through Badger's mmapped files
// and so would die with SIGBUS on a full disk.
func (s *Store) roomToMaintain() bool {
	free, err := s.opts.freeBytes(s.opts.Dir)
	if err != nil || free < s.writeFloor() {
		s.log.Debug("maintenance skipped: too little free space", slog.Int64("free_bytes", free), slog.Any("error", err))
		return false
	}
	return true
}

// writeFloor is the free space below which the store writes nothing: the
// configured minimum, but never less than a memtable flush needs.
func (s *Store) writeFloor() int64 {
	return max(s.opts.MinFreeDiskBytes, badgerHeadroomBytes)
}

// applyRetention removes blocks that start before now - Retention. Whole
// hours go with DropPrefix; blocks of the hour the cutoff falls in go one
// by one (a roll-up that starts before the cutoff goes too, and queries
// fall back to the finer blocks still inside the retention).
func (s *Store) applyRetention() error {
	cutoff := s.opts.now().Add(-s.opts.Retention).UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishDictStats() // runs before the unlock
	var hours []uint32
	var partial []plannedBlock
	cutoffHour := hourOf(cutoff)
	for level := range numLevels {
		for _, ref := range s.index.between(level, 0, cutoff) {
			if h := hourOf(ref.startNanos); h < cutoffHour {
				if len(hours) == 0 || hours[len(hours)-1] != h {
					hours = appendHour(hours, h)
				}
			} else {
				partial = append(partial, plannedBlock{level, ref})
			}
		}
	}
	if err := s.dropHours(hours); err != nil {
		return err
	}
	if len(partial) > 0 {
		if err := s.deleteBlocks(partial); err != nil {
			return err
		}
	}
	if len(hours) > 0 || len(partial) > 0 {
		s.log.Info("retention removed old data", slog.Int("hours", len(hours)), slog.Int("blocks", len(partial)),
			slog.Time("before", time.Unix(0, cutoff)))
	}
	return nil
}

// appendHour adds h to a list of hours that is sorted within each level.
func appendHour(hours []uint32, h uint32) []uint32 {
	for _, x := range hours {
		if x == h {
			return hours
		}
	}
	return append(hours, h)
}

// dropHours removes every block that starts in the given hours. The
// caller holds s.mu.
func (s *Store) dropHours(hours []uint32) error {
	if len(hours) == 0 {
		return nil
	}
	prefixes := make([][]byte, len(hours))
	for i, h := range hours {
		prefixes[i] = hourPrefix(h)
	}
	s.lsmMu.Lock()
	err := s.db.DropPrefix(prefixes...)
	s.lsmMu.Unlock()
	if err != nil {
		return err
	}
	drop := make(map[uint32]bool, len(hours))
	for _, h := range hours {
		drop[h] = true
	}
	for level := range numLevels {
		kept := s.index[level][:0]
		for _, ref := range s.index[level] {
			if !drop[hourOf(ref.startNanos)] {
				kept = append(kept, ref)
			}
		}
		s.index[level] = kept
	}
	return nil
}

// applyDiskLimit removes the oldest hours while the store is larger than
// MaxDiskBytes, down to 90% of it so that it does not trim every round.
// Encoded block sizes, scaled by the ratio of disk use to their sum,
// estimate what each hour holds on disk. The newest hour stays.
func (s *Store) applyDiskLimit() error {
	used, err := s.opts.diskBytes(s.opts.Dir)
	if err != nil {
		return err
	}
	if used <= s.opts.MaxDiskBytes {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishDictStats() // runs before the unlock
	perHour := make(map[uint32]int64)
	var total int64
	var newest uint32
	for level := range numLevels {
		for _, ref := range s.index[level] {
			h := hourOf(ref.startNanos)
			perHour[h] += ref.bytes
			total += ref.bytes
			newest = max(newest, h)
		}
	}
	if total == 0 {
		return nil
	}
	ratio := float64(used) / float64(total)
	target := float64(s.opts.MaxDiskBytes) * 0.9
	remaining := float64(used)
	var hours []uint32
	for _, h := range sortedHours(perHour) {
		if remaining <= target || h == newest {
			break
		}
		hours = append(hours, h)
		remaining -= float64(perHour[h]) * ratio
	}
	if err := s.dropHours(hours); err != nil {
		return err
	}
	s.log.Warn("store over its disk limit: removed the oldest data", slog.Int64("disk_bytes", used),
		slog.Int64("max_disk_bytes", s.opts.MaxDiskBytes), slog.Int("hours", len(hours)))
	return nil
}

func sortedHours(m map[uint32]int64) []uint32 {
	return slices.Sorted(maps.Keys(m))
}

// collectValueLog rewrites value-log files that are mostly garbage. Blocks
// are small enough to live in the LSM tree, so this mostly finds nothing.
func (s *Store) collectValueLog() {
	for range 10 {
		err := s.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.log.Warn("value log GC failed", slog.Any("error", err))
		}
		return
	}
}

// compact removes deleted data from disk now instead of in the background:
// it applies retention and the disk limit, flattens the LSM tree and
// collects the value log. The benchmark uses it to measure size after GC.
func (s *Store) compact() error {
	s.maintainOnce()
	s.lsmMu.Lock()
	err := s.db.Flatten(2)
	s.lsmMu.Unlock()
	if err := s.collectDictionary(); err != nil {
		s.log.Error("dictionary garbage collection failed", slog.Any("error", err))
	}
	s.collectValueLog()
	if n, err := s.opts.diskBytes(s.opts.Dir); err == nil {
		s.diskBytes.Store(n)
	}
	return err
}

// collectDictionary removes the dictionary entries that no stored block
// refers to any more, once retention or the disk limit has removed the
// oldest blocks: stacks and label sets that no block of the hours left
// uses, then the locations only they used, and the functions and mappings
// only those used (see dictgc.go). Without it the dictionary on disk would
// grow for as long as the daemon runs (every new pid is a new label set).
// It runs when the oldest stored hour has moved since the last collection.
func (s *Store) collectDictionary() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishDictStats()           // runs before the unlock
	oldestHour := uint32(math.MaxUint32) // no blocks: nothing is referred to
	if oldest, ok := s.index.oldest(); ok {
		oldestHour = hourOf(oldest)
	}
	if oldestHour == s.collectedBefore {
		return nil
	}
	began := time.Now()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	g, err := s.findGarbage(txn, oldestHour)
	if err != nil {
		return err
	}
	if len(g.entries) == 0 && len(g.records) == 0 {
		s.collectedBefore = oldestHour
		return nil
	}
	if err := s.deleteGarbage(txn, g); err != nil {
		return err
	}
	s.collectedBefore = oldestHour
	s.log.Info("dictionary entries no longer referred to removed", slog.Int("entries", len(g.entries)),
		slog.Int("stacks_left", s.dict.stacks.len()), slog.Int("label_sets_left", s.dict.labelSets.len()),
		slog.Duration("took", time.Since(began)))
	return nil
}
