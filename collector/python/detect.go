package python

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/model"
)

// interpreterFile matches the files CPython runs from: libpython3.X.so
// (a shared build) or a python3.X executable (a static one, as Debian's).
var interpreterFile = regexp.MustCompile(`^(?:libpython3\.(\d+)[dmu]*\.so(?:\.[0-9.]+)?|python3\.(\d+)[dmu]*)$`)

// A Range is a function's code at run time, [Start, Limit).
type Range struct{ Start, Limit uint64 }

// An Interpreter is the CPython a process runs: its version's layout, and
// where its runtime state and evaluation loop are in the process.
type Interpreter struct {
	Layout  Layout
	Path    string // the file CPython was found in
	Runtime uint64 // address of _PyRuntime
	// CodeType is the address of PyCode_Type, the type of every code object.
	CodeType uint64
	Eval     []Range
}

// ErrNotPython: the process maps no CPython.
var ErrNotPython = errors.New("not a CPython process")

// Detect finds the CPython of a process among its mappings. It returns
// ErrNotPython when there is none, and an error wrapping
// ErrUnknownVersion for a version Ember has no offsets for.
func Detect(p *model.Process) (*Interpreter, error) {
	return (*Detector)(nil).Detect(p)
}

// A Detector is Detect with what it read of each file remembered: on a
// host that starts python3 twenty times a second, reading its symbol
// tables every time was a fifth of the daemon's CPU. Its zero value is
// ready; a nil one remembers nothing.
type Detector struct {
	mu     sync.Mutex
	byFile map[fileKey]*fileFacts
}

// fileKey tells a file's contents apart without reading them.
type fileKey struct {
	dev, inode, size uint64
	mtimeNanos       int64
}

// maxDetectedFiles bounds the files remembered; past it they are all
// forgotten, which costs one read per interpreter file after.
const maxDetectedFiles = 256

// Detect is the package's Detect, reading each interpreter file once.
func (d *Detector) Detect(p *model.Process) (*Interpreter, error) {
	err := ErrNotPython
	for i := range p.Mappings {
		m := &p.Mappings[i]
		sub := interpreterFile.FindStringSubmatch(filepath.Base(m.Path))
		if sub == nil || m.File == nil {
			continue
		}
		minor, _ := strconv.Atoi(sub[1] + sub[2])
		ff := d.facts(m.File, minor)
		in, ferr := ff.at(m)
		switch {
		case ferr == nil:
			return in, nil
		case errors.Is(ferr, errNoRuntime):
			// A shared build's python3.X: the runtime is in its libpython.
		default:
			err = fmt.Errorf("%s: %w", m.Path, ferr)
		}
	}
	return nil, err
}

// facts reads f, or recalls what an earlier read of the same file found.
func (d *Detector) facts(f *os.File, minor int) *fileFacts {
	var st unix.Stat_t
	if d == nil || unix.Fstat(int(f.Fd()), &st) != nil {
		return readFacts(f, minor)
	}
	key := fileKey{dev: st.Dev, inode: st.Ino, size: uint64(st.Size), mtimeNanos: st.Mtim.Nano()}
	d.mu.Lock()
	ff, ok := d.byFile[key]
	d.mu.Unlock()
	if ok && ff.nameMinor == minor {
		return ff
	}
	ff = readFacts(f, minor)
	d.mu.Lock()
	if d.byFile == nil || len(d.byFile) >= maxDetectedFiles {
		d.byFile = make(map[fileKey]*fileFacts)
	}
	d.byFile[key] = ff
	d.mu.Unlock()
	return ff
}

var errNoRuntime = errors.New("no _PyRuntime symbol")

// fileFacts is what a file says of its CPython, in ELF addresses: the
// same in every process that maps it.
type fileFacts struct {
	nameMinor int // the version its name claims
	progs     []elf.ProgHeader
	runtime   uint64
	codeType  uint64
	eval      []Range
	layout    Layout
	err       error
}

func readFacts(r io.ReaderAt, minor int) *fileFacts {
	ff := &fileFacts{nameMinor: minor}
	f, err := elf.NewFile(r)
	if err != nil {
		ff.err = err
		return ff
	}
	defer f.Close()
	for _, p := range f.Progs {
		ff.progs = append(ff.progs, p.ProgHeader)
	}
	syms, _ := f.DynamicSymbols()
	if st, err := f.Symbols(); err == nil {
		syms = append(syms, st...)
	}
	var version uint64
	for _, s := range syms {
		switch s.Name {
		case "_PyRuntime":
			ff.runtime = s.Value
		case "_PyEval_EvalFrameDefault", "_PyEval_EvalFrameDefault.cold":
			ff.eval = append(ff.eval, Range{s.Value, s.Value + s.Size})
		case "PyCode_Type":
			ff.codeType = s.Value
		case "Py_Version":
			version = readVersion(f, s)
		}
	}
	if version>>24 == 3 {
		minor = int(version >> 16 & 0xff) // the file's own word beats its name
	}
	switch {
	case ff.runtime == 0:
		ff.err = errNoRuntime
	case len(ff.eval) == 0:
		ff.err = errors.New("no _PyEval_EvalFrameDefault symbol")
	default:
		ff.layout, ff.err = LayoutFor(minor)
	}
	return ff
}

// at places the file's CPython where m maps it.
func (ff *fileFacts) at(m *model.Mapping) (*Interpreter, error) {
	if ff.err != nil {
		return nil, ff.err
	}
	bias, ok := mappingBias(ff.progs, m)
	if !ok {
		return nil, errors.New("mapping matches no loadable segment")
	}
	in := &Interpreter{Path: m.Path, Layout: ff.layout, Runtime: ff.runtime + bias, CodeType: ff.codeType + bias}
	for _, r := range ff.eval {
		in.Eval = append(in.Eval, Range{r.Start + bias, r.Limit + bias})
	}
	return in, nil
}

// mappingBias is the runtime address less the ELF address in m. A
// segment is mapped from its page-aligned offset, and with lld's layouts
// that page also ends the segment before: an exact start wins.
func mappingBias(progs []elf.ProgHeader, m *model.Mapping) (uint64, bool) {
	bias := func(p elf.ProgHeader) uint64 { return m.Start - m.Offset + p.Off - p.Vaddr }
	for _, p := range progs {
		if p.Type == elf.PT_LOAD && p.Off&^0xfff == m.Offset {
			return bias(p), true
		}
	}
	for _, p := range progs {
		if p.Type == elf.PT_LOAD && m.Offset >= p.Off&^0xfff && m.Offset < p.Off+p.Filesz {
			return bias(p), true
		}
	}
	return 0, false
}

// readVersion reads the PY_VERSION_HEX that 3.11+ keeps in Py_Version.
func readVersion(f *elf.File, s elf.Symbol) uint64 {
	for _, sec := range f.Sections {
		if sec.Flags&elf.SHF_ALLOC == 0 || sec.Type == elf.SHT_NOBITS || s.Value < sec.Addr || s.Value+4 > sec.Addr+sec.Size {
			continue
		}
		var b [4]byte
		if _, err := sec.ReadAt(b[:], int64(s.Value-sec.Addr)); err != nil {
			return 0
		}
		return uint64(binary.LittleEndian.Uint32(b[:]))
	}
	return 0
}

// InEval reports whether pc is in the evaluation loop; ret says pc is a
// return address, which points after its call.
func (in *Interpreter) InEval(pc uint64, ret bool) bool {
	if ret {
		pc--
	}
	for _, r := range in.Eval {
		if pc >= r.Start && pc < r.Limit {
			return true
		}
	}
	return false
}
