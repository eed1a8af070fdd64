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

// goInline expands calls the Go compiler inlined, from the pclntab and
// the inline trees the linker puts in go:func.*. debug/gosym reads
// neither, and in a stripped binary the address of go:func.* is only in
// the runtime's moduledata, which is found by searching the data sections
// for a pointer to the pclntab and checking the fields around it (its
// text range must be the binary's). The field offsets are Go 1.26's and
// tested only there; older runtimes that place fields differently fail
// the checks, and their frames are named without inlined calls.
type goInline struct {
	textStart   uint64
	funcnametab []byte
	pctab       []byte
	pclntable   []byte // function table, then the _func records
	nfunc       uint64
	gofunc      []byte // go:func.*, where the inline trees are
}

// Offsets of moduledata fields (Go 1.20-1.26, 64-bit), and of _func
// fields, and the indexes of the inline tree's pcdata and funcdata.
const (
	moduledataMinpc    = 160
	moduledataText     = 176
	moduledataGofunc   = 320
	moduledataEpclntab = 328
	moduledataSize     = 336
	funcNpcdata        = 28
	funcNfuncdata      = 43
	funcHeaderSize     = 44
	pcdataInlTreeIndex = 2
	funcdataInlTree    = 3
	inlinedCallSize    = 16
	maxInlineDepth     = 64
	maxModuledataScan  = 64 << 20
)

func newGoInline(f *elf.File, pcln []byte, pclnAddr, textStart uint64) (*goInline, error) {
	if len(pcln) < 8+8*8 || binary.LittleEndian.Uint32(pcln) != pclntabMagic120 {
		return nil, errors.New("not a Go 1.20+ line table")
	}
	if err := checkPclntabHeader(pcln); err != nil {
		return nil, err
	}
	funcnametabOff := binary.LittleEndian.Uint64(pcln[8+3*8:])
	gofuncAddr, err := findGofunc(f, pclnAddr, pclnAddr+funcnametabOff, textStart)
	if err != nil {
		return nil, err
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || gofuncAddr < s.Addr || gofuncAddr >= s.Addr+s.Size {
			continue
		}
		data, err := sectionData(s, maxPclntabBytes*2)
		if err != nil {
			return nil, err
		}
		return goInlineFromData(pcln, data[gofuncAddr-s.Addr:], textStart), nil
	}
	return nil, fmt.Errorf("go:func.* at %#x is in no section", gofuncAddr)
}

// goInlineFromData sets up inline expansion over a pclntab whose header
// checkPclntabHeader accepted and the bytes of go:func.*.
func goInlineFromData(pcln, gofunc []byte, textStart uint64) *goInline {
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(pcln[8+i*8:]) }
	return &goInline{
		textStart:   textStart,
		nfunc:       word(0),
		funcnametab: pcln[word(3):],
		pctab:       pcln[word(6):],
		pclntable:   pcln[word(7):],
		gofunc:      gofunc,
	}
}

// findGofunc finds the moduledata (a pointer to the pclntab followed by
// the funcnametab slice) in the data sections and returns its gofunc.
func findGofunc(f *elf.File, pclnAddr, funcnametabAddr, textStart uint64) (uint64, error) {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], pclnAddr)
	binary.LittleEndian.PutUint64(key[8:], funcnametabAddr)
	for _, name := range []string{".go.module", ".noptrdata", ".data", ".data.rel.ro"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Size > maxModuledataScan {
			continue
		}
		data, err := sectionData(s, maxModuledataScan)
		if err != nil {
			continue
		}
		for off := 0; ; {
			i := bytes.Index(data[off:], key[:])
			if i < 0 {
				break
			}
			at := off + i
			off = at + 8
			if at%8 != 0 || at+moduledataSize > len(data) {
				continue
			}
			field := func(off int) uint64 { return binary.LittleEndian.Uint64(data[at+off:]) }
			minpc, maxpc := field(moduledataMinpc), field(moduledataMinpc+8)
			text, etext := field(moduledataText), field(moduledataText+8)
			gofunc, epclntab := field(moduledataGofunc), field(moduledataEpclntab)
			if text == textStart && text <= minpc && minpc < maxpc && maxpc <= etext &&
				epclntab > pclnAddr && gofunc != 0 {
				return gofunc, nil
			}
		}
	}
	return 0, errors.New("no moduledata found")
}

// frames returns the inlined calls at pc, innermost first, ending with
// the function fn they were inlined into; nil when none are inlined
// there or the tables do not hold together.
func (g *goInline) frames(pc uint64, table *gosym.Table, fn *gosym.Func) []frame {
	if pc < g.textStart {
		return nil
	}
	rec, entry, ok := g.funcRecord(pc - g.textStart)
	if !ok || len(rec) < funcHeaderSize {
		return nil
	}
	npcdata := uint64(binary.LittleEndian.Uint32(rec[funcNpcdata:]))
	nfuncdata := uint64(rec[funcNfuncdata])
	if npcdata <= pcdataInlTreeIndex || nfuncdata <= funcdataInlTree ||
		uint64(len(rec)) < funcHeaderSize+4*(npcdata+nfuncdata) {
		return nil
	}
	pcdata := binary.LittleEndian.Uint32(rec[funcHeaderSize+4*pcdataInlTreeIndex:])
	treeOff := binary.LittleEndian.Uint32(rec[funcHeaderSize+4*npcdata+4*funcdataInlTree:])
	if pcdata == 0 || treeOff == ^uint32(0) || uint64(treeOff) >= uint64(len(g.gofunc)) {
		return nil
	}
	tree := g.gofunc[treeOff:]
	entry += g.textStart
	ix := g.pcvalue(pcdata, entry, pc)
	if ix < 0 {
		return nil
	}
	var frames []frame
	at := pc
	for depth := 0; ix >= 0; depth++ {
		if depth == maxInlineDepth || uint64(ix+1)*inlinedCallSize > uint64(len(tree)) {
			return nil
		}
		call := tree[ix*inlinedCallSize:]
		nameOff := binary.LittleEndian.Uint32(call[4:])
		parentPC := binary.LittleEndian.Uint32(call[8:])
		name := cString(g.funcnametab, nameOff)
		if name == "" {
			return nil
		}
		file, line, _ := table.PCToLine(at)
		frames = append(frames, frame{Function: name, SystemName: name, File: file, Line: int64(max(line, 0))})
		// The parent's position is that of an instruction placed at the
		// call site.
		at = entry + uint64(parentPC)
		ix = g.pcvalue(pcdata, entry, at)
	}
	file, line, _ := table.PCToLine(at)
	return append(frames, frame{Function: fn.Name, SystemName: fn.Name, File: file, Line: int64(max(line, 0))})
}

// funcRecord finds the _func record of the function holding the text
// offset off, and the function's entry offset.
func (g *goInline) funcRecord(off uint64) ([]byte, uint64, bool) {
	n := g.nfunc
	if (n+1)*8 > uint64(len(g.pclntable)) {
		return nil, 0, false
	}
	entryOff := func(i uint64) uint64 { return uint64(binary.LittleEndian.Uint32(g.pclntable[i*8:])) }
	i := uint64(sort.Search(int(n), func(i int) bool { return entryOff(uint64(i)) > off }))
	if i == 0 {
		return nil, 0, false
	}
	i--
	funcOff := uint64(binary.LittleEndian.Uint32(g.pclntable[i*8+4:]))
	if funcOff >= uint64(len(g.pclntable)) {
		return nil, 0, false
	}
	return g.pclntable[funcOff:], entryOff(i), true
}

// pcvalue decodes the pc-value table at off in pctab (as the runtime's
// pcvalue does) for targetPC in a function starting at entry; -1 when the
// table ends first or is malformed.
func (g *goInline) pcvalue(off uint32, entry, targetPC uint64) int32 {
	if uint64(off) >= uint64(len(g.pctab)) {
		return -1
	}
	p := g.pctab[off:]
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
		pc += pcdelta // pc quantum is 1 on amd64
		if targetPC < pc {
			return val
		}
	}
}

// cString returns the NUL-terminated string at off in b.
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
