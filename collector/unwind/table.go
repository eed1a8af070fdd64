// Package unwind turns the call-frame information of an ELF file (.eh_frame,
// or .debug_frame where that is all there is) into compact unwind rows that
// the sampler's eBPF unwinder can binary-search. It sits between package bpf
// (which defines the row layout the kernel side reads) and the collector,
// which loads tables into BPF maps per mapped file.
package unwind

import (
	"fmt"
	"slices"
)

// CFAKind says how to find the canonical frame address (the caller's stack
// pointer) at an address, and doubles as the row's terminal markers.
type CFAKind uint8

// Values are shared with sampler.bpf.c (enum cfa_kind).
const (
	// CFAGap: no FDE covers the address (code without CFI, padding).
	CFAGap CFAKind = iota
	// CFASP: CFA = RSP + CFAOffset.
	CFASP
	// CFAFP: CFA = RBP + CFAOffset.
	CFAFP
	// CFAPLT16: a PLT entry (16 bytes): CFA = RSP + 8, plus 8 once the
	// entry has pushed its argument (ip & 15 >= 11).
	CFAPLT11
	// CFAPLT10 is the same with the threshold at 10 (.plt.sec layouts).
	CFAPLT10
	// CFAEnd: the return address is undefined: the outermost frame
	// (_start, thread start), where a complete stack ends.
	CFAEnd
	// CFAUnsupported: a rule the unwinder cannot follow (a DWARF expression,
	// a CFA in another register, an offset out of range).
	CFAUnsupported
)

func (k CFAKind) String() string {
	switch k {
	case CFAGap:
		return "gap"
	case CFASP:
		return "sp"
	case CFAFP:
		return "fp"
	case CFAPLT11, CFAPLT10:
		return "plt"
	case CFAEnd:
		return "end"
	case CFAUnsupported:
		return "unsupported"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// RBPKind says where the caller's RBP is.
type RBPKind uint8

const (
	// RBPSame: the caller's RBP is this frame's (not saved yet, or same value).
	RBPSame RBPKind = iota
	// RBPAtCFA: saved at CFA + RBPOffset*8.
	RBPAtCFA
	// RBPUnknown: restored by a rule the unwinder cannot follow; frames
	// above that need RBP fail instead of reading garbage.
	RBPUnknown
)

// A Row holds from its PC up to the next row's. It is 8 bytes, the layout
// of struct unwind_row in sampler.bpf.c.
type Row struct {
	// PC is relative to the table's Base.
	PC        uint32
	CFAOffset int16
	// RBPOffset is in units of 8 bytes (saved registers are 8-aligned).
	RBPOffset int8
	// Kind packs CFAKind (low 4 bits) and RBPKind (high 4 bits).
	Kind uint8
}

// CFA returns how the row finds the CFA.
func (r Row) CFA() CFAKind { return CFAKind(r.Kind & 0x0f) }

// RBP returns where the row finds the caller's RBP.
func (r Row) RBP() RBPKind { return RBPKind(r.Kind >> 4) }

func makeRow(pc uint32, cfa CFAKind, cfaOff int16, rbp RBPKind, rbpOff int8) Row {
	return Row{PC: pc, CFAOffset: cfaOff, RBPOffset: rbpOff, Kind: uint8(cfa) | uint8(rbp)<<4}
}

// A Table is the unwind information of one ELF file. Runtime addresses map
// to rows by subtracting the mapping's load bias and Base.
type Table struct {
	// Base is the lowest virtual address covered; row PCs are relative to it.
	Base uint64
	// Rows are sorted by PC; each holds until the next one. The last row of
	// a covered range is a CFAGap row at the range's end.
	Rows []Row
	// FramePointers marks files whose code keeps frame pointers and whose
	// CFI is missing or not worth loading (Go); the unwinder walks RBP there.
	FramePointers bool
	// Source names the section the rows came from (".eh_frame",
	// ".debug_frame") or why there are none.
	Source string
}

// Lookup returns the row that holds a file virtual address, as the BPF
// unwinder finds it. ok is false outside the table.
func (t *Table) Lookup(vaddr uint64) (Row, bool) {
	if vaddr < t.Base || vaddr-t.Base > 0xffffffff || len(t.Rows) == 0 {
		return Row{}, false
	}
	pc := uint32(vaddr - t.Base)
	i, found := slices.BinarySearchFunc(t.Rows, pc, func(r Row, pc uint32) int {
		switch {
		case r.PC < pc:
			return -1
		case r.PC > pc:
			return 1
		}
		return 0
	})
	if !found {
		if i == 0 {
			return Row{}, false
		}
		i--
	}
	return t.Rows[i], true
}

// SizeBytes is the memory the table takes in BPF: 4 bytes a row and an
// index entry per BucketBytes of its range (see Words).
func (t *Table) SizeBytes() int {
	if len(t.Rows) == 0 {
		return 0
	}
	buckets := int(t.Rows[len(t.Rows)-1].PC>>BucketShift) + 1
	return (len(t.Rows) + buckets + 1) * 4
}
