package collector

// The sampler gives a new image its ranges itself (bpf/sampler/install.h),
// at exec and once its libraries are loaded, from the files this side
// offers: each file whose table is in, by device and inode. This side
// takes back what the sampler installed: at the process's exit, when a
// table it used is freed, and for images whose exit went unheard.

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// kernelDev is a device number as the kernel keeps it in an inode's
// superblock (major << 20 | minor), from the one stat and /proc give.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}

// fileKeyOf is how the sampler names the file of a mapping; the vDSO,
// which has no file, is {0, 0}.
func fileKeyOf(m *model.Mapping) (bpf.SamplerFileKey, bool) {
	if m.File == nil {
		return bpf.SamplerFileKey{}, m.Path == "[vdso]"
	}
	if m.Inode == 0 || m.Deleted {
		return bpf.SamplerFileKey{}, false
	}
	return bpf.SamplerFileKey{Dev: kernelDev(m.Dev), Ino: m.Inode}, true
}

// fileUnwindOf is what the sampler needs to give any mapping of a file the
// range t gives it: the table, and per segment what loadBias would add.
func fileUnwindOf(t *loadedTable, loads []progLoad) (bpf.SamplerFileUnwind, bool) {
	fu := bpf.SamplerFileUnwind{Table: t.start, Buckets: t.buckets}
	switch {
	case t.framePointers && (t.count == 0 || t.notLoaded):
		fu.Kind = uint32(bpf.SamplerRangeKindRANGE_FP)
		return fu, true
	case t.notLoaded:
		return fu, false // no table: the walk stops there either way
	}
	if len(loads) > len(fu.Seg) {
		// BOLT's libraries (librustc_driver, libLLVM) have five PT_LOADs,
		// the moved code in a second executable one. The sampler only
		// installs executable mappings, so those segments are enough;
		// without an offer, every new process walks these libraries by
		// frame-pointer guesses until this side reads its mappings.
		loads = slices.DeleteFunc(slices.Clone(loads), func(p progLoad) bool { return !p.exec })
		if len(loads) > len(fu.Seg) {
			return fu, false
		}
	}
	fu.Kind = uint32(bpf.SamplerRangeKindRANGE_ROWS)
	for i, p := range loads {
		fu.Seg[i].PageOff = p.off &^ 0xfff
		fu.Seg[i].EndOff = p.off + p.filesz
		fu.Seg[i].Delta = p.off - p.vaddr + t.base
	}
	fu.Segments = uint32(len(loads))
	return fu, true
}

// offerFileLocked lets the sampler install mappings of m's file with t.
func (u *unwindTables) offerFileLocked(t *loadedTable, m *model.Mapping, loads []progLoad) {
	key, ok := fileKeyOf(m)
	if !ok || slices.Contains(t.files, key) {
		return
	}
	fu, ok := fileUnwindOf(t, loads)
	if !ok {
		return
	}
	if err := u.maps.putFileUnwind(key, &fu); err != nil {
		return // the map is full: its processes are read and installed here
	}
	t.files = append(t.files, key)
}

// withdrawFilesLocked stops the sampler installing from t, before t goes.
func (u *unwindTables) withdrawFilesLocked(t *loadedTable) {
	for _, key := range t.files {
		u.maps.deleteFileUnwind(key)
	}
	t.files = nil
}

// removeImageLocked deletes what the sampler installed for pid, and
// returns its record.
func (u *unwindTables) removeImageLocked(pid uint32) *bpf.SamplerImageRecord {
	rec, ok := u.maps.image(pid)
	if !ok {
		return nil
	}
	var keys []bpf.SamplerRangeKey
	for i := range min(int(rec.Ranges), len(rec.R)) {
		if r := &rec.R[i]; r.Installed != 0 {
			keys = append(keys, rangeKeys(pid, r.Start, r.Limit)...)
		}
	}
	u.maps.deleteRanges(keys)
	u.maps.deleteImage(pid)
	if in := u.installs[pid]; in == nil || in.bySampler {
		u.maps.deleteProc(pid)
		if in != nil {
			u.releaseTablesLocked(in)
			delete(u.installs, pid) // read again if it asks: this side installs then
		}
	}
	u.stats.SamplerInstallsRemoved++
	u.rangesChangedLocked()
	return rec
}

// samplerHas says whether the sampler's install of p's image holds every
// range this side would put, each from its file's table, and then notes
// the image as installed without putting anything. Putting the same ranges
// again, and deleting them twice at exit, was a fifth of the daemon's CPU
// per short-lived Python process (2026-12-07 churn profile).
func (u *unwindTables) samplerHas(p *model.Process) bool {
	rec, ok := u.maps.image(p.PID)
	if !ok || rec.ExecSeq != p.ExecSeq || rec.Overflow != 0 || rec.Unknown != 0 || rec.Ranges == 0 {
		return false
	}
	n := min(int(rec.Ranges), len(rec.R))
	for i := range p.Mappings {
		m := &p.Mappings[i]
		if m.Limit > 1<<47 || m.Path == "[uprobes]" {
			// The vsyscall page gets no range; nor, here, the page where
			// the loader probe's instruction runs out of line, mapped into
			// every process that hit it: a pc is there for one step.
			continue
		}
		found := false
		for j := range n {
			if r := &rec.R[j]; r.Installed != 0 && r.Start == m.Start && r.Limit == m.Limit {
				found = true
				break
			}
		}
		if !found {
			return false // a later dlopen, or code without a file
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.noteSamplerInstallLocked(p.PID, p.ExecSeq, rec, n)
}

// noteSamplerInstallLocked notes the sampler's whole install of an image as
// this side's, referencing the tables its first n ranges use, unless this
// side's own ranges are in or a range's table cannot be told.
func (u *unwindTables) noteSamplerInstallLocked(pid, execSeq uint32, rec *bpf.SamplerImageRecord, n int) bool {
	old := u.installs[pid]
	if old != nil && !old.bySampler {
		return false // this side's own ranges are in: replace them as usual
	}
	// The tables it uses are referenced as this side's installs reference
	// theirs, so that they are not idle while it runs.
	byStart := make(map[uint32]*loadedTable, len(u.tables))
	for _, t := range u.tables {
		if t.count > 0 || t.framePointers {
			if _, dup := byStart[t.start]; dup {
				byStart[t.start] = nil // two tables at one word: cannot tell
				continue
			}
			byStart[t.start] = t
		}
	}
	var used []*loadedTable
	for j := range n {
		t := byStart[rec.R[j].Table]
		if t == nil {
			return false
		}
		if !slices.Contains(used, t) {
			used = append(used, t)
		}
	}
	next := &installedProc{execSeq: execSeq, installed: time.Now(), bySampler: true}
	for _, t := range used {
		if t.refs++; !t.idleSince.IsZero() {
			t.idleSince = time.Time{}
			u.stats.IdleReused++
		}
		next.tables = append(next.tables, t.id)
	}
	if old != nil {
		if old.execSeq == execSeq {
			next.refreshes, next.pending = old.refreshes, old.pending
		}
		u.releaseTablesLocked(old)
	}
	u.installs[pid] = next
	u.stats.SamplerInstallsKept++
	return true
}

// releaseTablesLocked drops an install's references to its tables.
func (u *unwindTables) releaseTablesLocked(in *installedProc) {
	for _, id := range in.tables {
		if t := u.tables[id]; t != nil {
			u.release(t)
		}
	}
}

// imageSweepEvery is how many drains pass between looks for images whose
// exit went unheard (a full ring buffer).
const imageSweepEvery = 10

// sweepImagesLocked takes back what the sampler installed for images that
// are gone (current says which image a process runs, if any) or that use a
// table about to be freed.
func (u *unwindTables) sweepImagesLocked(current imageLookup, freeing []shard) {
	for _, pid := range u.maps.imagePIDs() {
		rec, ok := u.maps.image(pid)
		if !ok {
			continue
		}
		stale := false
		if current != nil {
			seq, _, alive := current(pid)
			stale = !alive || seq != rec.ExecSeq
		}
		for i := range min(int(rec.Ranges), len(rec.R)) {
			r := &rec.R[i]
			if stale || r.Installed == 0 {
				continue
			}
			for _, s := range freeing {
				if r.Table >= s.start && r.Table < s.start+s.count {
					stale = true
				}
			}
		}
		if stale {
			u.removeImageLocked(pid)
			continue
		}
		u.touchTablesLocked(rec)
	}
}

// touchTablesLocked keeps the tables a live image of the sampler's uses
// from counting as idle: no reference of this side holds them.
func (u *unwindTables) touchTablesLocked(rec *bpf.SamplerImageRecord) {
	for i := range min(int(rec.Ranges), len(rec.R)) {
		r := &rec.R[i]
		if r.Installed == 0 {
			continue
		}
		if t := u.tableAtLocked(r.Table); t != nil && t.refs == 0 {
			t.idleSince = time.Now()
		}
	}
}

// tableAtLocked finds the loaded table starting at word start.
func (u *unwindTables) tableAtLocked(start uint32) *loadedTable {
	if u.byStart == nil {
		u.byStart = make(map[uint32]*loadedTable, len(u.tables))
		for _, t := range u.tables {
			if t.count > 0 || t.framePointers {
				u.byStart[t.start] = t
			}
		}
	}
	return u.byStart[start]
}

// maxPlainFiles bounds plainFiles; past it they are learnt again.
const maxPlainFiles = 4096

// plainFiles are files mapped by processes no interpreter wanted: an
// image made only of those, which the sampler gave all its ranges, needs
// no /proc read until it is sampled. (A file an interpreter wants, such as
// python3 or libpython, never gets in.)
type plainFiles struct {
	mu    sync.Mutex
	files map[bpf.SamplerFileKey]bool
}

// learn adds the files of an image read that no interpreter wanted.
func (pf *plainFiles) learn(p *model.Process) {
	if p == nil || p.SnapshotErr != nil {
		return
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.files == nil || len(pf.files) >= maxPlainFiles {
		pf.files = make(map[bpf.SamplerFileKey]bool)
	}
	for i := range p.Mappings {
		if key, ok := fileKeyOf(&p.Mappings[i]); ok && p.Mappings[i].File != nil {
			pf.files[key] = true
		}
	}
}

// covers says whether the sampler gave an image all its ranges, from
// plain files only.
func (pf *plainFiles) covers(u *unwindTables, key model.ProcessKey) bool {
	if u == nil {
		return false
	}
	rec, ok := u.maps.image(key.PID)
	if !ok || rec.ExecSeq != key.ExecSeq || rec.Overflow != 0 || rec.Unknown != 0 || rec.Ranges == 0 {
		return false
	}
	n := min(int(rec.Ranges), len(rec.R))
	pf.mu.Lock()
	for i := range n {
		if f := rec.R[i].File; f != (bpf.SamplerFileKey{}) && !pf.files[f] {
			pf.mu.Unlock()
			return false
		}
	}
	pf.mu.Unlock()
	return u.noteCovered(key, rec, n)
}

// noteCovered references the tables of an image the sampler installed
// whole and this side will not read, so that they are not dropped as idle
// while it runs. An image with this side's own ranges in needs nothing.
func (u *unwindTables) noteCovered(key model.ProcessKey, rec *bpf.SamplerImageRecord, n int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if in := u.installs[key.PID]; in != nil && !in.bySampler && in.execSeq == key.ExecSeq {
		return true
	}
	return u.noteSamplerInstallLocked(key.PID, key.ExecSeq, rec, n)
}
