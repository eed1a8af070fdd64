package collector

// Images gone before /proc could be read are named from what the sampler
// recorded of them at exec and when their libraries were loaded
// (bpf/sampler/install.h): their executable mappings, by device and inode,
// whose files are found among those held for other processes or by the
// path they had there.

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// maxKnownPaths bounds the paths remembered per file; past it they are
// forgotten all at once and learnt again from the next reads.
const maxKnownPaths = 4096

// recordedImage is what the sampler recorded of an image.
type recordedImage struct {
	execSeq   uint32
	startCode uint64
	mappings  []model.Mapping // without paths or files
}

// recordedImageOf turns the sampler's record into mappings.
func recordedImageOf(rec *bpf.SamplerImageRecord) recordedImage {
	ri := recordedImage{execSeq: rec.ExecSeq, startCode: rec.StartCode}
	for i := range min(int(rec.Ranges), len(rec.R)) {
		r := &rec.R[i]
		m := model.Mapping{Start: r.Start, Limit: r.Limit, Offset: r.Offset, Inode: r.File.Ino}
		if r.File.Dev == 0 && r.File.Ino == 0 {
			m.Path = "[vdso]"
		} else {
			m.Dev = unix.Mkdev(uint32(r.File.Dev>>20), uint32(r.File.Dev&0xfffff))
		}
		ri.mappings = append(ri.mappings, m)
	}
	return ri
}

// rememberRecorded keeps an exited image's record until the drain after
// next, for its last samples.
func (t *processTracker) rememberRecorded(pid uint32, ri recordedImage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.recorded == nil {
		t.recorded = make(map[model.ProcessKey]recordedAt)
	}
	t.recorded[model.ProcessKey{PID: pid, ExecSeq: ri.execSeq}] = recordedAt{ri, t.generation}
}

type recordedAt struct {
	image recordedImage
	at    uint64 // drain generation
}

// forgetRecordedLocked drops records kept for two drains.
func (t *processTracker) forgetRecordedLocked() {
	for k, r := range t.recorded {
		if r.at+1 < t.generation {
			delete(t.recorded, k)
		}
	}
}

// learnPathLocked remembers where a file held open was found.
func (t *processTracker) learnPathLocked(key fileKey, path string) {
	if len(t.paths) >= maxKnownPaths {
		clear(t.paths)
	}
	if t.paths == nil {
		t.paths = make(map[fileKey]string)
	}
	t.paths[key] = path
}

// fromRecorded builds a snapshot of an image /proc could not give from the
// sampler's record of it, kept at its exit or still in the sampler.
func (t *processTracker) fromRecorded(key model.ProcessKey) (*model.Process, []fileKey, bool) {
	t.mu.Lock()
	r, ok := t.recorded[key]
	t.mu.Unlock()
	ri := r.image
	if !ok && t.samplerImage != nil {
		ri, ok = t.samplerImage(key.PID)
		ok = ok && ri.execSeq == key.ExecSeq
	}
	if !ok || len(ri.mappings) == 0 {
		return nil, nil, false
	}
	p := &model.Process{PID: key.PID, ExecSeq: key.ExecSeq, Exited: true, Mappings: append([]model.Mapping(nil), ri.mappings...)}
	var files []fileKey
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range p.Mappings {
		m := &p.Mappings[i]
		if m.Inode == 0 {
			continue
		}
		k := fileKey{m.Dev, m.Inode}
		h := t.files[k]
		if h == nil {
			h = t.openKnownLocked(k)
		}
		if h == nil {
			continue
		}
		h.refs++
		m.File, m.Path = h.file, h.path
		files = append(files, k)
		if ri.startCode >= m.Start && ri.startCode < m.Limit {
			p.Exe = h.path
		}
	}
	return p, files, true
}

// openKnownLocked opens a file by the path it was last found at, if it is
// still the same file, and holds it with no reference.
func (t *processTracker) openKnownLocked(k fileKey) *heldFile {
	path := t.paths[k]
	if path == "" || len(t.files) >= t.maxOpenFiles {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != k.dev || st.Ino != k.inode {
		f.Close()
		return nil
	}
	h := &heldFile{file: f, path: path}
	t.files[k] = h
	return h
}

// fromRecordedIfCovers replaces an exited image's snapshot by the sampler's
// record of it when that names addrs and the snapshot did not: a /proc read
// that raced the exit saw its mappings half unmapped (a short rustc lost
// libc, the root of every stack, while librustc_driver was still there).
func (t *processTracker) fromRecordedIfCovers(key model.ProcessKey, addrs []uint64, out map[model.ProcessKey]*model.Process, files map[model.ProcessKey][]fileKey) {
	p, f, ok := t.fromRecorded(key)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !covered(p, addrs) {
		t.release(f)
		return
	}
	tp := t.recordLocked(key, p, f)
	t.markExitedLocked(tp)
	out[key], files[key] = tp.snapshot, tp.files
}
