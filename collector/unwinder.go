package collector

// The unwinder's state and its installer goroutines. The rest of it is
// split by concern: unwinder_install.go gives processes their ranges and
// takes them back, unwinder_tables.go loads, shares and evicts tables,
// unwinder_maps.go writes the sampler's maps, unwinder_shards.go allocates
// the table space, unwinder_elf.go identifies files and unwinder_ranges.go
// makes the trie's keys.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/unwind"
	"github.com/ember-profiler/ember/model"
)

// unwindTables loads unwind tables and per-process ranges into the sampler's
// maps, within a row budget, and drops them when no process uses them.
type unwindTables struct {
	log  *slog.Logger
	maps unwindMaps
	// rangesSeq is the last ranges generation set: each CPU keeps the
	// ranges it looked up per process until it changes, so every change to
	// ranges or procs must bump it, after the change.
	rangesSeq uint32
	cache     *unwind.Cache // nil: no disk cache

	mu    sync.Mutex
	alloc shardAllocator
	// chunkRefs counts the allocated shards that overlap each chunk
	// created, by index.
	chunkRefs map[uint32]int
	// ruleIDs are the rules in the BPF rule table; they are never removed.
	ruleIDs  map[unwind.Rule]uint16
	tables   map[string]*loadedTable
	installs map[uint32]*installedProc
	// freeing holds shards of tables no process uses, freed at the next
	// drain so that a sample walking them now finishes first.
	freeing []shard
	stats   model.UnwindTableStats
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
	// currentImage says which image a process runs, for taking back what
	// the sampler installed for images gone unheard; nil: all are alive.
	currentImage imageLookup
	advances     uint64
	// byStart finds tables by their first word, for one sweep.
	byStart map[uint32]*loadedTable
}

// newUnwindTables loads tables into a loaded sampler's maps.
func newUnwindTables(objs *bpf.SamplerObjects, capacityWords uint32, cacheDir string, log *slog.Logger, current imageLookup) (*unwindTables, error) {
	u, err := newUnwindTablesIn(newSamplerUnwindMaps(objs), capacityWords, cacheDir, log)
	if u != nil {
		u.currentImage = current
	}
	return u, err
}

// newUnwindTablesIn loads tables into maps, within capacityWords words.
func newUnwindTablesIn(maps unwindMaps, capacityWords uint32, cacheDir string, log *slog.Logger) (*unwindTables, error) {
	u := &unwindTables{
		log:       log,
		maps:      maps,
		alloc:     shardAllocator{free: []shard{{0, capacityWords}}},
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
	p   *model.Process
	seq uint64
}

// enqueue hands a snapshot to the installer goroutines.
func (u *unwindTables) enqueue(p *model.Process) {
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
	defer keepUp(u.log)()
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

// close releases the chunks; the sampler's maps are closed with it.
func (u *unwindTables) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.maps.close()
}
