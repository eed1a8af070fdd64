package symbolizer

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// lineTable is one compile unit's line program decoded into rows sorted
// by address, for binary search. Rows are kept packed, 8 bytes each (an
// address offset from base, and file and line in one word), unless a unit
// does not fit that, when wide keeps them as parsed.
type lineTable struct {
	base     uint64
	addrs    []uint32 // from base
	fileLine []uint32 // file<<lineBits | line; endLine marks a sequence's end
	wide     []lineRow
	// files is the unit's file table, indexed as DW_AT_call_file counts
	// (from 1 before DWARF 5, from 0 since; debug/dwarf keeps the index).
	files []string
}

// lineRow says that code from addr up to the next row's address comes
// from files[file]:line; line -1 marks the end of a sequence.
type lineRow struct {
	addr uint64
	file int32
	line int32
}

// A packed row's line takes lineBits bits, its file the rest; the largest
// line value marks the end of a sequence.
const (
	lineBits = 20
	endLine  = 1<<lineBits - 1
	maxFiles = 1 << (32 - lineBits)
)

// maxLineRows bounds one unit's decoded rows (16 bytes each).
const maxLineRows = 16 << 20

// parseLineTable decodes the line program of a compile unit, after
// checking its header: a line program header is trusted by the parsers
// that read it (a header claiming 2^34 directories made delve's allocate
// 256 GiB, a fatal error recover cannot catch), so counts and lengths are
// checked against the bytes that hold them first.
//
// The decoding itself is debug/dwarf's LineReader: delve's line package
// (github.com/go-delve/delve/pkg/dwarf/line) imports delve's logflags and
// through it golang.org/x/telemetry, which this module's go.sum does not
// hold.
func parseLineTable(d *dwarf.Data, cu *dwarf.Entry, lineSection []byte, off int64) (lt *lineTable, err error) {
	if _, err := checkLineHeader(lineSection, off); err != nil {
		return nil, fmt.Errorf("line table at %#x: %w", off, err)
	}
	defer func() {
		if p := recover(); p != nil {
			lt, err = nil, fmt.Errorf("line table at %#x: panic in parser: %v", off, p)
		}
	}()
	lr, err := d.LineReader(cu)
	if err != nil || lr == nil {
		return nil, fmt.Errorf("line table at %#x: %v", off, err)
	}
	lt = &lineTable{}
	index := map[*dwarf.LineFile]int32{}
	for i, f := range lr.Files() {
		for len(lt.files) < i {
			lt.files = append(lt.files, "")
		}
		name := ""
		if f != nil {
			name = f.Name
			index[f] = int32(i)
		}
		lt.files = append(lt.files, name)
	}
	var e dwarf.LineEntry
	var rows []lineRow
	for len(rows) < maxLineRows {
		if err := lr.Next(&e); err != nil {
			if err == io.EOF {
				break
			}
			return nil, fmt.Errorf("line table at %#x: %w", off, err)
		}
		row := lineRow{addr: e.Address, line: int32(e.Line), file: -1}
		if e.EndSequence {
			row.line = -1
		} else if e.File != nil {
			i, ok := index[e.File]
			if !ok { // defined by DW_LNE_define_file in the program
				i = int32(len(lt.files))
				index[e.File] = i
				lt.files = append(lt.files, e.File.Name)
			}
			row.file = i
		}
		rows = append(rows, row)
	}
	// Sequences may come in any order; at one address an end comes before
	// the start of the next sequence.
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.addr != b.addr {
			return a.addr < b.addr
		}
		return a.line == -1 && b.line != -1
	})
	lt.pack(rows)
	return lt, nil
}

// pack keeps of sorted rows those a lookup can land on: the last row at
// an address, and a row only where the file or line changes (a line
// program has a row per column and statement boundary). It packs them
// when every one fits.
func (lt *lineTable) pack(rows []lineRow) {
	kept := rows[:0]
	for i, r := range rows {
		if i+1 < len(rows) && rows[i+1].addr == r.addr {
			continue // only the last row at an address is ever found
		}
		if n := len(kept); n > 0 && r.line != -1 && kept[n-1].line == r.line && kept[n-1].file == r.file {
			continue // the row before says the same
		}
		kept = append(kept, r)
	}
	fits := len(kept) > 0 && kept[len(kept)-1].addr-kept[0].addr <= 1<<32-1
	for i := 0; fits && i < len(kept); i++ {
		r := kept[i]
		fits = r.file >= -1 && r.file < maxFiles-1 && r.line >= -1 && r.line < endLine
	}
	if !fits {
		// Exactly sized: append's spare capacity was up to half the table.
		lt.wide = append(make([]lineRow, 0, len(kept)), kept...)
		return
	}
	lt.base = kept[0].addr
	lt.addrs = make([]uint32, len(kept))
	lt.fileLine = make([]uint32, len(kept))
	for i, r := range kept {
		lt.addrs[i] = uint32(r.addr - lt.base)
		line := uint32(r.line)
		if r.line == -1 {
			line = endLine
		}
		// No file (-1) shifts to maxFiles-1, which lookup reads back as -1.
		lt.fileLine[i] = uint32(r.file)<<lineBits | line
	}
}

// lookup returns the file and line of pc: the last row at or before it,
// unless a sequence ended in between.
func (lt *lineTable) lookup(pc uint64) (string, int64, bool) {
	if lt.wide != nil {
		i := sort.Search(len(lt.wide), func(i int) bool { return lt.wide[i].addr > pc }) - 1
		if i < 0 || lt.wide[i].line < 0 {
			return "", 0, false
		}
		return lt.file(int64(lt.wide[i].file)), int64(lt.wide[i].line), true
	}
	if len(lt.addrs) == 0 || pc < lt.base {
		return "", 0, false
	}
	i := len(lt.addrs) - 1 // past every row
	if off := pc - lt.base; off <= 1<<32-1 {
		i = sort.Search(len(lt.addrs), func(i int) bool { return uint64(lt.addrs[i]) > off }) - 1
	}
	fl := lt.fileLine[i]
	line, file := int64(fl&endLine), int64(fl>>lineBits)
	if line == endLine {
		return "", 0, false
	}
	if file == maxFiles-1 {
		file = -1
	}
	return lt.file(file), line, true
}

func (lt *lineTable) file(i int64) string {
	if lt == nil || i < 0 || i >= int64(len(lt.files)) {
		return ""
	}
	return lt.files[i]
}

func (lt *lineTable) sizeBytes() int64 {
	n := int64(len(lt.wide))*16 + int64(len(lt.addrs))*8 + 64
	for _, f := range lt.files {
		n += int64(len(f)) + 16
	}
	return n
}

var errLineHeader = errors.New("malformed line table header")

// checkLineHeader validates the line program header at off and returns the
// bytes of that one unit, so the parser cannot read past it.
func checkLineHeader(data []byte, off int64) ([]byte, error) {
	if off < 0 || off > int64(len(data)) || int64(len(data))-off < 4 {
		return nil, fmt.Errorf("%w: offset out of range", errLineHeader)
	}
	b := &lineBuf{data: data[off:]}
	unitLength := uint64(b.u32())
	if unitLength >= 0xfffffff0 {
		return nil, fmt.Errorf("%w: 64-bit DWARF or reserved length %#x", errLineHeader, unitLength)
	}
	if unitLength > uint64(len(b.data)-4) {
		return nil, fmt.Errorf("%w: unit of %d bytes runs past the section", errLineHeader, unitLength)
	}
	unit := b.data[:4+unitLength]
	b = &lineBuf{data: unit, pos: 4}
	version := b.u16()
	if version < 2 || version > 5 {
		return nil, fmt.Errorf("%w: version %d", errLineHeader, version)
	}
	if version >= 5 {
		addrSize, segSize := b.u8(), b.u8()
		if addrSize != 8 && addrSize != 4 || segSize != 0 {
			return nil, fmt.Errorf("%w: address size %d, segment selector size %d", errLineHeader, addrSize, segSize)
		}
	}
	headerLength := uint64(b.u32())
	if b.err || headerLength > uint64(len(unit)-b.pos) {
		return nil, fmt.Errorf("%w: header length %d", errLineHeader, headerLength)
	}
	headerEnd := b.pos + int(headerLength)
	minInst := b.u8()
	if version >= 4 {
		b.u8() // maximum_operations_per_instruction
	}
	b.u8() // default_is_stmt
	b.u8() // line_base
	lineRange, opcodeBase := b.u8(), b.u8()
	if minInst == 0 || lineRange == 0 || opcodeBase == 0 {
		return nil, fmt.Errorf("%w: instruction length %d, line range %d, opcode base %d", errLineHeader, minInst, lineRange, opcodeBase)
	}
	b.skip(int(opcodeBase) - 1)
	if b.err || b.pos > headerEnd {
		return nil, fmt.Errorf("%w: standard opcode lengths past the header", errLineHeader)
	}
	if version < 5 {
		// Directory and file lists end with an empty entry; the parser stops
		// at the unit's end.
		return unit, nil
	}
	b.data = unit[:headerEnd] // entry tables must fit in the header
	for _, table := range []string{"directory", "file name"} {
		nformats := int(b.u8())
		forms := make([]uint64, nformats)
		for i := range forms {
			b.uleb() // content type
			forms[i] = b.uleb()
		}
		count := b.uleb()
		if b.err {
			return nil, fmt.Errorf("%w: %s table truncated", errLineHeader, table)
		}
		// Every entry takes at least a byte per format, so a count larger
		// than the bytes left is a lie.
		if count > uint64(len(b.data)-b.pos) || (count > 0 && nformats == 0) {
			return nil, fmt.Errorf("%w: %d %s entries in %d bytes", errLineHeader, count, table, len(b.data)-b.pos)
		}
		for range count {
			for _, form := range forms {
				if !b.skipForm(form) {
					return nil, fmt.Errorf("%w: %s entry with form %#x", errLineHeader, table, form)
				}
			}
		}
		if b.err {
			return nil, fmt.Errorf("%w: %s table truncated", errLineHeader, table)
		}
	}
	return unit, nil
}

// lineBuf reads little-endian fields, recording running off the end
// instead of panicking.
type lineBuf struct {
	data []byte
	pos  int
	err  bool
}

func (b *lineBuf) next(n int) []byte {
	if b.err || n < 0 || n > len(b.data)-b.pos {
		b.err = true
		return make([]byte, max(n, 0))
	}
	p := b.data[b.pos : b.pos+n]
	b.pos += n
	return p
}

func (b *lineBuf) skip(n int) { b.next(n) }
func (b *lineBuf) u8() uint8  { return b.next(1)[0] }
func (b *lineBuf) u16() uint16 {
	return binary.LittleEndian.Uint16(b.next(2))
}
func (b *lineBuf) u32() uint32 {
	return binary.LittleEndian.Uint32(b.next(4))
}

func (b *lineBuf) uleb() uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		c := b.u8()
		if b.err {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

// skipForm skips one attribute value of a form allowed in DWARF 5 line
// table headers; false for any other form.
func (b *lineBuf) skipForm(form uint64) bool {
	switch form {
	case 0x08: // DW_FORM_string
		for !b.err && b.u8() != 0 {
		}
	case 0x0e, 0x1f, 0x06, 0x17: // strp, line_strp, data4, sec_offset (32-bit DWARF)
		b.skip(4)
	case 0x0b, 0x25: // data1, strx1
		b.skip(1)
	case 0x05, 0x26: // data2, strx2
		b.skip(2)
	case 0x27: // strx3
		b.skip(3)
	case 0x28: // strx4
		b.skip(4)
	case 0x07: // data8
		b.skip(8)
	case 0x1e: // data16 (MD5)
		b.skip(16)
	case 0x0f, 0x1a: // udata, strx
		b.uleb()
	case 0x09: // block
		n := b.uleb()
		if n > uint64(len(b.data)) {
			return false
		}
		b.skip(int(n))
	default:
		return false
	}
	return !b.err
}
