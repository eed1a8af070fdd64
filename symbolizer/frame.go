package symbolizer

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ember-profiler/ember/model"
)

// A frame is one named function call at an address. A resolver returns a
// slice of them for one address: the inlined calls there, innermost first,
// ending with the function the address physically lies in.
type frame struct {
	// Function is the display name; SystemName is the name as the symbol
	// table spells it (they differ once demangling arrives, and for kernel
	// module symbols, whose Function carries the module).
	Function, SystemName string
	// File and Line are the source position, from DWARF or Go's pclntab;
	// empty and zero when only a symbol table named the frame.
	File string
	Line int64
}

// A resolver names an address of one file. elfAddr is an ELF virtual
// address (already adjusted to point inside the call for return
// addresses). ok is false when the resolver does not know the address, so
// the next resolver in the list is tried.
type resolver interface {
	resolve(elfAddr uint64) (frames []frame, ok bool)
	// sizeBytes is the approximate memory the resolver holds, for the
	// cache's budget.
	sizeBytes() int64
}

// Marker frames. Every frame the symbolizer cannot name carries one of
// these (or unknownIn), so a flame graph always says why it has a hole.
const (
	markerTruncated     = "[truncated]"
	markerVDSO          = "[vdso]"
	markerVsyscall      = "[vsyscall]"
	markerExited        = "[unknown: process exited before it was read]"
	markerNoProcess     = "[unknown: process missing from snapshot]"
	markerNoMapping     = "[unknown: address in no mapping]"
	markerUnknownKernel = "[unknown kernel address]"
	// An off-CPU wait that began with a preemption: no stacks are taken,
	// where the thread ran is in the CPU profile.
	markerPreempted = "[preempted]"
)

// userLost and kernelLost name the single frame that stands in for a stack
// the sampler lost.
func userLost(r model.LossReason) string {
	return "[user stack lost: " + r.String() + "]"
}

func kernelLost(r model.LossReason) string {
	return "[kernel stack lost: " + r.String() + "]"
}

// unnamedFrame stands in for the name of an interpreted or JIT frame whose
// unwinder could not read it: "[unknown interpreted frame]".
func unnamedFrame(kind model.FrameKind) string {
	return "[unknown " + kind.String() + " frame]"
}

// unknownIn names an address of a mapping that no resolver could name.
//
// For file-backed mappings it is "[unknown in BASENAME+0xOFF]" where OFF is
// the file offset of the runtime address (not the ELF virtual address): the
// file offset can be computed even when the file is unreadable or not ELF,
// and `objdump -d -F` or `addr2line` after converting it work from it. For
// anonymous memory it is "[unknown in [anon]]" (or the kernel's pseudo
// path, e.g. "[unknown in [heap]]").
func unknownIn(m *model.Mapping, addr uint64) string {
	switch {
	case m.Path == "":
		return "[unknown in [anon]]"
	case isPseudoPath(m.Path):
		return "[unknown in " + m.Path + "]"
	}
	// Built by hand: this runs for every unnamed frame of every batch.
	return "[unknown in " + filepath.Base(m.Path) + "+0x" + strconv.FormatUint(addr-m.Start+m.Offset, 16) + "]"
}

// isPseudoPath reports whether a mapping path is a kernel pseudo name such
// as "[heap]", "[vdso]" or "[anon:name]" rather than a file.
func isPseudoPath(path string) bool {
	return strings.HasPrefix(path, "[") && strings.HasSuffix(path, "]")
}
