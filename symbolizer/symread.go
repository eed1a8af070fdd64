package symbolizer

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"slices"
)

// Function symbols are read straight from the symbol table's bytes, and
// their names stay in the file's string table until a lookup asks for one.
// debug/elf's Symbols copies every name of every symbol into a string: for
// node (110,000 symbols, 7.5 MB of mangled names) that was about 20 MB
// allocated per parse and 14 MB held, so a busy host's files did not fit
// the cache budget and were parsed again and again.

// symName is where a symbol's name starts: a string table and an offset.
type symName struct {
	off   uint32
	table uint8
}

// symbolNames are the string tables names point into: slices of a mapped
// file (no heap) or, for MiniDebugInfo and unmapped readers, heap copies.
type symbolNames struct {
	tables [][]byte
	heap   int64 // bytes of tables that are on the heap
}

// add keeps a string table and returns its number; false when a resolver
// already has as many tables as a symName can number.
func (n *symbolNames) add(table []byte, heap int64) (uint8, bool) {
	if len(n.tables) > 0xff {
		return 0, false
	}
	n.tables = append(n.tables, table)
	n.heap += heap
	return uint8(len(n.tables) - 1), true
}

// bytes returns a name without copying it: nil when the offset is past
// its table or the name is not terminated (debug/elf reads those as "").
func (n *symbolNames) bytes(s symName) []byte {
	if int(s.table) >= len(n.tables) {
		return nil
	}
	t := n.tables[s.table]
	if int64(s.off) >= int64(len(t)) {
		return nil
	}
	b := t[s.off:]
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil
	}
	return b[:i]
}

// string copies a name out: the table may be a mapping that goes away.
func (n *symbolNames) string(s symName) string { return string(n.bytes(s)) }

// rawSymbol is a function symbol as read, before newSymtabResolver sorts
// the symbols and gives each its end.
type rawSymbol struct {
	start, size uint64
	// sectionEnd bounds an unsized symbol that is the last of its file; 0
	// when unknown.
	sectionEnd uint64
	name       symName
	bind       elf.SymBind
}

// pclnSymbols are the values of runtime.pclntab and runtime.epclntab, for
// Go binaries whose line table has no section of its own.
type pclnSymbols struct{ start, end uint64 }

// readFunctionSymbols reads the function symbols of .symtab and .dynsym,
// adding their string tables to names. A file with neither is fine
// (stripped); a table that cannot be read is an error unless the other one
// gave symbols.
func readFunctionSymbols(f elfImage, names *symbolNames) ([]rawSymbol, pclnSymbols, error) {
	var syms []rawSymbol
	var pcln pclnSymbols
	var errs []error
	for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		s := f.SectionByType(typ)
		if s == nil {
			continue
		}
		var err error
		if syms, err = appendSymbolTable(syms, &pcln, f, s, names); err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", s.Name, err))
		}
	}
	if len(syms) == 0 && len(errs) > 0 {
		return nil, pclnSymbols{}, errors.Join(errs...)
	}
	return syms, pcln, nil
}

// appendSymbolTable appends what can hold code: STT_FUNC and STT_GNU_IFUNC
// symbols, and untyped symbols in executable sections (hand-written
// assembly often has no type).
func appendSymbolTable(dst []rawSymbol, pcln *pclnSymbols, f elfImage, s *elf.Section, names *symbolNames) ([]rawSymbol, error) {
	if err := checkSymbolTableSize(f.File, s); err != nil {
		return dst, err
	}
	if int(s.Link) >= len(f.Sections) || s.Link == 0 {
		return dst, fmt.Errorf("string table link %d is not a section", s.Link)
	}
	entrySize := 24
	if f.Class == elf.ELFCLASS32 {
		entrySize = 16
	}
	data, _, err := f.sectionData(s, maxSymbolTableBytes)
	if err != nil {
		return dst, err
	}
	if len(data)%entrySize != 0 {
		return dst, fmt.Errorf("%d bytes is not a whole number of %d-byte symbols", len(data), entrySize)
	}
	strtab, heap, err := f.sectionData(f.Sections[s.Link], maxSymbolTableBytes)
	if err != nil {
		return dst, fmt.Errorf("string table: %w", err)
	}
	table, ok := names.add(strtab, heap)
	if !ok {
		return dst, errors.New("too many string tables")
	}
	order := f.ByteOrder
	entry := func(off int) (nameOff uint32, info byte, shndx elf.SectionIndex, value, size uint64) {
		e := data[off : off+entrySize]
		if entrySize == 24 {
			return order.Uint32(e[0:]), e[4], elf.SectionIndex(order.Uint16(e[6:])), order.Uint64(e[8:]), order.Uint64(e[16:])
		}
		return order.Uint32(e[0:]), e[12], elf.SectionIndex(order.Uint16(e[14:])), uint64(order.Uint32(e[4:])), uint64(order.Uint32(e[8:]))
	}
	isCode := func(info byte, shndx elf.SectionIndex) (*elf.Section, bool) {
		var sect *elf.Section
		if int(shndx) < len(f.Sections) {
			sect = f.Sections[shndx]
		}
		switch elf.ST_TYPE(info) {
		case elf.STT_FUNC, elf.STT_GNU_IFUNC:
			return sect, true
		case elf.STT_NOTYPE:
			return sect, sect != nil && sect.Flags&elf.SHF_EXECINSTR != 0
		}
		return sect, false
	}
	// Counted first: grown by appends, the slice allocated three times
	// what it kept.
	n := 0
	for off := entrySize; off+entrySize <= len(data); off += entrySize {
		if _, info, shndx, value, _ := entry(off); value != 0 && shndx != elf.SHN_UNDEF {
			if _, ok := isCode(info, shndx); ok {
				n++
			}
		}
	}
	dst = slices.Grow(dst, n)
	// Entry 0 is the null symbol.
	for off := entrySize; off+entrySize <= len(data); off += entrySize {
		nameOff, info, shndx, value, size := entry(off)
		if value == 0 || shndx == elf.SHN_UNDEF {
			continue
		}
		name := symName{off: nameOff, table: table}
		if n := names.bytes(name); len(n) == 0 {
			continue
		} else if n[0] == 'r' {
			switch string(n) { // no allocation: compared in place
			case "runtime.pclntab":
				pcln.start = value
			case "runtime.epclntab":
				pcln.end = value
			}
		}
		sect, ok := isCode(info, shndx)
		if !ok {
			continue
		}
		sym := rawSymbol{start: value, size: size, name: name, bind: elf.ST_BIND(info)}
		if sect != nil && sect.Flags&elf.SHF_ALLOC != 0 {
			sym.sectionEnd = sect.Addr + sect.Size
		}
		dst = append(dst, sym)
	}
	return dst, nil
}

func checkSymbolTableSize(f *elf.File, s *elf.Section) error {
	if s.Size > maxSymbolTableBytes {
		return fmt.Errorf("symbol table %s is %d bytes, over the %d byte limit", s.Name, s.Size, maxSymbolTableBytes)
	}
	if int(s.Link) < len(f.Sections) {
		if strtab := f.Sections[s.Link]; strtab.Size > maxSymbolTableBytes {
			return fmt.Errorf("string table %s is %d bytes, over the %d byte limit", strtab.Name, strtab.Size, maxSymbolTableBytes)
		}
	}
	return nil
}
