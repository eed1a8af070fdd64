package symbolizer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
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
	gofunc []byte // go:func.*, where the inline trees are
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

// newGoInline finds the inline trees of the Go binary whose pclntab is
// pcln at pclnAddr; it also returns how many bytes it holds on the heap.
func newGoInline(f elfImage, pcln []byte, pclnAddr, textStart uint64) (*goInline, int64, error) {
	if len(pcln) < 8+8*8 || binary.LittleEndian.Uint32(pcln) != pclntabMagic120 {
		return nil, 0, errors.New("not a Go 1.20+ line table")
	}
	if err := checkPclntabHeader(pcln); err != nil {
		return nil, 0, err
	}
	funcnametabOff := binary.LittleEndian.Uint64(pcln[8+3*8:])
	gofuncAddr, err := findGofunc(f, pclnAddr, pclnAddr+funcnametabOff, textStart)
	if err != nil {
		return nil, 0, err
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || gofuncAddr < s.Addr || gofuncAddr >= s.Addr+s.Size {
			continue
		}
		data, heap, err := f.sectionData(s, maxPclntabBytes*2)
		if err != nil {
			return nil, 0, err
		}
		return &goInline{gofunc: data[gofuncAddr-s.Addr:]}, heap, nil
	}
	return nil, 0, fmt.Errorf("go:func.* at %#x is in no section", gofuncAddr)
}

// findGofunc finds the moduledata (a pointer to the pclntab followed by
// the funcnametab slice) in the data sections and returns its gofunc.
func findGofunc(f elfImage, pclnAddr, funcnametabAddr, textStart uint64) (uint64, error) {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], pclnAddr)
	binary.LittleEndian.PutUint64(key[8:], funcnametabAddr)
	for _, name := range []string{".go.module", ".noptrdata", ".data", ".data.rel.ro"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Size > maxModuledataScan {
			continue
		}
		data, _, err := f.sectionData(s, maxModuledataScan)
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

// findModuleText returns the text field (runtime.text) of the moduledata
// that points to the pclntab, when one is found and holds together.
func findModuleText(f elfImage, pclnAddr, funcnametabAddr uint64) (uint64, bool) {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], pclnAddr)
	binary.LittleEndian.PutUint64(key[8:], funcnametabAddr)
	for _, name := range []string{".go.module", ".noptrdata", ".data", ".data.rel.ro"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Size > maxModuledataScan {
			continue
		}
		data, _, err := f.sectionData(s, maxModuledataScan)
		if err != nil {
			continue
		}
		if i := bytes.Index(data, key[:]); i >= 0 && i%8 == 0 && i+moduledataSize <= len(data) {
			field := func(off int) uint64 { return binary.LittleEndian.Uint64(data[i+off:]) }
			minpc, maxpc := field(moduledataMinpc), field(moduledataMinpc+8)
			text, etext := field(moduledataText), field(moduledataText+8)
			if text != 0 && text <= minpc && minpc < maxpc && maxpc <= etext {
				return text, true
			}
		}
	}
	return 0, false
}

// frames returns the inlined calls at pc, innermost first, ending with
// the function fn (named name) they were inlined into; nil when none are
// inlined there or the tables do not hold together.
func (g *goInline) frames(pc uint64, t *pclnTable, fn pclnFunc, name string) []frame {
	rec := fn.rec
	if len(rec) < funcHeaderSize {
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
	ix := t.pcvalue(pcdata, fn.entry, pc)
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
		callee := cString(t.funcnametab, nameOff)
		if callee == "" {
			return nil
		}
		file, line := t.fileLine(fn, at)
		frames = append(frames, frame{Function: callee, SystemName: callee, File: file, Line: line})
		// The parent's position is that of an instruction placed at the
		// call site.
		at = fn.entry + uint64(parentPC)
		ix = t.pcvalue(pcdata, fn.entry, at)
	}
	file, line := t.fileLine(fn, at)
	return append(frames, frame{Function: name, SystemName: name, File: file, Line: line})
}
