package python

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"

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
	err := ErrNotPython
	for i := range p.Mappings {
		m := &p.Mappings[i]
		sub := interpreterFile.FindStringSubmatch(filepath.Base(m.Path))
		if sub == nil || m.File == nil {
			continue
		}
		minor, _ := strconv.Atoi(sub[1] + sub[2])
		in, ferr := fromFile(m, m.File, minor)
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

var errNoRuntime = errors.New("no _PyRuntime symbol")

func fromFile(m *model.Mapping, r io.ReaderAt, minor int) (*Interpreter, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bias, ok := mappingBias(f, m)
	if !ok {
		return nil, errors.New("mapping matches no loadable segment")
	}
	syms, _ := f.DynamicSymbols()
	if st, err := f.Symbols(); err == nil {
		syms = append(syms, st...)
	}
	in := &Interpreter{Path: m.Path}
	var version uint64
	for _, s := range syms {
		switch s.Name {
		case "_PyRuntime":
			in.Runtime = s.Value + bias
		case "_PyEval_EvalFrameDefault", "_PyEval_EvalFrameDefault.cold":
			in.Eval = append(in.Eval, Range{s.Value + bias, s.Value + s.Size + bias})
		case "PyCode_Type":
			in.CodeType = s.Value + bias
		case "Py_Version":
			version = readVersion(f, s)
		}
	}
	if version>>24 == 3 {
		minor = int(version >> 16 & 0xff) // the file's own word beats its name
	}
	if in.Runtime == 0 {
		return nil, errNoRuntime
	}
	if in.Layout, err = LayoutFor(minor); err != nil {
		return nil, err
	}
	if len(in.Eval) == 0 {
		return nil, errors.New("no _PyEval_EvalFrameDefault symbol")
	}
	return in, nil
}

// mappingBias is the runtime address less the ELF address in m. A
// segment is mapped from its page-aligned offset, and with lld's layouts
// that page also ends the segment before: an exact start wins.
func mappingBias(f *elf.File, m *model.Mapping) (uint64, bool) {
	bias := func(p *elf.Prog) uint64 { return m.Start - m.Offset + p.Off - p.Vaddr }
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off&^0xfff == m.Offset {
			return bias(p), true
		}
	}
	for _, p := range f.Progs {
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
