package symbolizer

import (
	"bytes"
	"cmp"
	"debug/elf"
	"slices"
	"sort"
	"unsafe"
)

// elfSymbol is a function symbol of a symtabResolver: 24 bytes, its name
// left in the string table.
type elfSymbol struct {
	start, end uint64
	name       symName
}

// symtabResolver names addresses from ELF symbol tables: the function
// whose [start, end) holds the address. It knows no inlining or lines.
type symtabResolver struct {
	syms  []elfSymbol // sorted by start, one per start
	names *symbolNames
	bytes int64 // approximate heap held, computed once
}

// newSymtabResolver sorts syms, keeps one symbol per address and gives
// each its end: start+size when sized, otherwise the next symbol's start.
func newSymtabResolver(syms []rawSymbol, names *symbolNames) *symtabResolver {
	// Not a stable sort (in place, it took half of a large parse):
	// betterELFSymbol's choice among aliases does not depend on order.
	slices.SortFunc(syms, func(a, b rawSymbol) int { return cmp.Compare(a.start, b.start) })
	kept := syms[:0]
	for _, s := range syms {
		if n := len(kept); n > 0 && kept[n-1].start == s.start {
			if betterELFSymbol(s, kept[n-1], names) {
				kept[n-1] = s
			}
			continue
		}
		kept = append(kept, s)
	}
	out := make([]elfSymbol, len(kept))
	for i, s := range kept {
		end := s.start + 1 // the symbol's own address, nothing after it
		switch {
		case s.size > 0:
			end = s.start + s.size
		case i+1 < len(kept):
			end = kept[i+1].start
		case s.sectionEnd > s.start:
			end = s.sectionEnd
		}
		out[i] = elfSymbol{start: s.start, end: end, name: s.name}
	}
	bytes := int64(len(out))*int64(unsafe.Sizeof(elfSymbol{})) + names.heap + int64(unsafe.Sizeof(symbolNames{}))
	return &symtabResolver{syms: out, names: names, bytes: bytes}
}

// betterELFSymbol chooses among aliases at one address (glibc has many):
// sized over unsized, global over weak over local, fewer leading
// underscores, shorter, then alphabetical, so the choice never depends on
// table order.
func betterELFSymbol(a, b rawSymbol, names *symbolNames) bool {
	if (a.size > 0) != (b.size > 0) {
		return a.size > 0
	}
	if ra, rb := elfBindRank(a.bind), elfBindRank(b.bind); ra != rb {
		return ra > rb
	}
	an, bn := names.bytes(a.name), names.bytes(b.name)
	if ua, ub := leadingUnderscores(an), leadingUnderscores(bn); ua != ub {
		return ua < ub
	}
	if len(an) != len(bn) {
		return len(an) < len(bn)
	}
	return bytes.Compare(an, bn) < 0
}

func elfBindRank(b elf.SymBind) int {
	switch b {
	case elf.STB_GLOBAL:
		return 2
	case elf.STB_WEAK:
		return 1
	}
	return 0
}

func (r *symtabResolver) sizeBytes() int64 { return r.bytes }

func (r *symtabResolver) resolve(addr uint64) ([]frame, bool) {
	i := sort.Search(len(r.syms), func(i int) bool { return r.syms[i].start > addr }) - 1
	if i < 0 || addr >= r.syms[i].end {
		return nil, false
	}
	name := r.names.string(r.syms[i].name)
	if name == "" {
		return nil, false
	}
	return []frame{{Function: name, SystemName: name}}, true
}
