package symbolizer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// maxPclntabBytes caps the Go line table read; the go command's own is
// about 10 MB.
const maxPclntabBytes = 256 << 20

// goResolver names addresses of Go binaries from .gopclntab, which Go
// keeps even when built with -ldflags='-s -w' (no symbol table, no DWARF).
// It gives the function and the file:line of the instruction, and the
// calls the Go compiler inlined there (see goInline). The table is read
// in place, the way the runtime reads it: nothing is decoded ahead of a
// lookup, so a mapped table costs the heap nothing.
type goResolver struct {
	pcln *pclnTable
	// inline expands inlined calls; nil when its tables were not found.
	inline *goInline
	bytes  int64
}

// newGoResolver finds the pclntab of a Go ELF binary: the .gopclntab
// section, else the runtime.pclntab symbol's bytes, else a header found in
// .data.rel.ro (PIE and externally linked binaries keep it there). It
// returns (nil, nil) for a file that is not Go.
func newGoResolver(f elfImage, syms pclnSymbols) (r *goResolver, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("parse .gopclntab: panic: %v", p)
		}
	}()
	data, addr, heap, err := findPclntab(f, syms)
	if err != nil || data == nil {
		return nil, err
	}
	text := goTextStart(f.File, data)
	if len(data) >= 8+8*8 && binary.LittleEndian.Uint64(data[8+2*8:]) == 0 {
		// An externally linked (cgo) binary: the header leaves runtime.text
		// out, and .text starts with C code.
		if t, ok := findModuleText(f, addr, addr+binary.LittleEndian.Uint64(data[8+3*8:])); ok {
			text = t
		}
	}
	r, err = newGoResolverFromData(data, text)
	if err != nil {
		return nil, err
	}
	r.bytes = 256 + heap
	// Without the inline trees frames are still named, only not expanded.
	if inl, heap, err := newGoInline(f, data, addr, text); err == nil {
		r.inline = inl
		r.bytes += heap
	}
	return r, nil
}

func newGoResolverFromData(data []byte, textStart uint64) (*goResolver, error) {
	t, err := newPclnTable(data, textStart)
	if err != nil {
		return nil, fmt.Errorf("parse .gopclntab: %w", err)
	}
	return &goResolver{pcln: t, bytes: int64(len(data))}, nil
}

func (r *goResolver) sizeBytes() int64 { return r.bytes }

func (r *goResolver) resolve(pc uint64) (frames []frame, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			frames, ok = nil, false
		}
	}()
	fn, ok := r.pcln.funcAt(pc)
	if !ok {
		return nil, false
	}
	name := r.pcln.name(fn)
	if name == "" {
		return nil, false
	}
	if r.inline != nil {
		if frames := r.inline.frames(pc, r.pcln, fn, name); frames != nil {
			return frames, true
		}
	}
	file, line := r.pcln.fileLine(fn, pc)
	if line <= 0 { // padding after the function's code
		file, line = "", 0
	}
	return []frame{{Function: name, SystemName: name, File: file, Line: line}}, true
}

// pclnTable reads a Go 1.18+ line table (the runtime's pclntab) in place.
// Every offset read from it is checked against the table's bounds: the
// bytes come from other processes' files.
type pclnTable struct {
	textStart uint64
	quantum   uint64 // instruction size unit of pc deltas: 1 on amd64
	nfunc     uint64
	// The header's sub-tables, each from its offset to the table's end.
	funcnametab, cutab, filetab, pctab []byte
	// functab is the function table, nfunc+1 (entry, record) offset
	// pairs, followed by the _func records the second halves point to.
	functab []byte
}

// pclnFunc is one function's _func record and its text range.
type pclnFunc struct {
	rec        []byte
	entry, end uint64
}

// Offsets of _func fields, the same in Go 1.18 to 1.26.
const (
	funcNameOff   = 4
	funcPcfile    = 20
	funcPcln      = 24
	funcCUOffset  = 32
	funcMinHeader = 40 // Go 1.18's record; 1.20 added startLine
)

func newPclnTable(data []byte, textStart uint64) (*pclnTable, error) {
	if !isPclntabHeader(data) {
		return nil, errors.New("not a Go 1.18+ line table")
	}
	if err := checkPclntabHeader(data); err != nil {
		return nil, err
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8+i*8:]) }
	t := &pclnTable{
		textStart:   textStart,
		quantum:     uint64(data[6]),
		nfunc:       word(0),
		funcnametab: data[word(3):],
		cutab:       data[word(4):],
		filetab:     data[word(5):],
		pctab:       data[word(6):],
		functab:     data[word(7):],
	}
	// Lookups binary-search the entries: a table out of order would name
	// addresses wrongly, so it is refused.
	for i := uint64(1); i <= t.nfunc; i++ {
		if t.entryOff(i) < t.entryOff(i-1) {
			return nil, fmt.Errorf("function %d starts before function %d", i, i-1)
		}
	}
	return t, nil
}

// entryOff is function i's entry as an offset from textStart; i == nfunc
// is the end of the last function. checkPclntabHeader made sure the
// nfunc+1 pairs fit.
func (t *pclnTable) entryOff(i uint64) uint64 {
	return uint64(binary.LittleEndian.Uint32(t.functab[i*8:]))
}

// funcAt finds the function whose code holds pc.
func (t *pclnTable) funcAt(pc uint64) (pclnFunc, bool) {
	if pc < t.textStart {
		return pclnFunc{}, false
	}
	off := pc - t.textStart
	i := uint64(sort.Search(int(t.nfunc), func(i int) bool { return t.entryOff(uint64(i)) > off }))
	if i == 0 {
		return pclnFunc{}, false
	}
	i--
	end := t.entryOff(i + 1)
	recOff := uint64(binary.LittleEndian.Uint32(t.functab[i*8+4:]))
	if off >= end || recOff+funcMinHeader > uint64(len(t.functab)) {
		return pclnFunc{}, false
	}
	return pclnFunc{rec: t.functab[recOff:], entry: t.textStart + t.entryOff(i), end: t.textStart + end}, true
}

// name is the function's name, "" when the record points nowhere.
func (t *pclnTable) name(fn pclnFunc) string {
	off := int32(binary.LittleEndian.Uint32(fn.rec[funcNameOff:]))
	if off < 0 {
		return ""
	}
	return cString(t.funcnametab, uint32(off))
}

// fileLine is the source position of the instruction at pc in fn: its
// line, and its file through the compile unit's file table.
func (t *pclnTable) fileLine(fn pclnFunc, pc uint64) (string, int64) {
	line := t.pcvalue(binary.LittleEndian.Uint32(fn.rec[funcPcln:]), fn.entry, pc)
	fileNo := t.pcvalue(binary.LittleEndian.Uint32(fn.rec[funcPcfile:]), fn.entry, pc)
	if fileNo < 0 {
		return "", int64(max(line, 0))
	}
	at := (uint64(binary.LittleEndian.Uint32(fn.rec[funcCUOffset:])) + uint64(fileNo)) * 4
	if at+4 > uint64(len(t.cutab)) {
		return "", int64(max(line, 0))
	}
	fileOff := binary.LittleEndian.Uint32(t.cutab[at:])
	if fileOff == ^uint32(0) {
		return "", int64(max(line, 0))
	}
	return cString(t.filetab, fileOff), int64(max(line, 0))
}

// pcvalue decodes the pc-value table at off in pctab (as the runtime's
// pcvalue does) for targetPC in a function starting at entry; -1 when the
// table ends first or is malformed.
func (t *pclnTable) pcvalue(off uint32, entry, targetPC uint64) int32 {
	if off == 0 || uint64(off) >= uint64(len(t.pctab)) {
		return -1
	}
	p := t.pctab[off:]
	pc, val := entry, int32(-1)
	for first := true; ; first = false {
		uvdelta, n := binary.Uvarint(p)
		if n <= 0 || (uvdelta == 0 && !first) {
			return -1
		}
		p = p[n:]
		if uvdelta&1 != 0 {
			uvdelta = ^(uvdelta >> 1)
		} else {
			uvdelta >>= 1
		}
		pcdelta, n := binary.Uvarint(p)
		if n <= 0 {
			return -1
		}
		p = p[n:]
		val += int32(uvdelta)
		pc += pcdelta * t.quantum
		if targetPC < pc {
			return val
		}
	}
}

// cString returns the NUL-terminated string at off in b, copied (b may
// be a mapped file).
func cString(b []byte, off uint32) string {
	if uint64(off) >= uint64(len(b)) {
		return ""
	}
	s := b[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return string(s[:i])
	}
	return ""
}

// Magic numbers of the Go 1.18 and 1.20+ pclntab headers (little endian);
// older formats are not read.
const (
	pclntabMagic118 = 0xfffffff0
	pclntabMagic120 = 0xfffffff1
)

func isPclntabHeader(b []byte) bool {
	if len(b) < 16 {
		return false
	}
	magic := binary.LittleEndian.Uint32(b)
	return (magic == pclntabMagic118 || magic == pclntabMagic120) &&
		b[4] == 0 && b[5] == 0 && (b[6] == 1 || b[6] == 2 || b[6] == 4) && b[7] == 8
}

// checkPclntabHeader checks the header's counts and offsets against the
// table's size: debug/gosym allocates a Func for every function the
// header claims before looking at them (the fuzzer made it ask for
// 394 GB, a fatal out-of-memory error recover cannot catch).
func checkPclntabHeader(b []byte) error {
	const ptrSize = 8
	if len(b) < 8+8*ptrSize {
		return errors.New("header truncated")
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8+i*ptrSize:]) }
	size := uint64(len(b))
	nfunc, nfiles := word(0), word(1)
	for i := 3; i <= 7; i++ {
		if word(i) > size {
			return fmt.Errorf("table %d at offset %d, past the %d-byte table", i, word(i), size)
		}
	}
	// The function table holds nfunc+1 (pc, func) pairs of 4-byte fields.
	if nfunc == 0 || nfunc > size/8 || word(7)+(2*nfunc+1)*4 > size {
		return fmt.Errorf("%d functions do not fit in %d bytes", nfunc, size)
	}
	if nfiles > size/4 {
		return fmt.Errorf("%d files do not fit in %d bytes", nfiles, size)
	}
	return nil
}

// findPclntab returns the pclntab's bytes, its address, and how many of
// its bytes are on the heap.
func findPclntab(f elfImage, syms pclnSymbols) ([]byte, uint64, int64, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := f.Section(name); s != nil {
			data, heap, err := f.sectionData(s, maxPclntabBytes)
			return data, s.Addr, heap, err
		}
	}
	start, end := syms.start, syms.end
	for _, name := range []string{".data.rel.ro", ".rodata"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Size > maxPclntabBytes*2 {
			continue
		}
		if start != 0 && (start < s.Addr || start >= s.Addr+s.Size) {
			continue
		}
		// Only a Go binary has a go.buildinfo section or a Go build ID
		// note; without the symbol, look for the header by its magic.
		if start == 0 && f.Section(".go.buildinfo") == nil && f.Section(".note.go.buildid") == nil {
			return nil, 0, 0, nil
		}
		data, heap, err := f.sectionData(s, maxPclntabBytes*2)
		if err != nil {
			return nil, 0, 0, err
		}
		if start != 0 {
			data = data[start-s.Addr:]
			if end > start && end-start <= uint64(len(data)) {
				data = data[:end-start]
			}
			return data, start, heap, nil
		}
		for off := 0; off+16 <= len(data); {
			i := bytes.Index(data[off:], []byte{0xf1, 0xff, 0xff, 0xff, 0, 0})
			if i < 0 {
				break
			}
			if isPclntabHeader(data[off+i:]) {
				return data[off+i:], s.Addr + uint64(off+i), heap, nil
			}
			off += i + 1
		}
	}
	return nil, 0, 0, nil
}

// goTextStart is the address of runtime.text, which 1.18+ tables count
// function offsets from: the header's field when the linker filled it
// in, else the start of .text (where the Go linker puts runtime.text).
func goTextStart(f *elf.File, data []byte) uint64 {
	const ptrSize = 8
	if len(data) >= 8+3*ptrSize {
		if v := binary.LittleEndian.Uint64(data[8+2*ptrSize:]); v != 0 {
			return v
		}
	}
	if s := f.Section(".text"); s != nil {
		return s.Addr
	}
	return 0
}
