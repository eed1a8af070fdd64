package symbolizer

import (
	"bufio"
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
)

// symbolsDir holds the fixtures of testdata/symbols/build.sh, compiled
// with their source paths mapped to /src/ember.
const symbolsDir = "../testdata/symbols"

func symbolsFixture(t testing.TB, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(symbolsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// sourceLine returns the line of a fixture source that holds marker.
func sourceLine(t testing.TB, source, marker string) int64 {
	t.Helper()
	f, err := os.Open(filepath.Join(symbolsDir, source))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := int64(1); sc.Scan(); n++ {
		if strings.Contains(sc.Text(), marker) {
			return n
		}
	}
	t.Fatalf("%s has no %q", source, marker)
	return 0
}

// symbolRange returns the ELF address range of a symbol of a file.
func symbolRange(t testing.TB, path, symbol string) (start, end uint64) {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, _ := ef.Symbols()
	for _, s := range syms {
		if s.Name == symbol {
			return s.Value, s.Value + s.Size
		}
	}
	t.Fatalf("%s has no symbol %s", path, symbol)
	return 0, 0
}

// mappedFixture maps a testdata/symbols fixture at pieBase, under its real
// absolute path (so that .gnu_debuglink finds the debug file beside it),
// and returns the mapping and the bias from ELF to runtime addresses.
func mappedFixture(t testing.TB, name string) (*model.Mapping, uint64) {
	t.Helper()
	path := symbolsFixture(t, name)
	ms := loadPathAt(t, path, path, pieBase)
	return &ms[0], pieBase - firstLoad(t, path)
}

func firstLoad(t testing.TB, path string) uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			return p.Vaddr &^ (pageSize - 1)
		}
	}
	t.Fatalf("%s has no PT_LOAD", path)
	return 0
}

// framesAt names one leaf address of a mapping of process 1.
func framesAt(t testing.TB, s *Symbolizer, m *model.Mapping, addr uint64) []frame {
	t.Helper()
	key, err := statKey(m.File)
	if err != nil {
		t.Fatal(err)
	}
	frames, _ := s.userFrames(key, nil, process(1), m, addr, addr)
	return frames
}

// findFrames looks through the ELF range [start, end) of a mapped file for
// an address named exactly want, and returns its runtime address.
func findFrames(t testing.TB, s *Symbolizer, m *model.Mapping, bias, start, end uint64, want []frame) uint64 {
	t.Helper()
	seen := map[string]bool{}
	for a := start; a < end; a++ {
		got := framesAt(t, s, m, a+bias)
		if slices.Equal(got, want) {
			return a + bias
		}
		seen[fmt.Sprint(got)] = true
	}
	t.Errorf("no address in [%#x, %#x) is named %v; seen:", start, end, want)
	for s := range seen {
		t.Log("  ", s)
	}
	return 0
}

const inlineSource = "/src/ember/testdata/symbols/inline.c"

// TestInlinedFrames checks that the hot loop of alpha, where mix is
// inlined, is one location with two lines, mix innermost, each with its
// file and line, whether the DWARF is in the binary, in a debug file named
// by .gnu_debuglink, or in one found by build ID under a --debug-dir.
func TestInlinedFrames(t *testing.T) {
	mixLine := sourceLine(t, "inline.c", "MIX_LINE")
	callLine := sourceLine(t, "inline.c", "CALL_LINE")
	want := []frame{
		{Function: "mix", SystemName: "mix", File: inlineSource, Line: mixLine},
		{Function: "alpha", SystemName: "alpha", File: inlineSource, Line: callLine},
	}
	start, end := symbolRange(t, symbolsFixture(t, "inline"), "alpha")
	for _, tt := range []struct {
		binary    string
		debugDirs []string
	}{
		{"inline", nil},
		{"inline-debuglink", nil},
		{"inline-buildid", []string{symbolsFixture(t, "debug")}},
	} {
		t.Run(tt.binary, func(t *testing.T) {
			s := newTestSymbolizer(t)
			s.debugDirs = append(tt.debugDirs, s.debugDirs...)
			m, bias := mappedFixture(t, tt.binary)
			addr := findFrames(t, s, m, bias, start, end, want)
			if addr == 0 {
				return
			}
			// The same through a whole profile: one location, two lines.
			p := profileOf(t, s, process(1, []model.Mapping{*m}), addr)
			loc := p.Sample[0].Location[0]
			var got []string
			for _, l := range loc.Line {
				got = append(got, fmt.Sprintf("%s %s:%d", l.Function.Name, l.Function.Filename, l.Line))
			}
			wantLines := []string{
				fmt.Sprintf("mix %s:%d", inlineSource, mixLine),
				fmt.Sprintf("alpha %s:%d", inlineSource, callLine),
			}
			if !slices.Equal(got, wantLines) {
				t.Errorf("location lines %q, want %q", got, wantLines)
			}
			if pm := loc.Mapping; !pm.HasFunctions || !pm.HasFilenames || !pm.HasLineNumbers || !pm.HasInlineFrames {
				t.Errorf("mapping flags %+v, want functions, filenames, line numbers and inline frames", pm)
			}
		})
	}
}

// TestDebugLinkCRC checks that a debug file whose CRC does not match the
// .gnu_debuglink is not used.
func TestDebugLinkCRC(t *testing.T) {
	dir := t.TempDir()
	for name, edit := range map[string]func([]byte) []byte{
		"inline-debuglink": func(b []byte) []byte { return b },
		"inline.debug":     func(b []byte) []byte { return append(b, 0) },
	} {
		data, err := os.ReadFile(filepath.Join(symbolsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), edit(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "inline-debuglink")
	ms := loadPathAt(t, path, path, pieBase)
	start, _ := symbolRange(t, symbolsFixture(t, "inline"), "alpha")
	addr := start + pieBase - firstLoad(t, path)
	got := framesAt(t, newTestSymbolizer(t), &ms[0], addr)
	want := fmt.Sprintf("[unknown in inline-debuglink+%#x]", addr-ms[0].Start+ms[0].Offset)
	if len(got) != 1 || got[0].Function != want {
		t.Errorf("frames %v, want %s (the debug file's CRC does not match)", got, want)
	}
}

// TestMiniDebugInfo checks that the symbols of .gnu_debugdata name the
// local functions of a binary stripped of everything else.
func TestMiniDebugInfo(t *testing.T) {
	s := newTestSymbolizer(t)
	m, bias := mappedFixture(t, "inline-minidebuginfo")
	for _, fn := range []string{"alpha", "main"} {
		start, end := symbolRange(t, symbolsFixture(t, "inline"), fn)
		for _, a := range []uint64{start, end - 1} {
			got := framesAt(t, s, m, a+bias)
			if want := []frame{{Function: fn, SystemName: fn}}; !slices.Equal(got, want) {
				t.Errorf("%#x: %v, want %v", a, got, want)
			}
		}
	}
}

// TestDemangledNames checks C++ and Rust (legacy and v0 mangling) names:
// demangled without parameters for display, mangled as the system name,
// with the source file and line.
func TestDemangledNames(t *testing.T) {
	const (
		cc   = "/src/ember/testdata/symbols/templates.cc"
		rust = "/src/ember/testdata/symbols/rust/mangling.rs"
	)
	tests := []struct {
		binary, symbol string
		want           frame
		source, marker string
	}{
		{"templates", "_ZN5ember6detail6HasherImE3mixEm",
			frame{Function: "ember::detail::Hasher<unsigned long>::mix"}, "templates.cc", "HASHER_MIX_LINE"},
		{"templates", "_ZN5ember6detail6HasherIjE3mixEj",
			frame{Function: "ember::detail::Hasher<unsigned int>::mix"}, "templates.cc", "HASHER_MIX_LINE"},
		{"templates", "_ZN5ember6detail5twiceImEET_S2_",
			frame{Function: "ember::detail::twice<unsigned long>"}, "templates.cc", "TWICE_LINE"},
		{"templates", "_ZN5ember3runEm",
			frame{Function: "ember::run"}, "templates.cc", "RUN_LINE"},
		{"rust-legacy", "_ZN8mangling5ember6detail17Hasher$LT$u64$GT$3mix17h8aebf5458878c990E",
			frame{Function: "mangling::ember::detail::Hasher<u64>::mix"}, "rust/mangling.rs", "RUST_MIX_LINE"},
		{"rust-legacy", "_ZN8mangling5ember3run17h8e1a8855842b34a2E",
			frame{Function: "mangling::ember::run"}, "rust/mangling.rs", "RUST_RUN_LINE"},
		// v0 names an inherent impl's type in angle brackets, as
		// rustc-demangle does.
		{"rust-v0", "_RNvMNtNtCs8SLa4BKYfdg_8mangling5ember6detailINtB2_6HasheryE3mix",
			frame{Function: "<mangling::ember::detail::Hasher<u64>>::mix"}, "rust/mangling.rs", "RUST_MIX_LINE"},
		{"rust-v0", "_RNvNtCs8SLa4BKYfdg_8mangling5ember3run",
			frame{Function: "mangling::ember::run"}, "rust/mangling.rs", "RUST_RUN_LINE"},
	}
	s := newTestSymbolizer(t)
	for _, tt := range tests {
		t.Run(tt.binary+"/"+tt.want.Function, func(t *testing.T) {
			m, bias := mappedFixture(t, tt.binary)
			start, end := symbolRange(t, symbolsFixture(t, tt.binary), tt.symbol)
			want := tt.want
			want.SystemName = tt.symbol
			want.File = cc
			if strings.HasPrefix(tt.binary, "rust") {
				want.File = rust
			}
			want.Line = sourceLine(t, tt.source, tt.marker)
			findFrames(t, s, m, bias, start, end, []frame{want})
		})
	}
}

// TestGoStripped checks names, files and lines of a Go binary built with
// -ldflags='-s -w', which has neither symbol table nor DWARF.
func TestGoStripped(t *testing.T) {
	path := symbolsFixture(t, "gostripped")
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if ef.Section(".symtab") != nil || ef.Section(".debug_info") != nil {
		t.Fatal("gostripped has a symbol table or DWARF; rebuild it with build.sh")
	}
	pcln, err := ef.Section(".gopclntab").Data()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(pcln, ef.Section(".text").Addr))
	if err != nil {
		t.Fatal(err)
	}
	const source = "github.com/ember-profiler/ember/testdata/symbols/gosrc/main.go"
	s := newTestSymbolizer(t)
	ms := loadPathAt(t, path, path, 0) // not PIE: loaded at its ELF addresses
	line := func(marker string) int64 { return sourceLine(t, "gosrc/main.go", marker) }
	for _, tt := range []struct {
		fn   string
		want []frame
	}{
		{"main.leaf", []frame{{Function: "main.leaf", SystemName: "main.leaf", File: source, Line: line("GO_LEAF_LINE")}}},
		{"main.caller", []frame{{Function: "main.caller", SystemName: "main.caller", File: source, Line: line("GO_CALLER_LINE")}}},
		// scramble, inlined into caller: expanded from the inline tree.
		{"main.caller", []frame{
			{Function: "main.scramble", SystemName: "main.scramble", File: source, Line: line("GO_SCRAMBLE_LINE")},
			{Function: "main.caller", SystemName: "main.caller", File: source, Line: line("GO_INLINE_CALL_LINE")},
		}},
	} {
		fn := table.LookupFunc(tt.fn)
		if fn == nil {
			t.Fatalf("no %s in the pclntab", tt.fn)
		}
		findFrames(t, s, &ms[0], 0, fn.Entry, fn.End, tt.want)
	}
}

// TestGoInlineMatchesDWARF names addresses of a Go binary that has both
// DWARF and a pclntab each way, and checks that the pclntab's inlined
// calls, files and lines are DWARF's, apart from compiler-generated
// functions (DWARF gives them no file, the pclntab "<autogenerated>").
func TestGoInlineMatchesDWARF(t *testing.T) {
	f, err := elf.Open("../testdata/hotspot/hotspot-go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := newGoResolver(elfImage{File: f}, pclnSymbols{})
	if err != nil || g == nil || g.inline == nil {
		t.Fatalf("Go resolver %v (inline tables found: %v), %v", g, g != nil && g.inline != nil, err)
	}
	d, err := newDWARFResolver(elfImage{File: f}, 1<<30)
	if err != nil || d == nil {
		t.Fatalf("DWARF resolver: %v", err)
	}
	text := f.Section(".text")
	var same, inlined int
	for pc := text.Addr; pc < text.Addr+text.Size; pc += 61 {
		gf, ok1 := g.resolve(pc)
		df, ok2 := d.resolve(pc)
		if !ok1 || !ok2 {
			continue
		}
		if slices.Equal(gf, df) {
			same++
			if len(gf) > 1 {
				inlined++
			}
			continue
		}
		if gf[0].File != "<autogenerated>" {
			t.Errorf("%#x: pclntab %v, DWARF %v", pc, gf, df)
		}
	}
	if same == 0 || inlined == 0 {
		t.Errorf("%d addresses agree, %d of them with inlined calls; want many of both", same, inlined)
	}
}

// profileOf symbolizes one user stack of proc.
func profileOf(t testing.TB, s *Symbolizer, proc *model.Process, user ...uint64) *profile.Profile {
	t.Helper()
	p, err := s.Profile(&model.Batch{
		PeriodNanos: 1,
		Samples:     []model.Sample{{PID: proc.PID, TID: proc.PID, User: user, Count: 1}},
		Processes:   map[model.ProcessKey]*model.Process{{PID: proc.PID}: proc},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileLineTable checks that a line table header that lies about
// its size is refused before it is parsed, and that the function names
// and inlined calls of the DWARF still come through without its lines.
func TestHostileLineTable(t *testing.T) {
	if _, err := checkLineHeader(hostileLineHeader(), 0); err == nil {
		t.Fatal("header claiming 2^34 directories accepted")
	}
	base := dwarfSections(t, "inline")
	start, end := symbolRange(t, symbolsFixture(t, "inline"), "alpha")
	callLine := sourceLine(t, "inline.c", "CALL_LINE")
	for name, line := range map[string][]byte{
		"2^34 directories": hostileLineHeader(),
		"one byte":         {0x01},
		"empty":            {},
	} {
		t.Run(name, func(t *testing.T) {
			sections := maps.Clone(base)
			sections[".debug_line"] = line
			r, err := dwarfResolverFromSections(sections)
			if err != nil || r == nil {
				t.Fatalf("resolver: %v, %v", r, err)
			}
			want := []frame{
				{Function: "mix", SystemName: "mix"},
				{Function: "alpha", SystemName: "alpha", Line: callLine}, // from the inlined call's DW_AT_call_line
			}
			for pc := start; pc < end; pc++ {
				if got, _ := r.resolve(pc); slices.Equal(got, want) {
					return
				}
			}
			t.Errorf("no address of alpha named %v", want)
		})
	}
}

// TestCompressedDWARF checks that zlib-compressed debug sections are read,
// and that one claiming to inflate to a terabyte is refused at once, its
// frames named from the symbol table instead.
func TestCompressedDWARF(t *testing.T) {
	mixLine := sourceLine(t, "inline.c", "MIX_LINE")
	callLine := sourceLine(t, "inline.c", "CALL_LINE")
	start, end := symbolRange(t, symbolsFixture(t, "inline"), "alpha")
	s := newTestSymbolizer(t)
	m, bias := mappedFixture(t, "inline-compressed")
	findFrames(t, s, m, bias, start, end, []frame{
		{Function: "mix", SystemName: "mix", File: inlineSource, Line: mixLine},
		{Function: "alpha", SystemName: "alpha", File: inlineSource, Line: callLine},
	})

	// The bomb: .debug_info's compression header claims 2^40 bytes.
	data, err := os.ReadFile(symbolsFixture(t, "inline-compressed"))
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	info := ef.Section(".debug_info")
	if info.Flags&elf.SHF_COMPRESSED == 0 {
		t.Fatal(".debug_info is not compressed; rebuild with build.sh")
	}
	binary.LittleEndian.PutUint64(data[info.Offset+8:], 1<<40) // Elf64_Chdr.ch_size
	path := filepath.Join(t.TempDir(), "inline-bomb")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, skipped, err := parseELFWith(bytes.NewReader(data), 1<<30); err != nil || len(skipped) == 0 {
		t.Errorf("bomb: err %v, skipped sources %v; want DWARF skipped with an error", err, skipped)
	}
	ms := loadPathAt(t, path, path, pieBase)
	got := framesAt(t, newTestSymbolizer(t), &ms[0], start+bias)
	if want := []frame{{Function: "alpha", SystemName: "alpha"}}; !slices.Equal(got, want) {
		t.Errorf("bomb: %v, want %v from the symbol table", got, want)
	}
}
