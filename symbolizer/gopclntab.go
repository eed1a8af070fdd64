package symbolizer

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
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
// calls the Go compiler inlined there (see goInline).
type goResolver struct {
	table *gosym.Table
	// inline expands inlined calls; nil when its tables were not found.
	inline *goInline
	bytes  int64
}

// newGoResolver finds the pclntab of a Go ELF binary: the .gopclntab
// section, else the runtime.pclntab symbol's bytes, else a header found in
// .data.rel.ro (PIE and externally linked binaries keep it there). It
// returns (nil, nil) for a file that is not Go.
func newGoResolver(f *elf.File, syms []elf.Symbol) (r *goResolver, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("parse .gopclntab: panic in debug/gosym: %v", p)
		}
	}()
	data, addr, err := findPclntab(f, syms)
	if err != nil || data == nil {
		return nil, err
	}
	text := goTextStart(f, data)
	r, err = newGoResolverFromData(data, text)
	if err != nil {
		return nil, err
	}
	// Without the inline trees frames are still named, only not expanded.
	if inl, err := newGoInline(f, data, addr, text); err == nil {
		r.inline = inl
	}
	return r, nil
}

func newGoResolverFromData(data []byte, textStart uint64) (r *goResolver, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("parse .gopclntab: panic in debug/gosym: %v", p)
		}
	}()
	if !isPclntabHeader(data) {
		return nil, errors.New("parse .gopclntab: not a Go 1.18+ line table")
	}
	if err := checkPclntabHeader(data); err != nil {
		return nil, fmt.Errorf("parse .gopclntab: %w", err)
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, textStart))
	if err != nil {
		return nil, fmt.Errorf("parse .gopclntab: %w", err)
	}
	if len(table.Funcs) == 0 {
		return nil, errors.New("parse .gopclntab: no functions")
	}
	// Funcs are sorted by entry in a valid table; PCToFunc relies on it.
	if !sort.SliceIsSorted(table.Funcs, func(i, j int) bool { return table.Funcs[i].Entry < table.Funcs[j].Entry }) {
		return nil, errors.New("parse .gopclntab: functions out of order")
	}
	var names int
	for _, fn := range table.Funcs {
		names += len(fn.Name)
	}
	return &goResolver{table: table, bytes: int64(len(data)) + int64(len(table.Funcs))*160 + int64(names)}, nil
}

func (r *goResolver) sizeBytes() int64 { return r.bytes }

func (r *goResolver) resolve(pc uint64) (frames []frame, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			frames, ok = nil, false
		}
	}()
	fn := r.table.PCToFunc(pc)
	if fn == nil || pc >= fn.End {
		return nil, false
	}
	if r.inline != nil {
		if frames := r.inline.frames(pc, r.table, fn); frames != nil {
			return frames, true
		}
	}
	file, line, _ := r.table.PCToLine(pc)
	if line <= 0 { // padding after the function's code
		file, line = "", 0
	}
	return []frame{{Function: fn.Name, SystemName: fn.Name, File: file, Line: int64(line)}}, true
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

// findPclntab returns the pclntab's bytes and address.
func findPclntab(f *elf.File, syms []elf.Symbol) ([]byte, uint64, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := f.Section(name); s != nil {
			data, err := sectionData(s, maxPclntabBytes)
			return data, s.Addr, err
		}
	}
	var start, end uint64
	for _, s := range syms {
		switch s.Name {
		case "runtime.pclntab":
			start = s.Value
		case "runtime.epclntab":
			end = s.Value
		}
	}
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
			return nil, 0, nil
		}
		data, err := sectionData(s, maxPclntabBytes*2)
		if err != nil {
			return nil, 0, err
		}
		if start != 0 {
			data = data[start-s.Addr:]
			if end > start && end-start <= uint64(len(data)) {
				data = data[:end-start]
			}
			return data, start, nil
		}
		for off := 0; off+16 <= len(data); {
			i := bytes.Index(data[off:], []byte{0xf1, 0xff, 0xff, 0xff, 0, 0})
			if i < 0 {
				break
			}
			if isPclntabHeader(data[off+i:]) {
				return data[off+i:], s.Addr + uint64(off+i), nil
			}
			off += i + 1
		}
	}
	return nil, 0, nil
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
