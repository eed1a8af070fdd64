package unwind

// Go code has no .eh_frame, but its line table (.gopclntab, kept by strip and
// -ldflags=-s) gives the stack-pointer delta at every pc, which is all an
// x86-64 unwinder needs: the CFA is SP + delta + 8, the return address right
// below it, and a function with a frame saved the caller's RBP below that
// (PUSHQ BP is its first SP change). Frameless leaves and assembly then keep
// their callers, which a frame-pointer walk skips.

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Magic numbers of the Go 1.18 and 1.20+ pclntab headers; older formats are
// walked by frame pointers.
const (
	pclntabMagic118 = 0xfffffff0
	pclntabMagic120 = 0xfffffff1
)

// Fields of a _func record (runtime/runtime2.go), Go 1.18 to 1.26.
const (
	funcNameOff    = 4
	funcPcsp       = 16
	funcFlag118    = 37 // before 1.20 added startLine
	funcFlag120    = 41
	funcFlagTop    = 1 // abi.FuncFlagTopFrame: goexit, mstart, rt0_go
	funcFlagSPSave = 2 // abi.FuncFlagSPWrite: switches stacks (systemstack, mcall, morestack)
)

// maxPclntabBytes bounds the line table read: the Go compiler's is 6 MB.
const maxPclntabBytes = 128 << 20

// maxGoRows bounds the rows of a Go table (the Go compiler's has 181,750):
// a hostile table could claim billions.
const maxGoRows = 1 << 22

var errNoPclntab = errors.New("no Go 1.18+ line table")

// goTable builds rows from a Go binary's line table, and takes the CFI of
// code outside Go's text (cgo's C code) from .eh_frame.
func goTable(f *elf.File) (*Table, error) {
	data, addr, err := pclntabData(f)
	if err != nil {
		return nil, err
	}
	t, funcs, err := pclntabRows(data, goTextStart(f, data, addr))
	if err != nil {
		return nil, err
	}
	t.Source = ".gopclntab"
	t.Rows = withCgoReturns(f, t, funcs["runtime.asmcgocall"])
	t.Rows = withStackSwitches(f, t, funcs)
	t.Rows = withSignalFrames(t, funcs)
	t.Rows = withVDSOCalls(f, t, funcs)
	eh, err := sectionFDEs(f, ".eh_frame")
	if err != nil || len(eh) == 0 {
		return t, nil
	}
	c, err := tableFromFDEs(sortFDEs(eh))
	if err != nil || len(c.Rows) == 0 {
		return t, nil
	}
	return mergeOutside(t, c), nil
}

// pclntabData returns the line table's bytes and address: its own section,
// or found by its header in the read-only data of an externally linked
// binary.
func pclntabData(f *elf.File) ([]byte, uint64, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := f.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
			data, err := readSection(s)
			return data, s.Addr, err
		}
	}
	for _, name := range []string{".data.rel.ro", ".rodata"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		data, err := readSection(s)
		if err != nil {
			return nil, 0, err
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
	return nil, 0, errNoPclntab
}

func readSection(s *elf.Section) ([]byte, error) {
	if s.Size > maxPclntabBytes || s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, fmt.Errorf("%s: %d bytes or compressed, not read", s.Name, s.Size)
	}
	data := make([]byte, s.Size)
	if _, err := s.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Name, err)
	}
	return data, nil
}

func isPclntabHeader(b []byte) bool {
	if len(b) < 8+8*8 {
		return false
	}
	magic := binary.LittleEndian.Uint32(b)
	return (magic == pclntabMagic118 || magic == pclntabMagic120) &&
		b[4] == 0 && b[5] == 0 && b[6] == 1 && b[7] == 8 // amd64: quantum 1, 8-byte pointers
}

// goTextStart is the address function offsets count from (runtime.text):
// the header's field; where the linker left it 0, the runtime's module
// data's (an externally linked cgo binary, whose .text starts with C code);
// else the start of .text (a PIE, relocated at load).
func goTextStart(f *elf.File, data []byte, tabAddr uint64) uint64 {
	if v := binary.LittleEndian.Uint64(data[8+2*8:]); v != 0 {
		return v
	}
	text := f.Section(".text")
	if text == nil {
		return 0
	}
	if v := moduleText(f, data, tabAddr); v >= text.Addr && v < text.Addr+text.Size {
		return v
	}
	return text.Addr
}

// Offsets in runtime.moduledata (Go 1.18 to 1.26): the line table, its
// function-name table, the first function's entry, and text.
const (
	moduleNamesOff = 8
	moduleMinPCOff = 160
	moduleTextOff  = 176
)

// moduleText finds runtime.firstmoduledata (in .go.module since Go 1.26,
// before in .noptrdata or .data) by its pointers to the line table and its
// name table, and returns its text field, or 0.
func moduleText(f *elf.File, data []byte, tabAddr uint64) uint64 {
	functab := binary.LittleEndian.Uint64(data[8+7*8:])
	if tabAddr == 0 || functab > uint64(len(data)-4) {
		return 0
	}
	names := tabAddr + binary.LittleEndian.Uint64(data[8+3*8:])
	first := uint64(binary.LittleEndian.Uint32(data[functab:]))
	for _, name := range []string{".go.module", ".noptrdata", ".data"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		d, err := readSection(s)
		if err != nil {
			continue
		}
		word := func(off int) uint64 { return binary.LittleEndian.Uint64(d[off:]) }
		for off := 0; off+moduleTextOff+8 <= len(d); off += 8 {
			if word(off) == tabAddr && word(off+moduleNamesOff) == names && word(off+moduleMinPCOff) == word(off+moduleTextOff)+first {
				return word(off + moduleTextOff)
			}
		}
	}
	return 0
}

// codeRange is a function's code, [start, end), and for a top frame
// (runtime.sigtramp) the SP-delta rows its END row replaced.
type codeRange struct {
	start, end uint64
	sp         []Row
}

// goFuncs are the runtime functions whose code the table's special rows
// need, by name without the ABI suffix (a wrapper has the same name).
type goFuncs map[string][]codeRange

var wantedGoFuncs = map[string]bool{
	"runtime.asmcgocall": true, "runtime.systemstack": true, "runtime.morestack": true,
	"runtime.mcall": true, "runtime.newstack": true,
	"runtime.sigtramp": true, "runtime.sigreturn__sigaction": true,
	"time.now": true, "runtime.nanotime1": true, "runtime.walltime": true,
}

// pclntabRows turns every function's pc-to-SP-delta table into rows, and
// finds the runtime functions of wantedGoFuncs. Every offset read is
// checked: the bytes come from other processes' files.
func pclntabRows(data []byte, textStart uint64) (t *Table, funcs goFuncs, err error) {
	if !isPclntabHeader(data) {
		return nil, nil, errNoPclntab
	}
	flagOff := funcFlag120
	if binary.LittleEndian.Uint32(data) == pclntabMagic118 {
		flagOff = funcFlag118
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8+i*8:]) }
	size := uint64(len(data))
	nfunc, pctabOff, functabOff := word(0), word(6), word(7)
	if pctabOff > size || functabOff > size || nfunc == 0 || nfunc > size/8 || functabOff+(2*nfunc+1)*4 > size {
		return nil, nil, fmt.Errorf("line table header: %d functions do not fit in %d bytes", nfunc, size)
	}
	pctab, functab, names := data[pctabOff:], data[functabOff:], data[min(word(3), size):]
	entry := func(i uint64) uint64 { return uint64(binary.LittleEndian.Uint32(functab[i*8:])) }
	first, end := entry(0), entry(nfunc)
	if end < first || end-first > 0xffffffff {
		return nil, nil, errors.New("line table: functions out of order")
	}
	t = &Table{Base: textStart + first, FramePointers: true}
	rows := make([]Row, 0, 4*nfunc)
	for i := uint64(0); i < nfunc; i++ {
		start, next := entry(i), entry(i+1)
		recOff := uint64(binary.LittleEndian.Uint32(functab[i*8+4:]))
		if next < start {
			return nil, nil, fmt.Errorf("line table: function %d starts before function %d", i+1, i)
		}
		if recOff+uint64(flagOff)+1 > uint64(len(functab)) {
			return nil, nil, fmt.Errorf("line table: function %d's record out of bounds", i)
		}
		rec := functab[recOff:]
		pc := uint32(start - first)
		if name := strings.TrimSuffix(cName(names, binary.LittleEndian.Uint32(rec[funcNameOff:])), ".abi0"); wantedGoFuncs[name] {
			if funcs == nil {
				funcs = goFuncs{}
			}
			fn := codeRange{start: textStart + start, end: textStart + next}
			if name == "runtime.sigtramp" {
				fn.sp = appendSPRows(nil, pctab, binary.LittleEndian.Uint32(rec[funcPcsp:]), pc, uint32(next-first))
			}
			funcs[name] = append(funcs[name], fn)
		}
		switch flag := rec[flagOff]; {
		case flag&funcFlagTop != 0:
			rows = append(rows, makeRow(pc, CFAEnd, 0, RBPSame, 0))
			continue
		case flag&funcFlagSPSave != 0:
			// SP is not what the table says once the stack switched: the
			// walk goes on by frame pointer, as it did before.
			rows = append(rows, makeRow(pc, CFAGap, 0, RBPSame, 0))
			continue
		}
		n := len(rows)
		rows = appendSPRows(rows, pctab, binary.LittleEndian.Uint32(rec[funcPcsp:]), pc, uint32(next-first))
		if len(rows) == n {
			rows = append(rows, makeRow(pc, CFAGap, 0, RBPSame, 0))
		}
		if len(rows) > maxGoRows {
			return nil, nil, fmt.Errorf("line table: more than %d rows", maxGoRows)
		}
	}
	rows = append(rows, makeRow(uint32(end-first), CFAGap, 0, RBPSame, 0))
	t.Rows = normalize(rows, t.Base)
	return t, funcs, nil
}

// appendSPRows decodes a function's SP-delta table (the runtime's pcvalue
// encoding: zig-zag value deltas and pc deltas, from value -1) into rows
// over [pc, end). A malformed table leaves what was decoded before it.
func appendSPRows(rows []Row, pctab []byte, off uint32, pc, end uint32) []Row {
	if off == 0 || uint64(off) >= uint64(len(pctab)) {
		return rows
	}
	p := pctab[off:]
	val, pushesBP, seen := int64(-1), false, false
	for first := true; pc < end && len(rows) <= maxGoRows; first = false {
		uv, n := binary.Uvarint(p)
		if n <= 0 || (uv == 0 && !first) {
			break
		}
		p = p[n:]
		if uv&1 != 0 {
			val += int64(^(uv >> 1))
		} else {
			val += int64(uv >> 1)
		}
		pcDelta, n := binary.Uvarint(p)
		if n <= 0 || pcDelta > uint64(end-pc) {
			break
		}
		p = p[n:]
		if val > 0 && !seen {
			// PUSHQ BP comes first where the function has a frame.
			seen, pushesBP = true, val == 8
		}
		rows = append(rows, spRow(pc, val, pushesBP))
		pc += uint32(pcDelta)
	}
	return rows
}

// spRow is the rule at SP + delta: the return address at CFA-8, the
// caller's RBP at CFA-16 once the prologue pushed it.
func spRow(pc uint32, delta int64, pushesBP bool) Row {
	if delta < 0 || delta > 1<<30 || delta%8 != 0 {
		return makeRow(pc, CFAUnsupported, 0, RBPUnknown, 0)
	}
	if pushesBP && delta >= 8 {
		return makeRow(pc, CFASP, int32(delta+8), RBPAtCFA, -2)
	}
	return makeRow(pc, CFASP, int32(delta+8), RBPSame, 0)
}

// mergeOutside adds to Go's table the rows of c (cgo's C code) that lie
// outside Go's text; both tables' rows become relative to the lower base.
func mergeOutside(g, c *Table) *Table {
	goStart, goEnd := g.Base, g.Base+uint64(g.Rows[len(g.Rows)-1].PC)
	base := min(g.Base, c.Base)
	last := max(goEnd, c.Base+uint64(c.Rows[len(c.Rows)-1].PC))
	if last-base > 0xffffffff {
		return g
	}
	rows := make([]Row, 0, len(g.Rows)+len(c.Rows))
	for _, r := range g.Rows {
		r.PC = uint32(g.Base + uint64(r.PC) - base)
		rows = append(rows, r)
	}
	// A C row before Go's text holds up to Go's first row; Go's last row,
	// a gap, holds up to the next C row.
	for _, r := range c.Rows {
		at := c.Base + uint64(r.PC)
		if at >= goStart && at < goEnd {
			continue
		}
		r.PC = uint32(at - base)
		rows = append(rows, r)
	}
	return &Table{Base: base, Rows: normalize(rows, base), FramePointers: true, Source: g.Source + "+.eh_frame"}
}

// cName is the NUL-terminated string at off in b, "" out of bounds.
func cName(b []byte, off uint32) string {
	if uint64(off) >= uint64(len(b)) {
		return ""
	}
	if i := bytes.IndexByte(b[off:], 0); i >= 0 {
		return string(b[off : off+uint32(i)])
	}
	return ""
}

// Instructions right after asmcgocall's calls into C (through
// asmcgocall_landingpad since Go 1.26, CALL AX before): MOVQ 8(SP), DI
// where it switched to g0, MOVQ 0(SP), SI where it did not. Go's own
// assembly, the same bytes in every build of a version.
var cgoReturnMarks = [][]byte{{0x48, 0x8b, 0x7c, 0x24, 0x08}, {0x48, 0x8b, 0x34, 0x24}}

// withCgoReturns gives the last byte of each of asmcgocall's calls into C
// (where a return address into it is looked up) the rule that finds the
// goroutine's stack again; the rest of asmcgocall keeps its row.
func withCgoReturns(f *elf.File, t *Table, cgo []codeRange) []Row {
	text := f.Section(".text")
	if text == nil {
		return t.Rows
	}
	var rows []Row
	for _, fn := range cgo {
		if fn.end <= fn.start || fn.end-fn.start > 1024 || fn.start < max(text.Addr, t.Base) || fn.end > text.Addr+text.Size {
			continue
		}
		code := make([]byte, fn.end-fn.start)
		if _, err := text.ReadAt(code, int64(fn.start-text.Addr)); err != nil {
			continue
		}
		// Since Go 1.26 it pushes BP before saving its SP.
		cfa, rbp, rbpOff := int32(8), RBPSame, int8(0)
		if code[0] == 0x55 {
			cfa, rbp, rbpOff = 16, RBPAtCFA, -2
		}
		for _, mark := range cgoReturnMarks {
			i := bytes.Index(code, mark)
			if i < 5 { // after a 5-byte CALL
				continue
			}
			at := fn.start + uint64(i) - 1
			next, _ := t.Lookup(at + 1)
			next.PC = uint32(at + 1 - t.Base)
			rows = append(rows, makeRow(uint32(at-t.Base), CFAGoCgo, cfa, rbp, rbpOff), next)
		}
	}
	if rows == nil {
		return t.Rows
	}
	return normalize(append(slices.Clone(t.Rows), rows...), t.Base)
}
