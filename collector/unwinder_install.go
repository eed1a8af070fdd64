package collector

// A process image gets ranges (its executable mappings, each pointing at
// its file's table) when first seen, again when its mappings change, and
// loses them at exit; its tables are loaded on the way, shared by file.

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// A process whose stacks leave its known ranges has its mappings read
// again: at once the first time (a dlopen right after start), then at
// doubling intervals up to refreshMax, so JIT code does not ask forever.
// A read that finds new ranges starts the doubling again: a JIT compiler
// warming up maps page after page, and each one a walk crosses before it
// is read can cut the stack.
const (
	refreshFirst = 250 * time.Millisecond
	refreshMax   = 30 * time.Second
)

// installedProc is what one process image has in the BPF maps.
type installedProc struct {
	execSeq   uint32
	keys      []bpf.SamplerRangeKey
	tables    []string
	installed time.Time
	refreshes int    // mapping re-reads asked for so far
	seq       uint64 // of the snapshot installed
	// pending: a re-read was asked for while the last one was too recent;
	// it is made once the wait is over (dueRefreshes), so that a library
	// mapped just after a read is not left out for good.
	pending bool
	// bySampler: the sampler's own install was whole; this side put nothing.
	bySampler bool
}

// install gives a process image its ranges, loading the tables of its files
// as needed. Called again for the same image (new mappings), it replaces them.
func (u *unwindTables) install(p *model.Process, alive func(pid, execSeq uint32) bool) {
	if u.keptSamplerInstall(p, alive) {
		return
	}
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
		m     *model.Mapping
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
		// An ask deferred may be for a library mapped after this read began.
		next.refreshes, next.pending = old.refreshes, old.pending
	}
	var (
		keys   []bpf.SamplerRangeKey
		ranges []bpf.SamplerUnwindRange
	)
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
		case t.framePointers && (t.count == 0 || t.notLoaded):
			// No rows, or Go's did not fit: its frame pointers will do.
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
		u.offerFileLocked(t, mp.m, mp.loads)
		next.tables = append(next.tables, t.id)
		for _, k := range rangeKeys(p.PID, mp.m.Start, mp.m.Limit) {
			keys, ranges = append(keys, k), append(ranges, r)
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
			keys, ranges = append(keys, k), append(ranges, r)
		}
	}
	// Where such a compiler maps its next code: a pc there is in a page
	// mapped since this read. It is walked by frame pointer, checked as a
	// guess, and asks for the mappings, without the one VMA lookup a walk
	// may make (jit.h), which a walk through two new pages ran out of.
	for _, c := range p.CodeReserves {
		r := bpf.SamplerUnwindRange{Start: c.Start, Limit: c.Limit, Kind: uint32(bpf.SamplerRangeKindRANGE_FP_UNREAD)}
		for _, k := range rangeKeys(p.PID, c.Start, c.Limit) {
			keys, ranges = append(keys, k), append(ranges, r)
		}
	}
	next.keys = u.maps.putRanges(keys, ranges)
	u.stats.RangeErrors += uint64(len(keys) - len(next.keys))
	// Keys the new set overwrote stay; the rest of the old ones go.
	if old != nil {
		kept := make(map[bpf.SamplerRangeKey]bool, len(next.keys))
		for _, k := range next.keys {
			kept[k] = true
		}
		if old.execSeq == p.ExecSeq && grewRanges(old.keys, kept) {
			next.refreshes = 0
		}
		var gone []bpf.SamplerRangeKey
		for _, k := range old.keys {
			if !kept[k] {
				gone = append(gone, k)
			}
		}
		u.maps.deleteRanges(gone)
		for _, id := range old.tables {
			if t := u.tables[id]; t != nil {
				u.release(t)
			}
		}
	}
	u.installs[p.PID] = next
	if err := u.maps.putProc(p.PID, &bpf.SamplerUnwindProc{ExecSeq: p.ExecSeq}); err != nil {
		u.log.Debug("enable unwinding", slog.Int("pid", int(p.PID)), slog.Any("err", err))
	}
	u.rangesChangedLocked()
	// An exit noticed while the tables were built found nothing to remove.
	if !alive(p.PID, p.ExecSeq) {
		u.removeLocked(p.PID)
	}
	return true
}

// keptSamplerInstall notes p's image as installed when the sampler's own
// install of it is whole (samplerHas), without the installer's queue.
func (u *unwindTables) keptSamplerInstall(p *model.Process, alive func(pid, execSeq uint32) bool) bool {
	if p == nil || p.SnapshotErr != nil || p.Exited || !u.samplerHas(p) {
		return false
	}
	if !alive(p.PID, p.ExecSeq) {
		u.remove(p.PID) // its exit came while this was looked at
	}
	return true
}

// retain drops the ranges of processes alive says are gone (an exit
// notification lost to a full ring buffer). Images noted from the sampler's
// install without a read are not tracked there: the BPF side says.
func (u *unwindTables) retain(alive func(pid, execSeq uint32) bool) {
	u.mu.Lock()
	var gone []uint32
	for pid, in := range u.installs {
		if alive(pid, in.execSeq) {
			continue
		}
		if in.bySampler && u.currentImage != nil {
			if seq, _, ok := u.currentImage(pid); ok && seq == in.execSeq {
				continue
			}
		}
		gone = append(gone, pid)
	}
	u.mu.Unlock()
	for _, pid := range gone {
		u.remove(pid)
	}
}

// grewRanges says whether the keys of a new read include one the old read
// did not have.
func grewRanges(old []bpf.SamplerRangeKey, now map[bpf.SamplerRangeKey]bool) bool {
	if len(now) > len(old) {
		return true
	}
	had := make(map[bpf.SamplerRangeKey]bool, len(old))
	for _, k := range old {
		had[k] = true
	}
	for k := range now {
		if !had[k] {
			return true
		}
	}
	return false
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
		in.pending = true
		return false
	}
	in.refreshes++
	in.pending = false
	return true
}

// dueRefreshes returns the processes whose deferred re-read may go now,
// and counts each as asked.
func (u *unwindTables) dueRefreshes() []model.ProcessKey {
	u.mu.Lock()
	defer u.mu.Unlock()
	var due []model.ProcessKey
	for pid, in := range u.installs {
		if !in.pending {
			continue
		}
		wait := refreshMax
		if in.refreshes < 8 {
			wait = min(refreshMax, refreshFirst<<in.refreshes)
		}
		if time.Since(in.installed) >= wait {
			in.pending = false
			in.refreshes++
			due = append(due, model.ProcessKey{PID: pid, ExecSeq: in.execSeq})
		}
	}
	return due
}

// remove drops a process's ranges and its references to tables, and
// returns what the sampler had recorded of it, if anything.
func (u *unwindTables) remove(pid uint32) *bpf.SamplerImageRecord {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.removeLocked(pid)
}

func (u *unwindTables) removeLocked(pid uint32) *bpf.SamplerImageRecord {
	rec := u.removeImageLocked(pid)
	in := u.installs[pid]
	if in == nil {
		return rec
	}
	u.maps.deleteProc(pid)
	u.maps.deleteRanges(in.keys)
	for _, id := range in.tables {
		if t := u.tables[id]; t != nil {
			u.release(t)
		}
	}
	delete(u.installs, pid)
	u.rangesChangedLocked()
	return rec
}

// rangesChangedLocked makes every CPU drop the ranges it keeps, so that its
// next walk looks them up again.
func (u *unwindTables) rangesChangedLocked() {
	u.rangesSeq++
	if err := u.maps.setRangesGeneration(u.rangesSeq); err != nil {
		// Only if the sampler's .bss cannot be written, which loading
		// would have failed on already.
		u.log.Error("invalidate cached unwind ranges", slog.Any("err", err))
	}
}
