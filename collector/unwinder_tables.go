package collector

// A file's table is loaded once, whichever process maps it first, and
// shared by every process that maps it; it stays loaded, idle, for a while
// after the last one exits, and goes to make room or when too old.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/unwind"
	"github.com/ember-profiler/ember/model"
)

// loadedTable is one file's words in the BPF table space, shared by every
// process that maps the file. Rows are not kept in Go memory once loaded.
type loadedTable struct {
	id            string
	base          uint64
	start, count  uint32 // words
	buckets       uint32 // index entries, less one
	rows          uint32
	framePointers bool
	notLoaded     bool // has rows but did not fit the budget
	refs          int
	idleSince     time.Time // when refs fell to 0; zero while referenced
	// files are those the sampler may install from with this table.
	files []bpf.SamplerFileKey
}

// Tables whose last process exited stay loaded for a while, so that a
// program that runs again and again (cron jobs, a build's compilers, shell
// pipelines) does not read, convert and write its table at every start:
// that was 41% of the daemon's CPU on a host starting many processes.
// They go after idleTableTTL, or sooner, oldest first, while the table
// space is more than idleTableShare full, so that they never keep a new
// table out.
const (
	idleTableTTL   = 10 * time.Minute
	idleTableShare = 0.5
)

func (u *unwindTables) release(t *loadedTable) {
	if t.refs--; t.refs > 0 {
		return
	}
	if t.notLoaded {
		delete(u.tables, t.id) // the next process to map it tries again
		return
	}
	t.idleSince = time.Now()
}

// drop removes an idle table; its shard is freed at the next advance, after
// any walk that read it has finished.
func (u *unwindTables) drop(t *loadedTable) {
	u.withdrawFilesLocked(t)
	delete(u.tables, t.id)
	if t.count > 0 {
		u.freeing = append(u.freeing, shard{t.start, t.count})
	}
}

// dropIdle drops idle tables past idleTableTTL, then the oldest others
// while the table space is more than idleTableShare full.
func (u *unwindTables) dropIdle(now time.Time) {
	var idle []*loadedTable
	var used uint64
	for _, t := range u.tables {
		if !t.notLoaded {
			used += uint64(t.count)
		}
		if t.refs == 0 && !t.idleSince.IsZero() {
			idle = append(idle, t)
		}
	}
	slices.SortFunc(idle, func(a, b *loadedTable) int { return a.idleSince.Compare(b.idleSince) })
	limit := uint64(float64(u.stats.WordCapacity) * idleTableShare)
	for _, t := range idle {
		if now.Sub(t.idleSince) < idleTableTTL && used <= limit {
			break
		}
		u.drop(t)
		used -= uint64(t.count)
	}
}

// advance frees the shards of tables dropped before the previous drain,
// and the chunks no table uses any more, and returns the current figures.
func (u *unwindTables) advance() model.UnwindTableStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	// What the sampler installed from a table must go before the table.
	if u.advances++; len(u.freeing) > 0 || u.advances%imageSweepEvery == 0 {
		u.sweepImagesLocked(u.currentImage, u.freeing)
		u.byStart = nil
	}
	for _, s := range u.freeing {
		u.alloc.release(s)
		u.unrefChunks(s)
	}
	u.freeing = u.freeing[:0]
	u.dropIdle(time.Now())
	st := u.stats
	for _, t := range u.tables {
		if t.refs == 0 && !t.idleSince.IsZero() {
			st.Idle++
		}
		switch {
		case t.framePointers && (t.count == 0 || t.notLoaded):
			st.FramePointerFiles++
		case !t.notLoaded:
			st.Tables++
			st.Rows += uint64(t.rows)
			st.Words += uint64(t.count)
		}
	}
	st.ChunkBytes = uint64(len(u.chunkRefs)) * chunkWords * wordBytes
	st.Rules = uint64(len(u.ruleIDs))
	st.Processes = uint64(len(u.installs))
	for _, t := range u.tables {
		st.OfferedFiles += uint64(len(t.files))
	}
	if u.cache != nil {
		st.CacheEvictions = u.cache.Evictions()
	}
	return st
}

// addTable loads a built table's words into BPF and registers it with no
// reference. Words are written outside the lock (a large library takes a
// while), into a shard no range points at yet. A table that does not fit
// is registered as not loaded. Only the installer goroutine calls it.
func (u *unwindTables) addTable(id string, tbl *unwind.Table, name string) {
	t := &loadedTable{id: id, base: tbl.Base, framePointers: tbl.FramePointers, rows: uint32(len(tbl.Rows))}
	if n := len(tbl.Rows); n > 0 {
		if err := u.loadTable(t, tbl); err != nil {
			t.notLoaded = true
			u.mu.Lock()
			u.stats.NotLoaded++
			u.stats.NotLoadedRows += uint64(n)
			u.mu.Unlock()
			u.log.Info("unwind table does not fit", slog.String("file", name), slog.Int("rows", n), slog.Any("err", err))
		}
	}
	u.mu.Lock()
	u.tables[id] = t
	u.mu.Unlock()
}

func (u *unwindTables) buildOrLoad(id string, f io.ReaderAt) (*unwind.Table, error) {
	if u.cache != nil {
		tbl, err := u.cache.Load(id)
		if err == nil {
			u.mu.Lock()
			u.stats.CacheHits++
			u.mu.Unlock()
			return tbl, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			u.log.Debug("unwind cache file rebuilt", slog.String("id", id), slog.Any("err", err))
		}
	}
	tbl, err := unwind.Build(f)
	if err != nil {
		return nil, err
	}
	if u.cache != nil {
		if err := u.cache.Store(id, tbl); err != nil {
			u.log.Debug("store unwind table", slog.Any("err", err))
		}
	}
	return tbl, nil
}

var errBudget = errors.New("unwind table budget full")

// maxTableWords bounds one table: libLLVM takes 1 M words.
const maxTableWords = 1 << 26

// loadTable writes a table's words into a free shard of the table space,
// creating the chunks it needs.
func (u *unwindTables) loadTable(t *loadedTable, tbl *unwind.Table) error {
	words, buckets, err := tbl.Words(u.ruleID)
	if err != nil {
		return err
	}
	if len(words) >= maxTableWords {
		return fmt.Errorf("%d words: more than one table may hold", len(words))
	}
	u.mu.Lock()
	s, ok := u.alloc.take(uint32(len(words)))
	if ok {
		if err = u.refChunks(s); err != nil {
			u.alloc.release(s)
		}
	}
	u.mu.Unlock()
	if !ok {
		return errBudget
	}
	if err != nil {
		return err
	}
	if err := u.writeWords(s.start, words); err != nil {
		u.mu.Lock()
		u.alloc.release(s)
		u.unrefChunks(s)
		u.mu.Unlock()
		return err
	}
	t.start, t.count, t.buckets = s.start, s.count, buckets
	return nil
}

// writeWords writes words from word index start on, block by block. The
// chunks exist: the shard holds references to them. A block shared with a
// neighbouring table is read first and only this table's words replaced;
// tables are written by one goroutine (run), so nothing else writes it.
func (u *unwindTables) writeWords(start uint32, words []uint32) error {
	var block [blockWords]uint32
	for len(words) > 0 {
		c, key := start>>chunkShift, start>>blockShift&(chunkBlocks-1)
		off := start & (blockWords - 1)
		n := min(len(words), int(blockWords-off))
		if n < blockWords {
			if err := u.maps.readBlock(c, key, &block); err != nil {
				return fmt.Errorf("read unwind table block: %w", err)
			}
		}
		copy(block[off:], words[:n])
		if err := u.maps.writeBlock(c, key, &block); err != nil {
			return fmt.Errorf("load unwind table words: %w", err)
		}
		words, start = words[n:], start+uint32(n)
	}
	return nil
}

// refChunks creates the chunks a shard needs and counts its reference to
// each. Called with u.mu held.
func (u *unwindTables) refChunks(s shard) error {
	first, last := s.start>>chunkShift, (s.start+s.count-1)>>chunkShift
	for c := first; c <= last; c++ {
		if u.chunkRefs[c] == 0 {
			if err := u.maps.addChunk(c); err != nil {
				if c > first {
					u.unrefChunks(shard{s.start, c<<chunkShift - s.start})
				}
				return err
			}
		}
		u.chunkRefs[c]++
	}
	return nil
}

// unrefChunks drops a shard's references to its chunks, and the chunks no
// shard uses. A walk in flight keeps a dropped chunk until it finishes.
// Called with u.mu held.
func (u *unwindTables) unrefChunks(s shard) {
	if s.count == 0 {
		return
	}
	first, last := s.start>>chunkShift, (s.start+s.count-1)>>chunkShift
	for c := first; c <= last; c++ {
		if u.chunkRefs[c]--; u.chunkRefs[c] > 0 {
			continue
		}
		delete(u.chunkRefs, c)
		u.maps.dropChunk(c)
	}
}

// ruleID returns a rule's index in the BPF rule table, adding it.
func (u *unwindTables) ruleID(r unwind.Rule) (uint16, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if id, ok := u.ruleIDs[r]; ok {
		return id, nil
	}
	n := len(u.ruleIDs)
	if n >= maxRules {
		return 0, unwind.ErrNoRuleID
	}
	v := bpf.SamplerUnwindRule{CfaOffset: r.CFAOffset, RbpOffset: r.RBPOffset, Kind: r.Kind}
	if err := u.maps.putRule(uint32(n), &v); err != nil {
		return 0, fmt.Errorf("add unwind rule: %w", err)
	}
	u.ruleIDs[r] = uint16(n)
	return uint16(n), nil
}
