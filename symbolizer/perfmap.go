package symbolizer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

// maxPerfMapBytes caps a JIT's perf map. Node with --perf-basic-prof
// appends forever; past the cap the file is not read.
const maxPerfMapBytes = 64 << 20

// perfMap is a parsed /tmp/perf-PID.map: one "START SIZE NAME" line (hex
// start and size) per JIT-compiled function, as Node --perf-basic-prof,
// Java's perf-map-agent and Python 3.12 -X perf write them.
type perfMap struct {
	syms []perfMapSymbol // sorted by start; later lines win on overlap
	// size and mtimeNanos tell when the file changed and must be reread.
	size, mtimeNanos int64
}

type perfMapSymbol struct {
	start, end uint64
	name       string
}

// parsePerfMap reads a perf map. Malformed lines are skipped (a JIT may be
// writing the last one as it is read); a later entry for the same start
// replaces the earlier one (code was recompiled in place).
func parsePerfMap(r io.Reader) (*perfMap, error) {
	byStart := map[uint64]int{}
	var syms []perfMapSymbol
	sc := bufio.NewScanner(io.LimitReader(r, maxPerfMapBytes))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		startText, rest, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		sizeText, name, ok := bytes.Cut(rest, []byte(" "))
		if !ok || len(name) == 0 {
			continue
		}
		start, err1 := parseHex(startText)
		size, err2 := parseHex(sizeText)
		if err1 != nil || err2 != nil || size == 0 || start+size < start {
			continue
		}
		sym := perfMapSymbol{start: start, end: start + size, name: string(name)}
		if i, ok := byStart[start]; ok {
			syms[i] = sym
			continue
		}
		byStart[start] = len(syms)
		syms = append(syms, sym)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read perf map: %w", err)
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].start < syms[j].start })
	return &perfMap{syms: syms}, nil
}

func parseHex(b []byte) (uint64, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(string(b), "0x"), "0X")
	return strconv.ParseUint(s, 16, 64)
}

func (m *perfMap) lookup(addr uint64) (string, bool) {
	i := sort.Search(len(m.syms), func(i int) bool { return m.syms[i].start > addr }) - 1
	if i < 0 || addr >= m.syms[i].end {
		return "", false
	}
	return m.syms[i].name, true
}

func (m *perfMap) sizeBytes() int64 {
	n := int64(len(m.syms)) * 40
	for _, s := range m.syms {
		n += int64(len(s.name))
	}
	return n
}

// namespacedPID returns the PID a process has in its own PID namespace,
// the last field of NSpid in /proc/PID/status: the number a JIT inside a
// container writes into its perf map's name.
func namespacedPID(procRoot string, pid uint32) (uint32, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(int(pid)), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		n, err := strconv.ParseUint(fields[len(fields)-1], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("NSpid %q: %w", rest, err)
		}
		return uint32(n), nil
	}
	return pid, nil // kernels before 4.1 have no NSpid: no PID namespaces to consider
}

// openProcRoot opens procRoot/PID/root, the process's view of /, and
// returns it with the PID the process has in its own namespace.
func openProcRoot(procRoot string, pid uint32) (*os.File, uint32, error) {
	nspid, err := namespacedPID(procRoot, pid)
	if err != nil {
		return nil, 0, err
	}
	root, err := os.Open(filepath.Join(procRoot, strconv.Itoa(int(pid)), "root"))
	if err != nil {
		return nil, 0, err
	}
	return root, nspid, nil
}

// openPerfMap opens /tmp/perf-NSPID.map inside a process's root with
// RESOLVE_IN_ROOT, so a symlink planted in a container cannot point the
// daemon at a host file, and non-blocking, so a FIFO planted there cannot
// stall it. Only regular files are accepted.
func openPerfMap(root *os.File, nspid uint32) (*os.File, error) {
	name := fmt.Sprintf("tmp/perf-%d.map", nspid)
	fd, err := unix.Openat2(int(root.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: "/" + name, Err: err}
	}
	f := os.NewFile(uintptr(fd), "/"+name)
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return f, nil
}

// perfMapLook is what one Profile call found of a process's perf map: the
// map, or why there is none.
type perfMapLook struct {
	m   *perfMap
	why string
}

// perfMapFor returns the current perf map of a process, rereading it when
// its size or modification time changed, or why it has none. checked
// records the processes already looked at in this Profile call, so a map is
// stat'ed at most once per batch.
func (s *Symbolizer) perfMapFor(proc *model.Process, checked map[uint32]perfMapLook) perfMapLook {
	pid := proc.PID
	if l, ok := checked[pid]; ok {
		return l
	}
	l := s.readPerfMap(proc)
	checked[pid] = l
	return l
}

func (s *Symbolizer) readPerfMap(proc *model.Process) perfMapLook {
	root, nspid, why := s.jitRoot(proc)
	if root == nil {
		return perfMapLook{why: why}
	}
	f, err := openPerfMap(root, nspid)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && dumpsPerfMapAtExit(proc) {
			return perfMapLook{why: jitMapAtExit}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return perfMapLook{why: fmt.Sprintf(jitNoMap, nspid)}
		}
		return perfMapLook{why: jitMapRefused}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() > maxPerfMapBytes {
		return perfMapLook{why: jitMapRefused}
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	var mtime int64
	if st != nil {
		mtime = st.Mtim.Nano()
	}
	pid := proc.PID
	if old, ok := s.perfMaps.get(pid); ok && old != nil && old.size == fi.Size() && old.mtimeNanos == mtime {
		return perfMapLook{m: old}
	}
	m, err := parsePerfMap(f)
	if err != nil {
		return perfMapLook{why: jitMapRefused}
	}
	m.size, m.mtimeNanos = fi.Size(), mtime
	s.perfMaps.addSized(pid, m, m.sizeBytes())
	s.fitTables()
	return perfMapLook{m: m}
}
