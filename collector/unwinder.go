package collector

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/unwind"
)

// wordBytes is the size of one word of a table in BPF (a row or an index
// entry, see unwind.Table.Words).
const wordBytes = 4

// Tables live in BPF array maps of chunkWords words (256 KiB), created
// when a table first needs one and dropped when none does: the budget
// bounds the memory without paying for it up front. A chunk's elements are
// blocks of blockWords words, since the kernel rounds an element up to 8
// bytes. Must match CHUNK_SHIFT and BLOCK_SHIFT in sampler.bpf.c.
const (
	chunkShift  = 16
	chunkWords  = 1 << chunkShift
	blockShift  = 10
	blockWords  = 1 << blockShift
	chunkBlocks = chunkWords / blockWords
)

// chunksFor is the number of chunks that hold words.
func chunksFor(words uint32) uint32 { return uint32((uint64(words) + chunkWords - 1) / chunkWords) }

// maxRules is the size of the shared rule table (MAX_RULES); rule 0 is the
// gap rule, which a word of a chunk being dropped reads as.
const maxRules = 1 << 16

// A process whose stacks leave its known ranges has its mappings read
// again: at once the first time (a dlopen right after start), then at
// doubling intervals up to refreshMax, so JIT code does not ask forever.
const (
	refreshFirst = 250 * time.Millisecond
	refreshMax   = 30 * time.Second
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

// installedProc is what one process image has in the BPF maps.
type installedProc struct {
	execSeq   uint32
	keys      []bpf.SamplerRangeKey
	tables    []string
	installed time.Time
	refreshes int    // mapping re-reads asked for so far
	seq       uint64 // of the snapshot installed
}

// unwindTables loads unwind tables and per-process ranges into the sampler's
// maps, within a row budget, and drops them when no process uses them.
type unwindTables struct {
	log    *slog.Logger
	chunks *ebpf.Map // of table words, an array of arrays
	rules  *ebpf.Map
	ranges *ebpf.Map
	procs  *ebpf.Map
	// rangesGen is the sampler's ranges_generation: each CPU keeps the
	// ranges it looked up per process until it changes, so every change to
	// ranges or procs must bump it, after the change.
	rangesGen *ebpf.Variable
	rangesSeq uint32
	cache     *unwind.Cache // nil: no disk cache

	mu    sync.Mutex
	alloc shardAllocator
	// chunkMaps are the chunks created, by index, and chunkRefs the
	// allocated shards that overlap each.
	chunkMaps map[uint32]*ebpf.Map
	chunkRefs map[uint32]int
	// ruleIDs are the rules in the BPF rule table; they are never removed.
	ruleIDs  map[unwind.Rule]uint16
	tables   map[string]*loadedTable
	installs map[uint32]*installedProc
	// freeing holds shards of tables no process uses, freed at the next
	// drain so that a sample walking them now finishes first.
	freeing []shard
	stats   UnwindTableStats
	// queue holds snapshots to install, builds those that need a table
	// built first.
	queue, builds chan queuedInstall
	snapshotSeq   atomic.Uint64
	// vdso is the kernel's vDSO image, the same in every process; it has
	// no file to open, so it is read once from this process's memory.
	vdso []byte
	// fileIDs are the files identified so far, and buildFailed the IDs
	// whose table could not be built: neither is redone per process.
	fileIDs     fileIDs
	buildFailed map[string]bool
}

func newUnwindTables(objs *bpf.SamplerObjects, capacityWords uint32, cacheDir string, log *slog.Logger) (*unwindTables, error) {
	u := &unwindTables{
		log:       log,
		chunks:    objs.UnwindChunks,
		rules:     objs.UnwindRules,
		ranges:    objs.UnwindRanges,
		procs:     objs.UnwindProcs,
		rangesGen: objs.RangesGeneration,
		alloc:     shardAllocator{free: []shard{{0, capacityWords}}},
		chunkMaps: make(map[uint32]*ebpf.Map),
		chunkRefs: make(map[uint32]int),
		ruleIDs:   make(map[unwind.Rule]uint16),
		tables:    make(map[string]*loadedTable),
		installs:  make(map[uint32]*installedProc),
	}
	u.queue, u.builds = make(chan queuedInstall, installQueue), make(chan queuedInstall, installQueue)
	u.buildFailed = make(map[string]bool)
	u.stats.WordCapacity = uint64(capacityWords)
	u.stats.RowCapacity = u.stats.WordCapacity
	// Rule 0 is a gap: what a walk reads from a chunk dropped under it.
	if _, err := u.ruleID(unwind.Rule{Kind: uint8(unwind.CFAGap)}); err != nil {
		return nil, err
	}
	if img, err := readVDSO("/proc/self"); err == nil {
		u.vdso = img
	} else {
		log.Debug("no vDSO unwind table", slog.Any("err", err))
	}
	if cacheDir != "" {
		c, err := unwind.NewCache(cacheDir, 0)
		if err != nil {
			return nil, err
		}
		u.cache = c
	}
	return u, nil
}

// installQueue bounds the processes waiting for their tables; a burst
// beyond it (thousands of new processes at once) is counted, and those
// processes keep the kernel's frame-pointer walk until their next execve.
const installQueue = 4096

// queuedInstall is a snapshot waiting for its ranges; seq orders the
// snapshots, so that an older one installed late does not undo a newer one.
type queuedInstall struct {
	p   *Process
	seq uint64
}

// enqueue hands a snapshot to the installer goroutines.
func (u *unwindTables) enqueue(p *Process) {
	if p == nil || p.SnapshotErr != nil {
		return
	}
	u.send(u.queue, queuedInstall{p, u.snapshotSeq.Add(1)})
}

func (u *unwindTables) send(queue chan queuedInstall, q queuedInstall) {
	select {
	case queue <- q:
	default:
		u.mu.Lock()
		u.stats.InstallsDropped++
		u.mu.Unlock()
	}
}

// run installs queued processes until ctx ends, skipping those gone by then.
// Processes whose tables are all loaded get their ranges at once; those
// that need a table built wait in a second queue, so that a new large
// program (a compiler on a build host) does not hold up every short-lived
// process behind it.
func (u *unwindTables) run(ctx context.Context, alive func(pid, execSeq uint32) bool) {
	var builder sync.WaitGroup
	builder.Add(1)
	go func() {
		defer builder.Done()
		u.drainQueue(ctx, u.builds, alive, true)
	}()
	u.drainQueue(ctx, u.queue, alive, false)
	builder.Wait()
}

func (u *unwindTables) drainQueue(ctx context.Context, queue chan queuedInstall, alive func(pid, execSeq uint32) bool, mayBuild bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-queue:
			if alive(q.p.PID, q.p.ExecSeq) && !u.installFrom(q, alive, mayBuild) {
				u.send(u.builds, q)
			}
		}
	}
}

// install gives a process image its ranges, loading the tables of its files
// as needed. Called again for the same image (new mappings), it replaces them.
func (u *unwindTables) install(p *Process, alive func(pid, execSeq uint32) bool) {
	u.installFrom(queuedInstall{p, u.snapshotSeq.Add(1)}, alive, true)
}

// installFrom is install for a queued snapshot. Unless mayBuild, it stops
// at the first table that would have to be built, having changed nothing,
// and returns false.
func (u *unwindTables) installFrom(q queuedInstall, alive func(pid, execSeq uint32) bool, mayBuild bool) bool {
	p := q.p
	if p == nil || p.SnapshotErr != nil || p.Exited {
		return true
	}
	start := time.Now()
	defer func() {
		u.log.Debug("unwind ranges installed", slog.Int("pid", int(p.PID)), slog.Int("mappings", len(p.Mappings)), slog.Duration("took", time.Since(start)))
	}()
	// Identify and build outside the lock: a large library takes a while,
	// and drains must not wait for it.
	type mapped struct {
		m     *Mapping
		id    string
		loads []progLoad
	}
	var todo []mapped
	for i := range p.Mappings {
		m := &p.Mappings[i]
		var file io.ReaderAt = m.File
		var ident identified
		if m.File == nil {
			if m.Path != "[vdso]" || u.vdso == nil {
				continue
			}
			file = bytes.NewReader(u.vdso)
			ident = u.fileIDs.identifyVDSO(file)
		} else {
			ident = u.fileIDs.identifyFile(m.File)
		}
		if ident.err != nil {
			continue // not ELF: nothing to unwind with
		}
		id, loads, cfiBytes := ident.id, ident.loads, ident.cfiBytes
		u.mu.Lock()
		if u.buildFailed[id] {
			u.mu.Unlock()
			continue // tried once: the file will not give a table
		}
		known := u.tables[id] != nil
		hopeless := !known && cfiBytes/minCFIBytesPerRow > uint64(u.alloc.largest())
		if hopeless {
			// Do not parse what cannot fit: a large binary would cost every
			// new collector a second of CPU for nothing.
			u.tables[id] = &loadedTable{id: id, notLoaded: true}
			u.stats.NotLoaded++
		}
		u.mu.Unlock()
		if hopeless {
			u.log.Info("unwind table does not fit", slog.String("file", m.Path), slog.Uint64("cfi_bytes", cfiBytes))
		}
		if !known && !hopeless && !mayBuild {
			return false
		}
		if !known && !hopeless {
			tbl, err := u.buildOrLoad(id, file)
			if err != nil {
				u.mu.Lock()
				u.stats.BuildErrors++
				if len(u.buildFailed) >= maxFileIDs {
					clear(u.buildFailed)
				}
				u.buildFailed[id] = true
				u.mu.Unlock()
				u.log.Debug("no unwind table", slog.String("path", m.Path), slog.Any("err", err))
				continue
			}
			// Registered without a reference; the loop below takes it.
			u.addTable(id, tbl, m.Path)
		}
		todo = append(todo, mapped{m: m, id: id, loads: loads})
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	old := u.installs[p.PID]
	if old != nil && old.execSeq == p.ExecSeq && old.seq > q.seq {
		return true // a newer snapshot of this image is in already
	}
	next := &installedProc{execSeq: p.ExecSeq, installed: time.Now(), seq: q.seq}
	if old != nil && old.execSeq == p.ExecSeq {
		next.refreshes = old.refreshes
	}
	for _, mp := range todo {
		t := u.tables[mp.id]
		if t == nil {
			continue // only this goroutine adds tables, and unreferenced ones stay
		}
		if t.refs++; !t.idleSince.IsZero() {
			t.idleSince = time.Time{}
			u.stats.IdleReused++
		}
		r := bpf.SamplerUnwindRange{Start: mp.m.Start, Limit: mp.m.Limit, Table: t.start, Buckets: t.buckets}
		switch {
		case t.framePointers:
			r.Kind = uint32(bpf.SamplerRangeKindRANGE_FP)
		case t.notLoaded:
			r.Kind = uint32(bpf.SamplerRangeKindRANGE_NO_TABLE)
		default:
			bias, ok := loadBias(mp.m, mp.loads)
			if !ok {
				u.release(t)
				continue
			}
			r.Kind = uint32(bpf.SamplerRangeKindRANGE_ROWS)
			r.Bias = bias + t.base
		}
		next.tables = append(next.tables, t.id)
		for _, k := range rangeKeys(p.PID, mp.m.Start, mp.m.Limit) {
			if err := u.ranges.Put(&k, &r); err != nil {
				u.stats.RangeErrors++
				continue
			}
			next.keys = append(next.keys, k)
		}
	}
	// Executable memory without a file (JIT compilers) has no table: walk
	// it by frame pointers, and let the frames around it check the walk.
	for i := range p.Mappings {
		m := &p.Mappings[i]
		if m.File != nil || m.Inode != 0 || strings.HasPrefix(m.Path, "[v") || m.Limit > 1<<47 {
			continue
		}
		r := bpf.SamplerUnwindRange{Start: m.Start, Limit: m.Limit, Kind: uint32(bpf.SamplerRangeKindRANGE_FP)}
		for _, k := range rangeKeys(p.PID, m.Start, m.Limit) {
			if err := u.ranges.Put(&k, &r); err != nil {
				u.stats.RangeErrors++
				continue
			}
			next.keys = append(next.keys, k)
		}
	}
	// Keys the new set overwrote stay; the rest of the old ones go.
	if old != nil {
		kept := make(map[bpf.SamplerRangeKey]bool, len(next.keys))
		for _, k := range next.keys {
			kept[k] = true
		}
		for _, k := range old.keys {
			if !kept[k] {
				u.ranges.Delete(&k)
			}
		}
		for _, id := range old.tables {
			if t := u.tables[id]; t != nil {
				u.release(t)
			}
		}
	}
	u.installs[p.PID] = next
	if err := u.procs.Put(p.PID, bpf.SamplerUnwindProc{ExecSeq: p.ExecSeq}); err != nil {
		u.log.Debug("enable unwinding", slog.Int("pid", int(p.PID)), slog.Any("err", err))
	}
	u.rangesChangedLocked()
	// An exit noticed while the tables were built found nothing to remove.
	if !alive(p.PID, p.ExecSeq) {
		u.removeLocked(p.PID)
	}
	return true
}

// retain drops the ranges of processes alive says are gone (an exit
// notification lost to a full ring buffer).
func (u *unwindTables) retain(alive func(pid, execSeq uint32) bool) {
	u.mu.Lock()
	var gone []uint32
	for pid, in := range u.installs {
		if !alive(pid, in.execSeq) {
			gone = append(gone, pid)
		}
	}
	u.mu.Unlock()
	for _, pid := range gone {
		u.remove(pid)
	}
}

// needsRefresh says whether a process asking for its mappings again should
// get them read now, and counts the ask.
func (u *unwindTables) needsRefresh(pid, execSeq uint32) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	in := u.installs[pid]
	if in == nil || in.execSeq != execSeq {
		return false
	}
	wait := refreshMax
	if in.refreshes < 8 {
		wait = min(refreshMax, refreshFirst<<in.refreshes)
	}
	if in.refreshes > 0 && time.Since(in.installed) < wait {
		return false
	}
	in.refreshes++
	return true
}

// remove drops a process's ranges and its references to tables.
func (u *unwindTables) remove(pid uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.removeLocked(pid)
}

func (u *unwindTables) removeLocked(pid uint32) {
	in := u.installs[pid]
	if in == nil {
		return
	}
	u.procs.Delete(pid)
	for _, k := range in.keys {
		u.ranges.Delete(&k)
	}
	for _, id := range in.tables {
		if t := u.tables[id]; t != nil {
			u.release(t)
		}
	}
	delete(u.installs, pid)
	u.rangesChangedLocked()
}

// rangesChangedLocked makes every CPU drop the ranges it keeps, so that its
// next walk looks them up again.
func (u *unwindTables) rangesChangedLocked() {
	u.rangesSeq++
	if err := u.rangesGen.Set(u.rangesSeq); err != nil {
		// Only if the sampler's .bss cannot be written, which loading
		// would have failed on already.
		u.log.Error("invalidate cached unwind ranges", slog.Any("err", err))
	}
}

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
func (u *unwindTables) advance() UnwindTableStats {
	u.mu.Lock()
	defer u.mu.Unlock()
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
		case t.framePointers:
			st.FramePointerFiles++
		case !t.notLoaded:
			st.Tables++
			st.Rows += uint64(t.rows)
			st.Words += uint64(t.count)
		}
	}
	st.ChunkBytes = uint64(len(u.chunkMaps)) * chunkWords * wordBytes
	st.Rules = uint64(len(u.ruleIDs))
	st.Processes = uint64(len(u.installs))
	if u.cache != nil {
		st.CacheEvictions = u.cache.Evictions()
	}
	return st
}

type progLoad struct{ off, vaddr, filesz uint64 }

// minCFIBytesPerRow: call-frame information takes about 5.3 bytes per row
// (libc, libLLVM); fewer than one row per 12 bytes would be unusual.
const minCFIBytesPerRow = 12

// identify returns a file's ID, its loadable segments, and the size of the
// CFI its table would be built from (0 for Go, walked by frame pointers).
func identify(f io.ReaderAt) (id string, loads []progLoad, cfiBytes uint64, err error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%w: %v", unwind.ErrNotELF, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, progLoad{p.Off, p.Vaddr, p.Filesz})
		}
	}
	if id, err = unwind.FileID(ef); err != nil {
		return "", nil, 0, err
	}
	if ef.Section(".gopclntab") == nil {
		for _, name := range []string{".eh_frame", ".debug_frame"} {
			if s := ef.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Size > 0 {
				cfiBytes = s.Size
				break
			}
		}
	}
	return id, loads, cfiBytes, nil
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
		u.mu.Lock()
		m := u.chunkMaps[start>>chunkShift]
		u.mu.Unlock()
		key := start >> blockShift & (chunkBlocks - 1)
		off := start & (blockWords - 1)
		n := min(len(words), int(blockWords-off))
		if n < blockWords {
			if err := m.Lookup(key, &block); err != nil {
				return fmt.Errorf("read unwind table block: %w", err)
			}
		}
		copy(block[off:], words[:n])
		if err := m.Update(key, &block, ebpf.UpdateExist); err != nil {
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
		if u.chunkMaps[c] == nil {
			m, err := ebpf.NewMap(&ebpf.MapSpec{
				Name:       "unwind_chunk",
				Type:       ebpf.Array,
				KeySize:    4,
				ValueSize:  blockWords * wordBytes,
				MaxEntries: chunkBlocks,
			})
			if err == nil {
				if err = u.chunks.Put(c, m); err != nil {
					m.Close()
				}
			}
			if err != nil {
				if c > first {
					u.unrefChunks(shard{s.start, c<<chunkShift - s.start})
				}
				return fmt.Errorf("create unwind table chunk: %w", err)
			}
			u.chunkMaps[c] = m
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
		if m := u.chunkMaps[c]; m != nil {
			u.chunks.Delete(c)
			m.Close()
			delete(u.chunkMaps, c)
		}
	}
}

// close releases the chunks; the sampler's maps are closed with it.
func (u *unwindTables) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c, m := range u.chunkMaps {
		m.Close()
		delete(u.chunkMaps, c)
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
	if err := u.rules.Put(uint32(n), &v); err != nil {
		return 0, fmt.Errorf("add unwind rule: %w", err)
	}
	u.ruleIDs[r] = uint16(n)
	return uint16(n), nil
}

// loadBias returns what to subtract from a runtime address in m to get the
// file's virtual address, from the PT_LOAD segment m maps. A segment's
// mapping starts at its page-aligned offset; with lld's layouts that page
// also ends the previous segment, so an exact start wins over containment.
func loadBias(m *Mapping, loads []progLoad) (uint64, bool) {
	bias := func(p progLoad) uint64 { return m.Start - m.Offset + p.off - p.vaddr }
	for _, p := range loads {
		if p.off&^0xfff == m.Offset {
			return bias(p), true
		}
	}
	for _, p := range loads {
		if m.Offset >= p.off&^0xfff && m.Offset < p.off+p.filesz {
			return bias(p), true
		}
	}
	return 0, false
}

// readVDSO copies the vDSO image out of a process's memory.
func readVDSO(procDir string) ([]byte, error) {
	raw, err := os.ReadFile(procDir + "/maps")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasSuffix(line, "[vdso]") {
			continue
		}
		m, _, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		if m.Limit-m.Start > 1<<20 {
			return nil, fmt.Errorf("vDSO of %d bytes", m.Limit-m.Start)
		}
		mem, err := os.Open(procDir + "/mem")
		if err != nil {
			return nil, err
		}
		defer mem.Close()
		img := make([]byte, m.Limit-m.Start)
		if _, err := mem.ReadAt(img, int64(m.Start)); err != nil {
			return nil, fmt.Errorf("read vDSO: %w", err)
		}
		return img, nil
	}
	return nil, errors.New("no [vdso] mapping")
}

// rangeKeys splits [start, limit) of a process into the aligned prefixes
// that the LPM trie matches.
func rangeKeys(pid uint32, start, limit uint64) []bpf.SamplerRangeKey {
	var keys []bpf.SamplerRangeKey
	for start < limit {
		size := uint64(1) << 63
		if start != 0 {
			size = start & -start
		}
		for size > limit-start {
			size >>= 1
		}
		k := bpf.SamplerRangeKey{Prefixlen: uint32(32 + 64 - bits.TrailingZeros64(size))}
		var raw [12]byte
		binary.BigEndian.PutUint32(raw[0:], pid)
		binary.BigEndian.PutUint64(raw[4:], start)
		// The key fields are in host order in Go; store the big-endian bytes.
		k.PidBe = binary.LittleEndian.Uint32(raw[0:])
		k.AddrBe = binary.LittleEndian.Uint64(raw[4:])
		keys = append(keys, k)
		start += size
	}
	return keys
}

// shard is a run of rows in the BPF array.
type shard struct{ start, count uint32 }

// shardAllocator hands out runs of the row array, first fit, merging freed
// neighbours.
type shardAllocator struct {
	free []shard // sorted by start, never adjacent
}

func (a *shardAllocator) take(n uint32) (shard, bool) {
	for i, f := range a.free {
		if f.count < n {
			continue
		}
		s := shard{f.start, n}
		if f.count == n {
			a.free = append(a.free[:i], a.free[i+1:]...)
		} else {
			a.free[i] = shard{f.start + n, f.count - n}
		}
		return s, true
	}
	return shard{}, false
}

// largest is the longest free run.
func (a *shardAllocator) largest() uint32 {
	var n uint32
	for _, f := range a.free {
		n = max(n, f.count)
	}
	return n
}

func (a *shardAllocator) release(s shard) {
	i := 0
	for i < len(a.free) && a.free[i].start < s.start {
		i++
	}
	a.free = append(a.free, shard{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = s
	// Merge with the next, then the previous.
	if i+1 < len(a.free) && a.free[i].start+a.free[i].count == a.free[i+1].start {
		a.free[i].count += a.free[i+1].count
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].start+a.free[i-1].count == a.free[i].start {
		a.free[i-1].count += a.free[i].count
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
}
