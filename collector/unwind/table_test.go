package unwind

import (
	"debug/elf"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// systemLibc is Debian's libc, built without frame pointers: the main
// reason this package exists.
const systemLibc = "/usr/lib/x86_64-linux-gnu/libc.so.6"

// TestRowsMatchDelve checks the compact rows against delve's own CFA
// interpreter at random addresses of every FDE.
func TestRowsMatchDelve(t *testing.T) {
	for _, path := range []string{systemLibc, "../../testdata/unwind/qsort-nofp", "../../testdata/unwind/chain-nofp", "../../testdata/unwind/sort-cpp", "../../testdata/unwind/sort-rust", "../../testdata/unwind/bigframe"} {
		t.Run(path, func(t *testing.T) {
			f, err := elf.Open(path)
			if err != nil {
				t.Skipf("open: %v", err)
			}
			defer f.Close()
			tbl, err := buildFromELF(f)
			if err != nil {
				t.Fatal(err)
			}
			s := f.Section(".eh_frame")
			data, err := s.Data()
			if err != nil {
				t.Fatal(err)
			}
			fdes, err := frame.Parse(data, binary.LittleEndian, 0, 8, s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			checked := 0
			for _, fde := range fdes {
				for range 4 {
					pc := fde.Begin() + rng.Uint64N(fde.End()-fde.Begin())
					ctx, err := fde.EstablishFrame(pc)
					if err != nil {
						continue
					}
					row, ok := tbl.Lookup(pc)
					if !ok {
						t.Fatalf("%#x: no row", pc)
					}
					checkRow(t, pc, row, ctx)
					checked++
				}
			}
			if checked < 20 {
				t.Fatalf("only %d addresses checked", checked)
			}
		})
	}
}

func checkRow(t *testing.T, pc uint64, row Row, ctx *frame.FrameContext) {
	t.Helper()
	if ra, ok := ctx.Regs[regRA]; ok && ra.Rule == frame.RuleUndefined {
		if row.CFA() != CFAEnd {
			t.Fatalf("%#x: want end row, got %v", pc, row.CFA())
		}
		return
	}
	switch row.CFA() {
	case CFASP, CFAFP:
		wantReg := uint64(regRSP)
		if row.CFA() == CFAFP {
			wantReg = regRBP
		}
		if ctx.CFA.Rule != frame.RuleCFA || ctx.CFA.Reg != wantReg || ctx.CFA.Offset != int64(row.CFAOffset) {
			t.Fatalf("%#x: row %v%+d, delve CFA %+v", pc, row.CFA(), row.CFAOffset, ctx.CFA)
		}
	case CFAUnsupported, CFAPLT10, CFAPLT11:
		return
	default:
		t.Fatalf("%#x: unexpected row kind %v (delve CFA %+v)", pc, row.CFA(), ctx.CFA)
	}
	rbp, saved := ctx.Regs[regRBP]
	switch row.RBP() {
	case RBPAtCFA:
		if !saved || rbp.Rule != frame.RuleOffset || rbp.Offset != int64(row.RBPOffset)*8 {
			t.Fatalf("%#x: rbp at cfa%+d, delve %+v", pc, int(row.RBPOffset)*8, rbp)
		}
	case RBPSame:
		if saved && rbp.Rule == frame.RuleOffset {
			t.Fatalf("%#x: rbp same, delve %+v", pc, rbp)
		}
	}
}

// A frame of 600,000 bytes keeps its CFA offset: it once took 16 bits.
func TestBigFrameOffset(t *testing.T) {
	f, err := elf.Open("../../testdata/unwind/bigframe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := buildFromELF(f)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != "big" {
			continue
		}
		var most int32
		for pc := s.Value; pc < s.Value+s.Size; pc++ {
			if r, ok := tbl.Lookup(pc); ok && r.CFA() == CFASP {
				most = max(most, r.CFAOffset)
			}
		}
		if most <= 600000 {
			t.Fatalf("largest CFA offset in big is rsp%+d, want more than 600000", most)
		}
		return
	}
	t.Fatal("no symbol big")
}

// Go code unwinds by .gopclntab's SP deltas, stripped or not: a frameless
// leaf returns at SP, a function with a frame saved RBP below its return
// address, goexit ends the stack and systemstack (which switches stacks)
// has no row, so the walk tries its frame pointer.
func TestGoRowsFromLineTable(t *testing.T) {
	syms := goSymbols(t, "../../testdata/unwind/go-frameless")
	var want []Row
	for _, path := range []string{"../../testdata/unwind/go-frameless", "../../testdata/unwind/go-frameless-stripped"} {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := buildFromELF(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !tbl.FramePointers || tbl.Source != ".gopclntab" || len(tbl.Rows) < 1000 {
			t.Fatalf("%s: FramePointers=%v source %q, %d rows", path, tbl.FramePointers, tbl.Source, len(tbl.Rows))
		}
		at := func(name string, off uint64) Row {
			r, ok := tbl.Lookup(syms[name].Value + off)
			if !ok {
				t.Fatalf("%s: no row for %s%+d", path, name, off)
			}
			return r
		}
		for off := uint64(0); off < syms["main.spin"].Size; off++ {
			if r := at("main.spin", off); r.CFA() != CFASP || r.CFAOffset != 8 || r.RBP() != RBPSame {
				t.Fatalf("main.spin%+d: %v%+d rbp %v, want a frameless leaf's sp+8", off, r.CFA(), r.CFAOffset, r.RBP())
			}
		}
		if r := at("main.goAlpha", 0); r.CFA() != CFASP || r.CFAOffset != 8 {
			t.Errorf("main.goAlpha at entry: %v%+d", r.CFA(), r.CFAOffset)
		}
		framed := false
		for off := uint64(0); off < syms["main.goAlpha"].Size; off++ {
			r := at("main.goAlpha", off)
			if r.CFAOffset > 16 && r.RBP() == RBPAtCFA && r.RBPOffset == -2 {
				framed = true
			}
		}
		if !framed {
			t.Errorf("main.goAlpha: no row with its frame and RBP at CFA-16")
		}
		if r := at("runtime.goexit.abi0", 1); r.CFA() != CFAEnd {
			t.Errorf("runtime.goexit: %v, want end", r.CFA())
		}
		if r := at("runtime.systemstack.abi0", 4); r.CFA() != CFAGap {
			t.Errorf("runtime.systemstack: %v, want no row", r.CFA())
		}
		if want == nil {
			want = tbl.Rows
		} else if !slices.Equal(want, tbl.Rows) {
			t.Errorf("stripped binary: rows differ")
		}
		t.Logf("%s: %d rows, %d bytes in BPF", path, len(tbl.Rows), tbl.SizeBytes())
	}
}

// An externally linked cgo binary: .text starts with C code, the line
// table's offsets count from runtime.text (found in the module data, the
// header leaves it 0), and the C code keeps its .eh_frame rows.
func TestGoRowsCgo(t *testing.T) {
	const path = "../../testdata/unwind/go-cgo"
	syms := goSymbols(t, path)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := buildFromELF(f)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Source != ".gopclntab+.eh_frame" {
		t.Fatalf("source %q", tbl.Source)
	}
	if text := f.Section(".text").Addr; syms["runtime.text"].Value == text {
		t.Fatalf("runtime.text at the start of .text: the fixture does not test the offset")
	}
	viaC := syms["main.viaC"].Value
	if r, _ := tbl.Lookup(viaC); r.CFA() != CFASP || r.CFAOffset != 8 {
		t.Errorf("main.viaC at entry: %v%+d, want sp+8", r.CFA(), r.CFAOffset)
	}
	for off := uint64(1); off < syms["main.viaC"].Size; off++ {
		r, _ := tbl.Lookup(viaC + off)
		if r.CFAOffset == 8 {
			continue // the stack check before the prologue
		}
		if r.CFA() != CFASP || r.CFAOffset != 16 || r.RBP() != RBPAtCFA || r.RBPOffset != -2 {
			t.Errorf("main.viaC%+d, after PUSHQ BP: %v%+d rbp %v%+d, want sp+16, RBP at CFA-16", off, r.CFA(), r.CFAOffset, r.RBP(), 8*int(r.RBPOffset))
		}
		break
	}
	if r, ok := tbl.Lookup(syms["cspin"].Value); !ok || r.CFA() != CFASP || r.CFAOffset != 8 {
		t.Errorf("cspin (C, .eh_frame): %v%+d", r.CFA(), r.CFAOffset)
	}
	// Both of asmcgocall's calls into C return where the goroutine's
	// stack is found again.
	cgo := syms["runtime.asmcgocall.abi0"]
	n := 0
	for off := uint64(0); off < cgo.Size; off++ {
		if r, _ := tbl.Lookup(cgo.Value + off); r.CFA() == CFAGoCgo {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d bytes of runtime.asmcgocall with the cgo return rule, want 2", n)
	}
}

func goSymbols(t *testing.T, path string) map[string]elf.Symbol {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]elf.Symbol{}
	for _, s := range syms {
		out[s.Name] = s
	}
	return out
}

func TestLibcEndsAtStart(t *testing.T) {
	f, err := os.Open(systemLibc)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	tbl, err := Build(f)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Source != ".eh_frame" || len(tbl.Rows) < 1000 {
		t.Fatalf("libc: source %q, %d rows", tbl.Source, len(tbl.Rows))
	}
	var ends, plt int
	for _, r := range tbl.Rows {
		switch r.CFA() {
		case CFAEnd:
			ends++
		case CFAPLT10, CFAPLT11:
			plt++
		}
	}
	// clone3/clone end thread stacks with an undefined return address.
	if ends == 0 || plt == 0 {
		t.Fatalf("libc: %d end rows, %d PLT rows", ends, plt)
	}
}

func BenchmarkBuildLibLLVM(b *testing.B) {
	const path = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"
	f, err := os.Open(path)
	if err != nil {
		b.Skip(err)
	}
	defer f.Close()
	for b.Loop() {
		tbl, err := Build(f)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(tbl.Rows)), "rows")
		b.ReportMetric(float64(tbl.SizeBytes())/(1<<20), "MiB")
	}
}

// Code built with -fno-asynchronous-unwind-tables has its CFI in
// .debug_frame only; the start files' .eh_frame entries come too.
func TestDebugFrameWithStartFilesEHFrame(t *testing.T) {
	f, err := elf.Open("../../testdata/unwind/chain-debugframe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := buildFromELF(f)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Source != ".eh_frame+.debug_frame" {
		t.Errorf("source %q", tbl.Source)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		switch s.Name {
		case "level5", "_start":
			// Inside the function, past its prologue.
			row, ok := tbl.Lookup(s.Value + s.Size - 1)
			if !ok || (row.CFA() != CFASP && row.CFA() != CFAEnd) {
				t.Errorf("%s: row %+v, found %v", s.Name, row, ok)
			}
		}
	}
}

// ruleIDs hands out rule IDs the way the collector does, for tests.
type ruleIDs struct {
	ids   map[Rule]uint16
	rules []Rule
}

func (r *ruleIDs) id(rule Rule) (uint16, error) {
	if r.ids == nil {
		r.ids = map[Rule]uint16{}
	}
	if id, ok := r.ids[rule]; ok {
		return id, nil
	}
	if len(r.rules) > 0xffff {
		return 0, ErrNoRuleID
	}
	r.ids[rule] = uint16(len(r.rules))
	r.rules = append(r.rules, rule)
	return r.ids[rule], nil
}

// checkWords compares the BPF layout's lookup with Table.Lookup at every
// row's PC, the bytes around it, and random addresses.
func checkWords(t testing.TB, tbl *Table, rng *rand.Rand) {
	t.Helper()
	var ids ruleIDs
	words, buckets, err := tbl.Words(ids.id)
	if err != nil {
		t.Fatal(err)
	}
	check := func(pc uint32) {
		// A gap row and no row both end the walk with "no row".
		want, wantOK := tbl.Lookup(tbl.Base + uint64(pc))
		wantOK = wantOK && want.CFA() != CFAGap
		id, ok := LookupWords(words, buckets, pc)
		ok = ok && ids.rules[id].Kind&0x0f != uint8(CFAGap)
		if ok != wantOK || (ok && ids.rules[id] != want.Rule()) {
			t.Fatalf("pc %#x: words give %v %+v, table %v %+v", pc, ok, ids.rules[id], wantOK, want.Rule())
		}
	}
	for _, r := range tbl.Rows {
		for _, d := range []uint32{0, 1, 2, 15} {
			check(r.PC + d)
			if r.PC >= d {
				check(r.PC - d)
			}
		}
	}
	if n := len(tbl.Rows); n > 0 {
		last := uint64(tbl.Rows[n-1].PC)
		for range 10000 {
			check(uint32(rng.Uint64N(last + BucketBytes)))
		}
		// Bucket edges, at most 4096 of them.
		step := max(1, (last>>BucketShift+2)/4096)
		for b := uint64(0); b <= last>>BucketShift+1; b += step {
			check(uint32(b << BucketShift))
			check(uint32(b<<BucketShift - 1))
		}
	}
}

func TestWordsMatchLookup(t *testing.T) {
	for _, path := range []string{systemLibc, "../../testdata/unwind/qsort-nofp", "../../testdata/unwind/sort-cpp", "../../testdata/unwind/sort-rust", "../../testdata/unwind/chain-debugframe"} {
		t.Run(path, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Skipf("open: %v", err)
			}
			defer f.Close()
			tbl, err := Build(f)
			if err != nil {
				t.Fatal(err)
			}
			checkWords(t, tbl, rand.New(rand.NewPCG(3, 4)))
		})
	}
}

// Rows that only differ by padding between functions are merged, and no
// gap row is left that a 16-aligned function start follows within 16 bytes.
func TestPaddingMerged(t *testing.T) {
	rows := []Row{
		makeRow(0, CFASP, 8, RBPSame, 0),
		makeRow(10, CFAGap, 0, RBPSame, 0), // padding up to 16
		makeRow(16, CFASP, 8, RBPSame, 0),  // same rule: merged too
		makeRow(20, CFASP, 16, RBPSame, 0),
		makeRow(30, CFAGap, 0, RBPSame, 0), // a real gap: 34 bytes
		makeRow(64, CFASP, 8, RBPSame, 0),
		makeRow(70, CFAGap, 0, RBPSame, 0), // next start not aligned
		makeRow(75, CFASP, 8, RBPSame, 0),
		makeRow(80, CFAGap, 0, RBPSame, 0),
	}
	want := []Row{rows[0], rows[3], rows[4], rows[5], rows[6], rows[7], rows[8]}
	got := normalize(rows, 0x1000)
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
