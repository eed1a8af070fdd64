package unwind

// Go's runtime runs part of its work on the thread's own stack, g0's:
// runtime.systemstack calls a function there and comes back, runtime.morestack
// calls newstack there to grow the goroutine's stack, runtime.mcall calls
// the scheduler there. The frames above the switch are on the goroutine's
// stack, where the goroutine stopped, which the thread's current g records:
// g.m.curg.sched (sp, pc, bp). These rows mark where the g0 frames return
// into the switch, and carry the offsets the BPF walk needs to read that.

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/ember-profiler/ember/bpf"
)

// goLayout holds the offsets of the runtime's structures the walk reads, in
// bytes: g.m, g.sched, m.curg, gobuf.bp, and g's own slot from the thread
// pointer (FS).
type goLayout struct {
	gM, gSched, mCurg, gobufBP, tlsG int
}

// Offsets by Go version where the binary has no DWARF (the Go toolchain's own
// tools have none). g.m and g.sched have not moved since Go 1.4; gobuf lost
// its ret field in Go 1.25, which moved gobuf.bp and, through m.morebuf,
// m.curg. Read from the runtime's sources of each release (runtime2.go),
// and checked against go1.26's DWARF (TestGoLayoutDWARF).
var goLayouts = []struct {
	from, to int // minor versions, inclusive
	layout   goLayout
}{
	{20, 24, goLayout{gM: 48, gSched: 56, mCurg: 192, gobufBP: 48}},
	{25, 26, goLayout{gM: 48, gSched: 56, mCurg: 184, gobufBP: 40}},
}

// Fields of a packed switch rule's CFA offset (sampler/types.h).
const (
	goCurgShift  = int(bpf.SamplerUnwindLayoutGO_CURG_SHIFT)
	goBPShift    = int(bpf.SamplerUnwindLayoutGO_GOBUF_BP_SHIFT)
	goTLSShift   = int(bpf.SamplerUnwindLayoutGO_TLS_G_SHIFT)
	goGMShift    = int(bpf.SamplerUnwindLayoutGO_G_M_SHIFT)
	goSchedShift = int(bpf.SamplerUnwindLayoutGO_G_SCHED_SHIFT)
)

// pack returns a switch rule's CFA offset: the switching function's own
// CFA offset from the goroutine's SP in the low 8 bits, then the offsets in
// units of 8 bytes; ok is false when one does not fit.
func (l goLayout) pack(frame int) (int32, bool) {
	fits := func(v, bits int) bool { return v >= 0 && v%8 == 0 && v/8 < 1<<bits }
	if frame < 0 || frame > 255 || !fits(l.mCurg, goBPShift-goCurgShift) || !fits(l.gobufBP, goTLSShift-goBPShift) ||
		!fits(-l.tlsG, goGMShift-goTLSShift) || l.tlsG == 0 || !fits(l.gM, goSchedShift-goGMShift) || !fits(l.gSched, 32-goSchedShift) {
		return 0, false
	}
	v := uint32(frame) | uint32(l.mCurg/8)<<goCurgShift | uint32(l.gobufBP/8)<<goBPShift |
		uint32(-l.tlsG/8)<<goTLSShift | uint32(l.gM/8)<<goGMShift | uint32(l.gSched/8)<<goSchedShift
	return int32(v), true
}

// Calls in the switches' code: CALL DI after MOVQ 0(DI), DI (systemstack's
// call of fn, mcall's before Go 1.21), and CALL R12 (mcall's since).
var (
	callFnDI  = []byte{0x48, 0x8b, 0x3f, 0xff, 0xd7}
	callFnR12 = []byte{0x4c, 0x8b, 0x22, 0x41, 0xff, 0xd4}
)

// withStackSwitches gives the last byte of each switch's call on g0 (where a
// return address into it is looked up) its rule: systemstack and morestack
// go back to the goroutine's stack, mcall ends the walk. mcall's fn never
// returns and has left the goroutine (dropg): what runs under it is the
// scheduler's, which Go's own profiler shows ending there too.
func withStackSwitches(f *elf.File, t *Table, funcs goFuncs) []Row {
	text := f.Section(".text")
	if text == nil || len(funcs["runtime.systemstack"]) == 0 {
		return t.Rows
	}
	code := func(fn codeRange) []byte { return funcCode(text, t, fn) }
	var rows []Row
	add := func(at uint64, r Row) {
		next, _ := t.Lookup(at + 1)
		next.PC = uint32(at + 1 - t.Base)
		r.PC = uint32(at - t.Base)
		rows = append(rows, r, next)
	}
	for _, fn := range funcs["runtime.mcall"] {
		b := code(fn)
		for _, mark := range [][]byte{callFnR12, callFnDI} {
			if i := bytes.Index(b, mark); i >= 0 {
				add(fn.start+uint64(i+len(mark)-1), makeRow(0, CFAEnd, 0, RBPSame, 0))
				break
			}
		}
	}
	layout, ok := goRuntimeLayout(f)
	if !ok {
		return normalize(append(append([]Row(nil), t.Rows...), rows...), t.Base)
	}
	for _, fn := range funcs["runtime.systemstack"] {
		b := code(fn)
		i := bytes.Index(b, callFnDI)
		tls, tlsOK := fsLoad(b)
		if i < 0 || !tlsOK {
			continue
		}
		l := layout
		l.tlsG = tls
		// Since Go 1.21 or so the assembler gives it a frame pointer.
		frame, rbp, rbpOff := 8, RBPSame, int8(0)
		if len(b) > 0 && b[0] == 0x55 {
			frame, rbp, rbpOff = 16, RBPAtCFA, -2
		}
		if off, ok := l.pack(frame); ok {
			add(fn.start+uint64(i+len(callFnDI)-1), makeRow(0, CFAGoSystemstack, off, rbp, rbpOff))
		}
	}
	for _, fn := range funcs["runtime.morestack"] {
		b := code(fn)
		tls, tlsOK := fsLoad(b)
		l := layout
		l.tlsG = tls
		off, ok := l.pack(0)
		if !tlsOK || !ok {
			continue
		}
		for _, target := range funcs["runtime.newstack"] {
			if i := callTo(b, fn.start, target.start); i >= 0 {
				add(fn.start+uint64(i+4), makeRow(0, CFAGoMorestack, off, RBPSame, 0))
			}
		}
	}
	if rows == nil {
		return t.Rows
	}
	return normalize(append(append([]Row(nil), t.Rows...), rows...), t.Base)
}

// funcCode is the machine code of fn, a runtime function of at most 1 KiB
// in text; nil if it is not there.
func funcCode(text *elf.Section, t *Table, fn codeRange) []byte {
	if fn.end <= fn.start || fn.end-fn.start > 1024 || fn.start < max(text.Addr, t.Base) || fn.end > text.Addr+text.Size {
		return nil
	}
	b := make([]byte, fn.end-fn.start)
	if _, err := text.ReadAt(b, int64(fn.start-text.Addr)); err != nil {
		return nil
	}
	return b
}

// Go's vDSO callers: push %rbp; mov %rsp,%rbp first, pop %rbp; ret once.
var (
	fpPrologue = []byte{0x55, 0x48, 0x89, 0xe5}
	fpEpilogue = []byte{0x5d, 0xc3}
)

// withVDSOCalls walks Go's vDSO callers (time.now, runtime.nanotime1) by
// their frame pointer: they move SP to the g0 stack for the call, so
// pclntab gives them no SP delta (they write SP), and the goroutine's
// stack, where their frame is, may lie below g0's. Between their prologue
// and epilogue, CFA = RBP + 16 with RBP saved below the return address.
func withVDSOCalls(f *elf.File, t *Table, funcs goFuncs) []Row {
	text := f.Section(".text")
	if text == nil {
		return t.Rows
	}
	var rows []Row
	for _, name := range []string{"time.now", "runtime.nanotime1", "runtime.walltime"} {
		for _, fn := range funcs[name] {
			b := funcCode(text, t, fn)
			end := bytes.Index(b, fpEpilogue)
			if !bytes.HasPrefix(b, fpPrologue) || end < 0 || bytes.LastIndex(b, fpEpilogue) != end {
				continue
			}
			at := fn.start + uint64(len(fpPrologue))
			next, _ := t.Lookup(fn.start + uint64(end))
			next.PC = uint32(fn.start + uint64(end) - t.Base)
			rows = append(rows, makeRow(uint32(at-t.Base), CFAFPSwitched, 16, RBPAtCFA, -2), next)
		}
	}
	if rows == nil {
		return t.Rows
	}
	return normalize(append(append([]Row(nil), t.Rows...), rows...), t.Base)
}

// withSignalFrames crosses the signal stack: Go's handler runs on the
// thread's gsignal stack, entered at runtime.sigtramp, and the interrupted
// registers are in the kernel's signal frame, whose ucontext is where
// sigtramp's CFA is (the restorer's address right below it, the return
// address the kernel gave sigtramp). Every row of sigtramp gets a rule that
// reads them there, instead of ending the walk; so does the restorer
// itself, runtime.sigreturn__sigaction, which runs with SP at the ucontext.
func withSignalFrames(t *Table, funcs goFuncs) []Row {
	var rows []Row
	for _, fn := range funcs["runtime.sigtramp"] {
		// Wherever it is, sigtramp's CFA is its entry SP + 8, the ucontext.
		if len(fn.sp) == 0 || fn.start < t.Base || fn.end-fn.start > 1024 {
			continue
		}
		for _, r := range fn.sp {
			if r.CFA() != CFASP {
				return t.Rows // a delta it cannot follow: leave it a top frame
			}
			rows = append(rows, makeRow(r.PC, CFASigframe, r.CFAOffset, RBPSame, 0))
		}
		next, _ := t.Lookup(fn.end)
		next.PC = uint32(fn.end - t.Base)
		rows = append(rows, next)
	}
	for _, fn := range funcs["runtime.sigreturn__sigaction"] {
		if fn.start < t.Base || fn.end <= fn.start || fn.end-fn.start > 64 {
			continue
		}
		next, _ := t.Lookup(fn.end)
		next.PC = uint32(fn.end - t.Base)
		rows = append(rows, makeRow(uint32(fn.start-t.Base), CFASigframe, 0, RBPSame, 0), next)
	}
	if rows == nil {
		return t.Rows
	}
	return normalize(append(append([]Row(nil), t.Rows...), rows...), t.Base)
}

// fsLoad finds the switch's read of g from thread-local storage, MOVQ
// FS:disp32, reg, and returns disp32: where g lies from the thread pointer
// (-8 in every internally linked binary).
func fsLoad(b []byte) (int, bool) {
	for i := 0; i+9 <= len(b); i++ {
		if b[i] == 0x64 && b[i+1]&0xfb == 0x48 && b[i+2] == 0x8b && b[i+3]&0xc7 == 0x04 && b[i+4] == 0x25 {
			return int(int32(binary.LittleEndian.Uint32(b[i+5:]))), true
		}
	}
	return 0, false
}

// callTo returns the offset of the first CALL rel32 in b (code at start)
// to target, or -1.
func callTo(b []byte, start, target uint64) int {
	for i := 0; i+5 <= len(b); i++ {
		if b[i] == 0xe8 && start+uint64(i+5)+uint64(int64(int32(binary.LittleEndian.Uint32(b[i+1:])))) == target {
			return i
		}
	}
	return -1
}

// goRuntimeLayout takes the offsets from the binary's DWARF where it has
// some, else from goLayouts by the version in its build information.
func goRuntimeLayout(f *elf.File) (goLayout, bool) {
	if l, ok := dwarfLayout(f); ok {
		return l, true
	}
	minor, ok := goMinorVersion(f)
	if !ok {
		return goLayout{}, false
	}
	for _, v := range goLayouts {
		if minor >= v.from && minor <= v.to {
			return v.layout, true
		}
	}
	return goLayout{}, false
}

// dwarfLayout reads the offsets from the runtime's types in DWARF.
func dwarfLayout(f *elf.File) (goLayout, bool) {
	if f.Section(".debug_info") == nil && f.Section(".zdebug_info") == nil {
		return goLayout{}, false
	}
	d, err := f.DWARF()
	if err != nil {
		return goLayout{}, false
	}
	want := map[string]map[string]int{
		"runtime.g": {"m": -1, "sched": -1}, "runtime.m": {"curg": -1}, "runtime.gobuf": {"bp": -1},
	}
	found := 0
	r := d.Reader()
	for found < len(want) {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		fields, ok := want[name]
		if e.Tag != dwarf.TagStructType || !ok || !e.Children {
			r.SkipChildren()
			continue
		}
		for {
			m, err := r.Next()
			if err != nil || m == nil || m.Tag == 0 {
				break
			}
			n, _ := m.Val(dwarf.AttrName).(string)
			if off, ok := m.Val(dwarf.AttrDataMemberLoc).(int64); ok {
				if _, wanted := fields[n]; wanted {
					fields[n] = int(off)
				}
			}
			if m.Children {
				r.SkipChildren()
			}
		}
		found++
	}
	l := goLayout{gM: want["runtime.g"]["m"], gSched: want["runtime.g"]["sched"], mCurg: want["runtime.m"]["curg"], gobufBP: want["runtime.gobuf"]["bp"]}
	return l, l.gM >= 0 && l.gSched >= 0 && l.mCurg >= 0 && l.gobufBP >= 0
}

// goMinorVersion reads the Go version the binary was built with from its
// build information (Go 1.18+ keeps the string inline after the header).
func goMinorVersion(f *elf.File) (int, bool) {
	s := f.Section(".go.buildinfo")
	if s == nil || s.Type == elf.SHT_NOBITS || s.Size < 64 {
		return 0, false
	}
	b := make([]byte, min(s.Size, 4096))
	if _, err := s.ReadAt(b, 0); err != nil || !bytes.HasPrefix(b, []byte("\xff Go buildinf:")) || b[15]&2 == 0 {
		return 0, false
	}
	n, k := binary.Uvarint(b[32:])
	if k <= 0 || n > uint64(len(b)-32-k) {
		return 0, false
	}
	v := string(b[32+k : 32+k+int(n)])
	// go1.26.8, go1.25rc1, go1.24-X:...
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	minor, err := strconv.Atoi(rest[:end])
	return minor, err == nil
}
