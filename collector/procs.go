package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// fileKey identifies a mapped file host-wide, so each file is opened once
// however many processes map it.
type fileKey struct{ dev, inode uint64 }

type heldFile struct {
	file *os.File
	refs int
}

type trackedProcess struct {
	snapshot *Process
	files    []fileKey
	// exitedAt is the drain generation in which the exit was noticed; 0 while alive.
	exitedAt uint64
}

type pendingRelease struct {
	atGeneration uint64
	files        []fileKey
}

// processTracker keeps what is needed to symbolize each sampled process:
// metadata and mappings read at first sight, and the mapped files held open
// so a process that exits (or a file that is replaced) still resolves.
type processTracker struct {
	procRoot     string
	maxOpenFiles int
	log          *slog.Logger

	mu         sync.Mutex
	generation uint64 // drains so far
	procs      map[uint32]*trackedProcess
	files      map[fileKey]*heldFile
	pending    []pendingRelease
	// filesNotHeld counts mappings whose file could not be opened or was over the limit.
	filesNotHeld uint64
}

func newProcessTracker(procRoot string, maxOpenFiles int, log *slog.Logger) *processTracker {
	return &processTracker{
		procRoot:     procRoot,
		maxOpenFiles: maxOpenFiles,
		log:          log,
		generation:   1,
		procs:        make(map[uint32]*trackedProcess),
		files:        make(map[fileKey]*heldFile),
	}
}

// observe records a process at first sight (or after an exec), replacing
// anything known about that PID.
func (t *processTracker) observe(pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeLocked(pid)
}

func (t *processTracker) observeLocked(pid uint32) *trackedProcess {
	proc, files := t.snapshot(pid)
	if old := t.procs[pid]; old != nil {
		t.releaseLater(old.files)
	}
	tp := &trackedProcess{snapshot: proc, files: files}
	if proc.SnapshotErr != nil {
		// Gone already: keep the entry so its samples say why, and drop it soon.
		tp.exitedAt = t.generation
	}
	t.procs[pid] = tp
	return tp
}

func (t *processTracker) exited(pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tp := t.procs[pid]; tp != nil && tp.exitedAt == 0 {
		tp.exitedAt = t.generation
		// Copy: batches already handed out keep their own view.
		exited := *tp.snapshot
		exited.Exited = true
		tp.snapshot = &exited
	}
}

// processesFor returns snapshots for the PIDs of a batch. A PID never seen is
// read now; one whose samples fall outside its known mappings (a library
// loaded since) is read again, once.
func (t *processTracker) processesFor(samples []Sample) map[uint32]*Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[uint32]*Process)
	for i := range samples {
		s := &samples[i]
		if _, done := out[s.PID]; done {
			continue
		}
		tp := t.procs[s.PID]
		if tp == nil {
			tp = t.observeLocked(s.PID)
		}
		out[s.PID] = tp.snapshot
	}
	refreshed := make(map[uint32]bool)
	for i := range samples {
		s := &samples[i]
		p := out[s.PID]
		if refreshed[s.PID] || p.Exited || p.SnapshotErr != nil || covered(p, s.User) {
			continue
		}
		refreshed[s.PID] = true
		tp := t.observeLocked(s.PID)
		if tp.snapshot.SnapshotErr == nil {
			out[s.PID] = tp.snapshot
		}
	}
	for pid, p := range out {
		if p.Comm == "" {
			p.Comm = commOf(samples, pid)
		}
	}
	return out
}

func covered(p *Process, addrs []uint64) bool {
	for _, a := range addrs {
		if p.FindMapping(a) == nil {
			return false
		}
	}
	return true
}

func commOf(samples []Sample, pid uint32) string {
	for i := range samples {
		if samples[i].PID == pid && samples[i].PID == samples[i].TID {
			return samples[i].Comm
		}
	}
	for i := range samples {
		if samples[i].PID == pid {
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
	for pid, tp := range t.procs {
		if tp.exitedAt != 0 && tp.exitedAt < t.generation {
			t.releaseLater(tp.files)
			delete(t.procs, pid)
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
	for pid, tp := range t.procs {
		if tp.exitedAt != 0 {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(t.procRoot, strconv.FormatUint(uint64(pid), 10), "stat"))
		if err == nil {
			if _, start, err := parseStat(raw); err == nil && start == tp.snapshot.StartTicks {
				continue
			}
		}
		tp.exitedAt = t.generation
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
	t.procs = map[uint32]*trackedProcess{}
	t.pending = nil
}

// snapshot reads a process's metadata and executable mappings from /proc and
// holds its mapped files open.
func (t *processTracker) snapshot(pid uint32) (*Process, []fileKey) {
	dir := filepath.Join(t.procRoot, strconv.FormatUint(uint64(pid), 10))
	p := &Process{PID: pid}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		p.SnapshotErr = fmt.Errorf("read process %d: %w", pid, err)
		return p, nil
	}
	p.Comm, p.StartTicks, err = parseStat(stat)
	if err != nil {
		p.SnapshotErr = fmt.Errorf("process %d: %w", pid, err)
		return p, nil
	}
	p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	p.Exe = strings.TrimSuffix(p.Exe, " (deleted)")
	if raw, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = splitCmdline(raw)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		p.Cgroup = parseCgroup(raw)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "maps"))
	if err != nil {
		p.SnapshotErr = fmt.Errorf("read mappings of process %d: %w", pid, err)
		return p, nil
	}
	p.Mappings, err = parseMaps(raw)
	if err != nil {
		p.SnapshotErr = fmt.Errorf("process %d: %w", pid, err)
		return p, nil
	}
	var files []fileKey
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
		if len(t.files) >= t.maxOpenFiles {
			t.filesNotHeld++
			continue
		}
		f, err := openMappedFile(dir, m)
		if err != nil {
			t.filesNotHeld++
			t.log.Debug("cannot open mapped file", slog.Int("pid", int(pid)), slog.String("path", m.Path), slog.Any("err", err))
			continue
		}
		t.files[key] = &heldFile{file: f, refs: 1}
		m.File = f
		files = append(files, key)
	}
	return p, files
}

// openMappedFile opens the file behind a mapping as the process sees it. The
// map_files link reaches the exact file even when deleted or inside another
// mount namespace; the fallback resolves the path inside the process's root so
// a symlink planted in a container cannot lead out of it.
func openMappedFile(procDir string, m *Mapping) (*os.File, error) {
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

func checkRegular(f *os.File, m *Mapping, matchIdentity bool) error {
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

// parseStat returns comm and the start time (field 22) of /proc/PID/stat.
// comm may hold spaces and parentheses, so fields are counted after the last ')'.
func parseStat(raw []byte) (comm string, startTicks uint64, err error) {
	open := bytes.IndexByte(raw, '(')
	closing := bytes.LastIndexByte(raw, ')')
	if open < 0 || closing < open {
		return "", 0, errors.New("malformed stat")
	}
	comm = string(raw[open+1 : closing])
	fields := strings.Fields(string(raw[closing+1:]))
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return "", 0, errors.New("malformed stat: too few fields")
	}
	startTicks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("malformed stat start time: %w", err)
	}
	return comm, startTicks, nil
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

// parseMaps keeps executable mappings, the only ones stack addresses fall in.
func parseMaps(raw []byte) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		m, exec, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, err
		}
		if exec {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseMapsLine parses "start-end perms offset major:minor inode   path".
func parseMapsLine(line string) (m Mapping, exec bool, err error) {
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
