package symbolizer

import (
	"cmp"
	"debug/elf"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// elfSymbol is a function symbol from .symtab or .dynsym.
type elfSymbol struct {
	start, size uint64
	name        string
	bind        elf.SymBind
	// sectionEnd bounds an unsized symbol that is the last of its file; 0
	// when unknown.
	sectionEnd uint64
	// end is computed by newSymtabResolver: start+size when sized,
	// otherwise the next symbol's start.
	end uint64
}

// symtabResolver names addresses from ELF symbol tables: the function
// whose [start, end) holds the address. It knows no inlining or lines.
type symtabResolver struct {
	syms  []elfSymbol // sorted by start, one per start
	bytes int64       // approximate memory held, computed once
}

func newSymtabResolver(syms []elfSymbol) *symtabResolver {
	slices.SortStableFunc(syms, func(a, b elfSymbol) int { return cmp.Compare(a.start, b.start) })
	out := syms[:0]
	for _, s := range syms {
		if n := len(out); n > 0 && out[n-1].start == s.start {
			if betterELFSymbol(s, out[n-1]) {
				out[n-1] = s
			}
			continue
		}
		out = append(out, s)
	}
	for i := range out {
		s := &out[i]
		switch {
		case s.size > 0:
			s.end = s.start + s.size
		case i+1 < len(out):
			s.end = out[i+1].start
		case s.sectionEnd > s.start:
			s.end = s.sectionEnd
		default:
			s.end = s.start + 1 // the symbol's own address, nothing after it
		}
	}
	r := &symtabResolver{syms: out, bytes: int64(cap(out)) * int64(unsafe.Sizeof(elfSymbol{}))}
	for _, s := range out {
		r.bytes += int64(len(s.name))
	}
	return r
}

// betterELFSymbol chooses among aliases at one address (glibc has many):
// sized over unsized, global over weak over local, fewer leading
// underscores, shorter, then alphabetical, so the choice never depends on
// table order.
func betterELFSymbol(a, b elfSymbol) bool {
	if (a.size > 0) != (b.size > 0) {
		return a.size > 0
	}
	if ra, rb := elfBindRank(a.bind), elfBindRank(b.bind); ra != rb {
		return ra > rb
	}
	if ua, ub := leadingUnderscores(a.name), leadingUnderscores(b.name); ua != ub {
		return ua < ub
	}
	if len(a.name) != len(b.name) {
		return len(a.name) < len(b.name)
	}
	return strings.Compare(a.name, b.name) < 0
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
	name := r.syms[i].name
	return []frame{{Function: name, SystemName: name}}, true
}
