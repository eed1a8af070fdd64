package symbolizer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
)

// Caps on what is read from a file: debug/elf is not hardened, and the
// files come from other processes.
const (
	maxSymbolTableBytes = 256 << 20
	maxNoteBytes        = 1 << 20
)

// elfFile is what the symbolizer keeps of one parsed file: how to turn
// file offsets into ELF addresses, and the sources that name them.
type elfFile struct {
	buildID string // hex GNU build ID, "" when absent
	loads   []loadSegment
	// link is the .gnu_debuglink section, when there is one.
	link    debugLink
	hasLink bool
	// hasDWARF is set when the file carries its own DWARF, so no separate
	// debug file is looked for. anyDWARF and hasSymtab say whether DWARF
	// and a full .symtab were found at all (in the file or its debug
	// file): a copy with the same build ID that has more replaces this
	// parse (a stripped copy seen first must not hide a full one).
	hasDWARF, anyDWARF, hasSymtab bool
	// resolvers are tried in order: DWARF (the file's own or its separate
	// debug file's), Go's pclntab, then symbol tables.
	resolvers []resolver
	// id is the parse's number in the address cache (see tableGen).
	id uint64
	// mapped are the memory maps the resolvers read from (the file's and
	// its debug file's), held so that they stay mapped while f is used.
	mapped []*mappedFile
}

// loadSegment is a PT_LOAD program header: the file bytes
// [off, off+filesz) are mapped at ELF virtual address vaddr.
type loadSegment struct {
	off, filesz, vaddr uint64
}

// elfAddr converts a file offset into the ELF virtual address the symbol
// tables use. This is what makes one lookup work for non-PIE executables
// (vaddr == runtime address), PIE executables and shared libraries (loaded
// at a bias): the runtime address is first turned into a file offset
// through the mapping, which the loader placed by file offset.
func (f *elfFile) elfAddr(fileOff uint64) (uint64, bool) {
	for _, l := range f.loads {
		if fileOff >= l.off && fileOff-l.off < l.filesz {
			return fileOff - l.off + l.vaddr, true
		}
	}
	return 0, false
}

// resolve names an ELF address with the first resolver that knows it,
// demangled. When that resolver found the function but not its name (a
// DWARF entry without one), the name comes from the next that knows it.
func (f *elfFile) resolve(elfAddr uint64) ([]frame, bool) {
	defer runtime.KeepAlive(f) // f.mapped, until the resolvers are done
	for i, r := range f.resolvers {
		frames, ok := r.resolve(elfAddr)
		if !ok {
			continue
		}
		if last := &frames[len(frames)-1]; last.SystemName == "" {
			for _, next := range f.resolvers[i+1:] {
				if named, ok := next.resolve(elfAddr); ok {
					last.Function, last.SystemName = named[len(named)-1].Function, named[len(named)-1].SystemName
					break
				}
			}
		}
		for j := range frames {
			if frames[j].SystemName == "" {
				frames[j].SystemName = "[unknown function]"
			}
		}
		demangleFrames(frames)
		return frames, true
	}
	return nil, false
}

// parseOverheadBytes is what a parse holds besides its resolvers' tables:
// the ELF headers and section list, the cache entries that point at it.
// Measured as the heap a parse kept beyond what its resolvers count, over
// hundreds of host files (TestCacheKeepsBudgetOnHostFiles).
const parseOverheadBytes = 4 << 10

// sizeBytes is the approximate memory the parsed file holds, for the cache
// budget. It grows as DWARF units are read on demand.
func (f *elfFile) sizeBytes() int64 {
	n := int64(parseOverheadBytes + len(f.loads)*24)
	for _, r := range f.resolvers {
		n += r.sizeBytes()
	}
	return n
}

// Defaults of what one file may cost: the DWARF sections read into memory.
const defaultMaxDWARFBytes = 1 << 30

// parseELF reads the program headers, build ID, DWARF, Go line table and
// symbol tables of an ELF file. A malformed file returns an error, never
// a panic; a source that fails (broken DWARF) is skipped for the next.
func parseELF(r io.ReaderAt) (*elfFile, error) {
	ef, _, err := parseELFWith(r, defaultMaxDWARFBytes)
	return ef, err
}

// parseELFWith is parseELF, also returning the errors of the sources it
// skipped. maxDWARFBytes caps the DWARF sections read.
func parseELFWith(r io.ReaderAt, maxDWARFBytes int64) (ef *elfFile, skipped []error, err error) {
	defer func() {
		if p := recover(); p != nil {
			ef, err = nil, fmt.Errorf("parse ELF: panic in debug/elf: %v", p)
		}
	}()
	f, err := openELF(r)
	if err != nil {
		return nil, nil, fmt.Errorf("parse ELF: %w", err)
	}
	ef = &elfFile{}
	if f.mapped != nil {
		ef.mapped = append(ef.mapped, f.mapped)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			ef.loads = append(ef.loads, loadSegment{off: p.Off, filesz: p.Filesz, vaddr: p.Vaddr})
		}
	}
	if len(ef.loads) == 0 {
		return nil, nil, errors.New("parse ELF: no PT_LOAD segments")
	}
	ef.buildID = readBuildID(f.File)
	ef.link, ef.hasLink = readDebugLink(f.File)
	names := &symbolNames{}
	syms, pcln, err := readFunctionSymbols(f, names)
	if err != nil {
		return nil, skipped, err
	}
	ef.hasSymtab = hasFullSymtab(f.File, syms)
	goNames, err := newGoResolver(f, pcln)
	if err != nil {
		skipped = append(skipped, err)
	}
	switch {
	case goNames != nil:
		// Go's line table names Go code as well as DWARF does, with
		// inlined calls; DWARF is read only for what it does not cover.
		ef.resolvers = append(ef.resolvers, goNames)
		// The symbol table repeats every Go function; keep only what the
		// line table does not name (cgo's C code), which for a large Go
		// program saves megabytes of names.
		syms = slices.DeleteFunc(syms, func(sym rawSymbol) bool {
			_, ok := goNames.pcln.funcAt(sym.start)
			return ok
		})
		if f.Section(".debug_info") != nil {
			ef.hasDWARF, ef.anyDWARF = true, true
			ef.resolvers = append(ef.resolvers, &lazyDWARF{file: f, maxBytes: maxDWARFBytes})
		}
	default:
		if d, err := newDWARFResolver(f, maxDWARFBytes); err != nil {
			skipped = append(skipped, err)
		} else if d != nil {
			ef.hasDWARF, ef.anyDWARF = true, true
			ef.resolvers = append(ef.resolvers, d)
		}
	}
	if mini, err := readMiniDebugInfo(f.File, names); err != nil {
		skipped = append(skipped, err)
	} else {
		syms = append(syms, mini...)
	}
	if len(syms) > 0 {
		ef.resolvers = append(ef.resolvers, newSymtabResolver(syms, names))
	}
	return ef, skipped, nil
}

// hasFullSymtab reports whether f has a .symtab that gave function
// symbols (not only .dynsym's exports).
func hasFullSymtab(f *elf.File, syms []rawSymbol) bool {
	return len(syms) > 0 && f.SectionByType(elf.SHT_SYMTAB) != nil
}

// richerThan reports whether f, not parsed yet, has DWARF or a .symtab
// that the parse ef lacks.
func richerThan(f *elf.File, ef *elfFile) bool {
	return (f.Section(".debug_info") != nil && !ef.anyDWARF) ||
		(f.SectionByType(elf.SHT_SYMTAB) != nil && !ef.hasSymtab)
}

// readBuildID returns the hex GNU build ID from .note.gnu.build-id, or from
// any PT_NOTE segment when section headers are missing. "" when absent or
// unreadable: a build ID is useful, not required.
func readBuildID(f *elf.File) string {
	if s := f.Section(".note.gnu.build-id"); s != nil && s.Size <= maxNoteBytes {
		if data, err := s.Data(); err == nil {
			if id := findBuildIDNote(data, f.ByteOrder); id != "" {
				return id
			}
		}
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > maxNoteBytes {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p.Open(), maxNoteBytes))
		if err != nil {
			continue
		}
		if id := findBuildIDNote(data, f.ByteOrder); id != "" {
			return id
		}
	}
	return ""
}

// findBuildIDNote walks ELF notes (namesz, descsz, type, name, desc, each
// padded to 4 bytes) for the NT_GNU_BUILD_ID note of owner "GNU".
func findBuildIDNote(data []byte, order binary.ByteOrder) string {
	const ntGNUBuildID = 3
	align4 := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(data) >= 12 {
		namesz := uint64(order.Uint32(data[0:]))
		descsz := uint64(order.Uint32(data[4:]))
		typ := order.Uint32(data[8:])
		data = data[12:]
		if align4(namesz) > uint64(len(data)) {
			return ""
		}
		name := data[:namesz]
		data = data[align4(namesz):]
		if descsz > uint64(len(data)) {
			return ""
		}
		desc := data[:descsz]
		if typ == ntGNUBuildID && bytes.Equal(name, []byte("GNU\x00")) {
			return hex.EncodeToString(desc)
		}
		data = data[min(align4(descsz), uint64(len(data))):]
	}
	return ""
}
