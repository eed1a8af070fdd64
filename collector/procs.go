package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

// fileKey identifies a mapped file host-wide, so each file is opened once
// however many processes map it.
type fileKey struct{ dev, inode uint64 }

type heldFile struct {
	file *os.File
	path string // as the first process that mapped it saw it
	refs int
}

type trackedProcess struct {
	snapshot *model.Process
	files    []fileKey
	// exitedAt is the drain generation in which the exit (or the execve that
	// replaced this image) was noticed; 0 while alive.
	exitedAt uint64
}

type pendingRelease struct {
	atGeneration uint64
	files        []fileKey
}

// imageLookup reports the kernel side's view of a process: its current exec
// sequence and the start of its code, as recorded at the image's first
// sample. ok is false when the process is unknown there (exited).
type imageLookup func(pid uint32) (execSeq uint32, startCode uint64, ok bool)

// processTracker keeps what is needed to symbolize each sampled process
// image: metadata and mappings read at first sight, and the mapped files
// held open so an image that is gone (exit, execve, a replaced file) still
// resolves.
type processTracker struct {
	procRoot     string
	maxOpenFiles int
	log          *slog.Logger
	currentImage imageLookup

	mu         sync.Mutex
	generation uint64 // drains so far
	procs      map[model.ProcessKey]*trackedProcess
	files      map[fileKey]*heldFile
	pending    []pendingRelease
	// filesNotHeld counts mappings whose file could not be opened or was over the limit.
	filesNotHeld uint64
	// samplerImage reads what the sampler recorded of a live image;
	// recorded keeps that of images that exited; paths are where held
	// files were found (procs_recorded.go).
	samplerImage func(pid uint32) (recordedImage, bool)
	recorded     map[model.ProcessKey]recordedAt
	paths        map[fileKey]string
}

func newProcessTracker(procRoot string, maxOpenFiles int, log *slog.Logger, currentImage imageLookup) *processTracker {
	if log == nil {
		log = slog.Default()
	}
	return &processTracker{
		procRoot:     procRoot,
		maxOpenFiles: maxOpenFiles,
		log:          log,
		currentImage: currentImage,
		generation:   1,
		procs:        make(map[model.ProcessKey]*trackedProcess),
		files:        make(map[fileKey]*heldFile),
	}
}

// observe records a process image at its first sample. startCode is the
// image's mm->start_code, which the snapshot is checked against.
// It returns the snapshot taken. /proc is read without holding the lock,
// so drains and other reads do not wait behind a slow one.
func (t *processTracker) observe(key model.ProcessKey, startCode uint64) *model.Process {
	proc, files := t.snapshot(key, startCode)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recordLocked(key, proc, files).snapshot
}

// alive reports whether a process image is tracked and has not ended.
func (t *processTracker) alive(pid, execSeq uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := t.procs[model.ProcessKey{PID: pid, ExecSeq: execSeq}]
	return tp != nil && tp.exitedAt == 0
}

// recordLocked keeps a snapshot just taken, which holds files.
func (t *processTracker) recordLocked(key model.ProcessKey, proc *model.Process, files []fileKey) *trackedProcess {
	old := t.procs[key]
	if old != nil && proc.SnapshotErr != nil && old.snapshot.SnapshotErr == nil {
		// A re-read that failed (exited, exec'd since) says the image ended;
		// its earlier mappings still resolve the samples taken before. (A
		// failed read holds no files.)
		t.markExitedLocked(old)
		return old
	}
	if old != nil {
		t.releaseLater(old.files)
	}
	tp := &trackedProcess{snapshot: proc, files: files}
	if proc.SnapshotErr != nil {
		// Gone already: keep the entry so its samples say why, and drop it soon.
		tp.exitedAt = t.generation
	}
	t.procs[key] = tp
	if proc.SnapshotErr != nil {
		// A failed read of an image that execve replaced says nothing of
		// the image that replaced it, which may be tracked and alive.
		return tp
	}
	// An image read is the process's current one: it ends the others.
	for k, other := range t.procs {
		if k.PID == key.PID && k.ExecSeq != key.ExecSeq {
			t.markExitedLocked(other)
		}
	}
	return tp
}

// exited marks every image of a process as ended.
func (t *processTracker) exited(pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tp := range t.procs {
		if k.PID == pid {
			t.markExitedLocked(tp)
		}
	}
}

func (t *processTracker) markExitedLocked(tp *trackedProcess) {
	if tp.exitedAt != 0 {
		return
	}
	tp.exitedAt = t.generation
	// Copy: batches already handed out keep their own view.
	exited := *tp.snapshot
	exited.Exited = true
	tp.snapshot = &exited
}

// processesFor returns snapshots for the process images of a batch. An
// image never seen is read now; one whose samples fall outside its known
// mappings (a library loaded since) is read again, once.
//
// With hold set, the files of the snapshots returned stay open until the
// returned fileHold is released, however many drains that takes.
func (t *processTracker) processesFor(samples []model.Sample, hold bool) (map[model.ProcessKey]*model.Process, *fileHold) {
	out := make(map[model.ProcessKey]*model.Process)
	files := make(map[model.ProcessKey][]fileKey)
	var unseen []model.ProcessKey
	t.mu.Lock()
	for i := range samples {
		key := samples[i].Key()
		if _, done := out[key]; done {
			continue
		}
		if tp := t.procs[key]; tp != nil {
			out[key], files[key] = tp.snapshot, tp.files
		} else {
			out[key] = nil
			unseen = append(unseen, key)
		}
	}
	t.mu.Unlock()
	for _, key := range unseen {
		tp := t.observeTracked(key)
		out[key], files[key] = tp.snapshot, tp.files
	}
	refreshed := make(map[model.ProcessKey]bool)
	for i := range samples {
		key := samples[i].Key()
		p := out[key]
		if refreshed[key] || p.SnapshotErr != nil || covered(p, samples[i].User) {
			continue
		}
		refreshed[key] = true
		if p.Exited {
			t.fromRecordedIfCovers(key, samples[i].User, out, files)
			continue
		}
		if tp := t.observeTracked(key); tp.snapshot.SnapshotErr == nil {
			out[key], files[key] = tp.snapshot, tp.files
		}
	}
	for key, p := range out {
		if p.Comm == "" {
			p.Comm = commOf(samples, key)
		}
	}
	if !hold {
		return out, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h := &fileHold{tracker: t}
	for _, keys := range files {
		for _, k := range keys {
			if f := t.files[k]; f != nil {
				f.refs++
				h.files = append(h.files, k)
			}
		}
	}
	return out, h
}

// observeTracked is observe returning the tracked entry, whose files stay
// open at least until the next advance.
func (t *processTracker) observeTracked(key model.ProcessKey) *trackedProcess {
	proc, files := t.snapshot(key, 0)
	if proc.SnapshotErr != nil {
		if p, f, ok := t.fromRecorded(key); ok {
			t.mu.Lock()
			defer t.mu.Unlock()
			tp := t.recordLocked(key, p, f)
			tp.exitedAt = t.generation
			return tp
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recordLocked(key, proc, files)
}

// A fileHold keeps one batch's mapped files open until released.
type fileHold struct {
	tracker *processTracker
	files   []fileKey
	once    sync.Once
}

// Release closes the files nothing else holds. After the tracker is closed
// its files are gone already and this does nothing.
func (h *fileHold) Release() {
	h.once.Do(func() {
		h.tracker.mu.Lock()
		defer h.tracker.mu.Unlock()
		h.tracker.release(h.files)
	})
}

func covered(p *model.Process, addrs []uint64) bool {
	for _, a := range addrs {
		if p.FindMapping(a) == nil {
			return false
		}
	}
	return true
}

func commOf(samples []model.Sample, key model.ProcessKey) string {
	for i := range samples {
		if samples[i].Key() == key && samples[i].PID == samples[i].TID {
			return samples[i].Comm
		}
	}
	for i := range samples {
		if samples[i].Key() == key {
			return samples[i].Comm
		}
	}
	return ""
}

// advance ends a drain generation: processes that exited before the previous
// drain are forgotten, and files dropped two drains ago are closed, by which
// time the batches that referenced them have been symbolized.
func (t *processTracker) advance() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.generation%sweepEvery == 0 {
		t.sweepLocked()
	}
	t.forgetRecordedLocked()
	for key, tp := range t.procs {
		if tp.exitedAt != 0 && tp.exitedAt < t.generation {
			t.releaseLater(tp.files)
			delete(t.procs, key)
		}
	}
	keep := t.pending[:0]
	for _, pr := range t.pending {
		if pr.atGeneration+1 < t.generation {
			t.release(pr.files)
			continue
		}
		keep = append(keep, pr)
	}
	t.pending = keep
	t.generation++
}

// sweepEvery is how many drains pass between checks for processes whose
// exit notification was lost (a full ring buffer), so none linger forever.
const sweepEvery = 30

func (t *processTracker) sweepLocked() {
	for _, tp := range t.procs {
		if tp.exitedAt != 0 {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(t.procRoot, strconv.FormatUint(uint64(tp.snapshot.PID), 10), "stat"))
		if err == nil {
			if st, err := parseStat(raw); err == nil && st.startTicks == tp.snapshot.StartTicks {
				continue
			}
		}
		t.markExitedLocked(tp)
	}
}

func (t *processTracker) releaseLater(files []fileKey) {
	if len(files) > 0 {
		t.pending = append(t.pending, pendingRelease{atGeneration: t.generation, files: files})
	}
}

func (t *processTracker) release(files []fileKey) {
	for _, k := range files {
		h := t.files[k]
		if h == nil {
			continue
		}
		if h.refs--; h.refs <= 0 {
			h.file.Close()
			delete(t.files, k)
		}
	}
}

func (t *processTracker) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, h := range t.files {
		h.file.Close()
		delete(t.files, k)
	}
	t.procs = map[model.ProcessKey]*trackedProcess{}
	t.pending = nil
}

// errImageReplaced: the process ran execve before its image could be read.
var errImageReplaced = errors.New("the process replaced its program (execve) before this image could be read")

// errExited: the process was a zombie (or exiting) when read, its mappings gone.
var errExited = errors.New("the process exited before its mappings could be read")

// snapshot reads a process image's metadata and executable mappings from
// /proc and holds its mapped files open. The mappings are read before the
// start of code in stat, so that a matching startCode proves they belong to
// the image sampled, not to one an execve put in its place; startCode 0
// means it is not known and the kernel side is asked.
func (t *processTracker) snapshot(key model.ProcessKey, startCode uint64) (*model.Process, []fileKey) {
	pid := key.PID
	dir := filepath.Join(t.procRoot, strconv.FormatUint(uint64(pid), 10))
	p := &model.Process{PID: pid, ExecSeq: key.ExecSeq}
	if startCode == 0 && t.currentImage != nil {
		seq, code, ok := t.currentImage(pid)
		if ok && seq != key.ExecSeq {
			p.SnapshotErr = errImageReplaced
			return p, nil
		}
		startCode = code
	}
	mappings, reserves, noSpace, err := readExecMappings(filepath.Join(dir, "maps"))
	if err != nil {
		p.SnapshotErr = fmt.Errorf("read mappings of process %d: %w", pid, err)
		return p, nil
	}
	statRaw, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		p.SnapshotErr = fmt.Errorf("read process %d: %w", pid, err)
		return p, nil
	}
	st, err := parseStat(statRaw)
	if err != nil {
		p.SnapshotErr = fmt.Errorf("process %d: %w", pid, err)
		return p, nil
	}
	p.Comm, p.StartTicks = st.comm, st.startTicks
	// A zombie, or a process past exit_mm, shows no mappings and a start of
	// code of 0: that is no image to symbolize with, and not a kernel thread's.
	if st.state == 'Z' || st.state == 'X' || (noSpace && st.flags&pfKthread == 0) {
		p.SnapshotErr = fmt.Errorf("process %d: %w", pid, errExited)
		return p, nil
	}
	// stat shows 0 when the code range is hidden; then there is nothing to check.
	if startCode != 0 && st.startCode != 0 && st.startCode != startCode {
		p.SnapshotErr = errImageReplaced
		return p, nil
	}
	p.Exe = exeOf(mappings, st.startCode)
	if p.Exe == "" {
		p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
		p.Exe = strings.TrimSuffix(p.Exe, " (deleted)")
	}
	// Only a JVM's flags are asked for (DumpPerfMapAtExit); reading every
	// process's arguments was a seventh of a new process's read.
	if isJVM(mappings) {
		if raw, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			p.Cmdline = splitCmdline(raw)
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		p.Cgroup = parseCgroup(raw)
		p.ContainerID = containerID(p.Cgroup)
	}
	p.Mappings, p.CodeReserves = mappings, reserves
	return p, t.holdFiles(dir, p)
}

// isJVM says whether a process maps HotSpot's libjvm.so.
func isJVM(ms []model.Mapping) bool {
	for _, m := range ms {
		if filepath.Base(m.Path) == "libjvm.so" {
			return true
		}
	}
	return false
}

// exeOf is the path of the file whose mapping holds the start of code:
// what the exe link names, without reading it.
func exeOf(ms []model.Mapping, startCode uint64) string {
	for _, m := range ms {
		if startCode >= m.Start && startCode < m.Limit && m.Inode != 0 && strings.HasPrefix(m.Path, "/") {
			return m.Path
		}
	}
	return ""
}

// readExecMappings returns a process's executable mappings, and whether it
// has no address space (none at all: it exited, or a kernel thread).
func readExecMappings(path string) ([]model.Mapping, []model.AddressRange, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, false, err
	}
	defer f.Close()
	ms, reserves, empty, err := queryExecMappings(f)
	if err == nil {
		return ms, reserves, empty || len(ms) == 0, nil
	}
	if !errors.Is(err, errNoProcmapQuery) {
		return nil, nil, false, err
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, false, err
	}
	ms, reserves, err = parseMaps(raw)
	return ms, reserves, len(bytes.TrimSpace(raw)) == 0, err
}

// holdFiles opens the files of a snapshot's mappings, or takes a reference
// to those already open, and returns their keys. The opens run outside the
// lock; a file another read opened meanwhile is shared, the second copy closed.
func (t *processTracker) holdFiles(dir string, p *model.Process) []fileKey {
	var files []fileKey
	var missing []int
	t.mu.Lock()
	for i := range p.Mappings {
		m := &p.Mappings[i]
		if m.Inode == 0 || !strings.HasPrefix(m.Path, "/") {
			continue
		}
		key := fileKey{m.Dev, m.Inode}
		if h := t.files[key]; h != nil {
			h.refs++
			m.File = h.file
			files = append(files, key)
			continue
		}
		missing = append(missing, i)
	}
	t.mu.Unlock()
	if len(missing) == 0 {
		return files
	}
	opened := make([]*os.File, len(missing))
	var openErrs []error
	for j, i := range missing {
		m := &p.Mappings[i]
		f, err := openMappedFile(dir, m)
		if err != nil {
			openErrs = append(openErrs, err)
			continue
		}
		opened[j] = f
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.filesNotHeld += uint64(len(openErrs))
	for j, i := range missing {
		f := opened[j]
		if f == nil {
			continue
		}
		m := &p.Mappings[i]
		key := fileKey{m.Dev, m.Inode}
		if h := t.files[key]; h != nil {
			f.Close()
			h.refs++
			m.File = h.file
			files = append(files, key)
			continue
		}
		if len(t.files) >= t.maxOpenFiles {
			f.Close()
			t.filesNotHeld++
			continue
		}
		t.files[key] = &heldFile{file: f, path: m.Path, refs: 1}
		t.learnPathLocked(key, m.Path)
		m.File = f
		files = append(files, key)
	}
	for _, err := range openErrs {
		t.log.Debug("cannot open mapped file", slog.Int("pid", int(p.PID)), slog.Any("err", err))
	}
	return files
}

// openMappedFile opens the file behind a mapping as the process sees it. The
// map_files link reaches the exact file even when deleted or inside another
// mount namespace; the fallback resolves the path inside the process's root so
// a symlink planted in a container cannot lead out of it.
func openMappedFile(procDir string, m *model.Mapping) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(procDir, "map_files", fmt.Sprintf("%x-%x", m.Start, m.Limit)), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err == nil {
		if err := checkRegular(f, m, false); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	mapFilesErr := err
	root, err := unix.Open(filepath.Join(procDir, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (map_files: %v)", m.Path, err, mapFilesErr)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, m.Path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s in the process's root: %w (map_files: %v)", m.Path, err, mapFilesErr)
	}
	f = os.NewFile(uintptr(fd), m.Path)
	if err := checkRegular(f, m, true); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkRegular(f *os.File, m *model.Mapping, matchIdentity bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", m.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", m.Path)
	}
	if matchIdentity && (st.Ino != m.Inode || st.Dev != m.Dev) {
		return fmt.Errorf("%s is not the mapped file (replaced since it was mapped)", m.Path)
	}
	return nil
}

type procStat struct {
	comm       string
	state      byte   // field 3: 'Z' for a zombie
	flags      uint64 // field 9: PF_* flags
	startTicks uint64 // field 22: tells a reused PID apart
	startCode  uint64 // field 26: where the current image's code starts
}

// pfKthread is PF_KTHREAD: kernel threads have no mappings, and are alive.
const pfKthread = 0x00200000

// parseStat reads /proc/PID/stat. comm may hold spaces and parentheses, so
// fields are counted after the last ')'.
func parseStat(raw []byte) (procStat, error) {
	open := bytes.IndexByte(raw, '(')
	closing := bytes.LastIndexByte(raw, ')')
	if open < 0 || closing < open {
		return procStat{}, errors.New("malformed stat")
	}
	st := procStat{comm: string(raw[open+1 : closing])}
	fields := strings.Fields(string(raw[closing+1:]))
	// fields[0] is field 3 (state).
	if len(fields) < 24 {
		return procStat{}, errors.New("malformed stat: too few fields")
	}
	st.state = fields[0][0]
	var err error
	if st.flags, err = strconv.ParseUint(fields[9-3], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("malformed stat flags: %w", err)
	}
	if st.startTicks, err = strconv.ParseUint(fields[22-3], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("malformed stat start time: %w", err)
	}
	if st.startCode, err = strconv.ParseUint(fields[26-3], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("malformed stat start code: %w", err)
	}
	return st, nil
}

func splitCmdline(raw []byte) []string {
	raw = bytes.TrimRight(raw, "\x00")
	if len(raw) == 0 {
		return nil
	}
	return strings.Split(string(raw), "\x00")
}

// parseCgroup returns the cgroup v2 path, or the v1 hierarchies joined.
func parseCgroup(raw []byte) string {
	var v1 []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path
		}
		if _, rest, ok := strings.Cut(line, ":"); ok {
			v1 = append(v1, rest)
		}
	}
	return strings.Join(v1, ";")
}

// containerIDPattern matches the 64-hex-digit IDs that Docker, containerd,
// CRI-O and Podman put in cgroup paths ("/docker/<id>",
// "docker-<id>.scope", "cri-containerd-<id>.scope", "crio-<id>.scope",
// "libpod-<id>.scope", ".../kubepods/.../pod<uid>/<id>").
var containerIDPattern = regexp.MustCompile(`(?:^|[/\-])([0-9a-f]{64})(?:\.scope)?(?:/|$)`)

// containerID returns the last container ID named in a cgroup path.
func containerID(cgroup string) string {
	matches := containerIDPattern.FindAllStringSubmatch(cgroup, -1)
	if len(matches) == 0 {
		return ""
	}
	return matches[len(matches)-1][1]
}

// parseMaps keeps executable mappings, the only ones stack addresses fall in.
// It also keeps the code reserves (model.Process.CodeReserves).
func parseMaps(raw []byte) ([]model.Mapping, []model.AddressRange, error) {
	var out []model.Mapping
	var reserves []model.AddressRange
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m, exec, err := parseMapsLine(line)
		if err != nil {
			return nil, nil, err
		}
		if exec {
			out = append(out, m)
		} else if r := (model.AddressRange{Start: m.Start, Limit: m.Limit}); len(out) > 0 && codeReserve(out[len(out)-1], r, isAnonymous(m) && noAccess(line)) {
			reserves = append(reserves, r)
		}
	}
	return out, reserves, sc.Err()
}

// minCodeReserve: smaller regions without access are guard pages (V8
// puts one after each code page), not room for code.
const minCodeReserve = 1 << 20

// codeReserve says whether r, anonymous and without access when
// anonNoAccess, is a JIT compiler's reserve after code mapping m.
func codeReserve(m model.Mapping, r model.AddressRange, anonNoAccess bool) bool {
	return anonNoAccess && isAnonymous(m) && r.Start == m.Limit && r.Limit-r.Start >= minCodeReserve
}

// isAnonymous: memory without a file or a pseudo path ([vdso], [heap]).
func isAnonymous(m model.Mapping) bool { return m.Inode == 0 && m.Path == "" }

// noAccess says whether a maps line's permissions are ---p.
func noAccess(line string) bool {
	_, rest, _ := strings.Cut(line, " ")
	return strings.HasPrefix(rest, "---")
}

// parseMapsLine parses "start-end perms offset major:minor inode   path".
func parseMapsLine(line string) (m model.Mapping, exec bool, err error) {
	fields := strings.SplitN(line, " ", 6)
	if len(fields) < 5 {
		return m, false, fmt.Errorf("malformed maps line %q", line)
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return m, false, fmt.Errorf("malformed maps range %q", fields[0])
	}
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, false, fmt.Errorf("malformed maps range %q", fields[0])
	}
	if m.Limit, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, false, fmt.Errorf("malformed maps range %q", fields[0])
	}
	exec = len(fields[1]) >= 3 && fields[1][2] == 'x'
	if m.Offset, err = strconv.ParseUint(fields[2], 16, 64); err != nil {
		return m, false, fmt.Errorf("malformed maps offset %q", fields[2])
	}
	major, minor, ok := strings.Cut(fields[3], ":")
	if !ok {
		return m, false, fmt.Errorf("malformed maps device %q", fields[3])
	}
	maj, err1 := strconv.ParseUint(major, 16, 32)
	min, err2 := strconv.ParseUint(minor, 16, 32)
	if err1 != nil || err2 != nil {
		return m, false, fmt.Errorf("malformed maps device %q", fields[3])
	}
	m.Dev = unix.Mkdev(uint32(maj), uint32(min))
	if m.Inode, err = strconv.ParseUint(fields[4], 10, 64); err != nil {
		return m, false, fmt.Errorf("malformed maps inode %q", fields[4])
	}
	if len(fields) == 6 {
		m.Path = strings.TrimLeft(fields[5], " ")
	}
	if path, deleted := strings.CutSuffix(m.Path, " (deleted)"); deleted && m.Inode != 0 {
		m.Path, m.Deleted = path, true
	}
	return m, exec, nil
}

// processExists reports whether /proc has the PID.
func processExists(procRoot string, pid uint32) bool {
	_, err := os.Stat(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10)))
	return !errors.Is(err, fs.ErrNotExist)
}
