package symbolizer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzELFSymbols feeds arbitrary bytes to the ELF reader (symbol tables,
// DWARF, MiniDebugInfo, Go line tables) and looks up a few addresses in
// whatever it accepted: errors are fine, panics and hangs are
// not. Seeded with the fixtures and truncations of one. Run it with
// -fuzzminimizetime 0: minimizing a 16 KB input byte by byte stalls the
// fuzzer for minutes on every new interesting input.
func FuzzELFSymbols(f *testing.F) {
	for _, name := range []string{"prog-pie", "prog-nopie", "libember.so", "libember-stripped.so", "prog-stripped", "uselib"} {
		f.Add(mustRead(f, name))
	}
	pie := mustRead(f, "prog-pie")
	for _, n := range []int{0, 4, 64, 1024, len(pie) / 2} {
		f.Add(pie[:n])
	}
	// The symbolizer fixtures: DWARF with inlined calls, compressed DWARF,
	// C++ and Rust, MiniDebugInfo.
	for _, name := range []string{"inline", "inline-compressed", "inline-minidebuginfo", "templates", "rust-v0"} {
		data, err := os.ReadFile(filepath.Join(symbolsDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := parseELF(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, l := range ef.loads {
			for _, off := range []uint64{l.off, l.off + l.filesz/2, l.off + l.filesz - 1} {
				if vaddr, ok := ef.elfAddr(off); ok {
					frames, ok := ef.resolve(vaddr)
					if ok && (len(frames) == 0 || frames[0].Function == "") {
						t.Errorf("resolve(%#x) = %v, ok without a name", vaddr, frames)
					}
				}
			}
		}
	})
}

// symbolsSection returns a section of a testdata/symbols fixture.
func symbolsSection(t testing.TB, fixture, section string) []byte {
	t.Helper()
	f, err := elf.Open(filepath.Join(symbolsDir, fixture))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(section)
	if s == nil {
		t.Fatalf("%s has no %s", fixture, section)
	}
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dwarfSections returns the DWARF sections of a testdata/symbols fixture.
func dwarfSections(t testing.TB, fixture string) map[string][]byte {
	t.Helper()
	f, err := elf.Open(filepath.Join(symbolsDir, fixture))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections, _, err := readDWARFSections(elfImage{File: f}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return sections
}

// hostileLineHeader is a DWARF 5 line program header claiming 2^34
// directories in a few bytes: trusted, it makes a parser allocate 256 GiB.
func hostileLineHeader() []byte {
	h := []byte{
		5, 0, // version
		8, 0, // address size, segment selector size
		0, 0, 0, 0, // header length, set below
		1, 1, 1, 0xfb, 14, 13, // min inst, max ops, default is_stmt, line base, line range, opcode base
		0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, // standard opcode lengths
		1, 1, 0x08, // one directory format: DW_LNCT_path, DW_FORM_string
		0x80, 0x80, 0x80, 0x80, 0x40, // 2^34 directories (ULEB128)
		'/', 0,
	}
	binary.LittleEndian.PutUint32(h[4:], uint32(len(h)-8))
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(h))), h...)
}

// resolveAllText resolves every address of the inline fixture's alpha
// with a resolver: errors and misses are fine, panics and nameless frames
// are not.
func resolveAllText(t *testing.T, r *dwarfResolver) {
	for pc := uint64(0x1000); pc < 0x1300; pc++ {
		frames, ok := r.resolve(pc)
		if ok && len(frames) == 0 {
			t.Fatalf("resolve(%#x) ok without frames", pc)
		}
	}
}

// FuzzDWARFLines feeds arbitrary .debug_line sections, with the inline
// fixture's other DWARF sections, through header checks, line table
// decoding and inline expansion. Seeded with real line tables, a 1-byte
// section and a header claiming 2^34 directories.
func FuzzDWARFLines(f *testing.F) {
	for _, fixture := range []string{"inline", "templates", "rust-v0"} {
		f.Add(symbolsSection(f, fixture, ".debug_line"))
	}
	real := symbolsSection(f, "inline", ".debug_line")
	f.Add(real[:1])
	f.Add(real[:len(real)/2])
	f.Add(hostileLineHeader())
	base := dwarfSections(f, "inline")
	f.Fuzz(func(t *testing.T, line []byte) {
		sections := maps.Clone(base)
		sections[".debug_line"] = line
		r, err := dwarfResolverFromSections(sections)
		if err != nil || r == nil {
			return
		}
		resolveAllText(t, r)
	})
}

// FuzzDWARFInfo does the same with arbitrary .debug_info: compile unit
// indexing, function indexing and the inline tree.
func FuzzDWARFInfo(f *testing.F) {
	real := symbolsSection(f, "inline", ".debug_info")
	f.Add(real)
	for _, n := range []int{1, 11, 12, len(real) / 2, len(real) - 1} {
		f.Add(real[:n])
	}
	base := dwarfSections(f, "inline")
	f.Fuzz(func(t *testing.T, info []byte) {
		sections := maps.Clone(base)
		sections[".debug_info"] = info
		r, err := dwarfResolverFromSections(sections)
		if err != nil || r == nil {
			return
		}
		resolveAllText(t, r)
	})
}

// FuzzDebugLink parses arbitrary .gnu_debuglink contents.
func FuzzDebugLink(f *testing.F) {
	f.Add(symbolsSection(f, "inline-debuglink", ".gnu_debuglink"))
	f.Add([]byte("x\x00"))
	f.Add([]byte("../../etc/passwd\x00\x00\x00\x00\x01\x02\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		link, ok := parseDebugLink(data, true)
		if ok && (link.name == "" || strings.Contains(link.name, "/")) {
			t.Errorf("accepted debuglink name %q", link.name)
		}
	})
}

// FuzzMiniDebugInfo decompresses and parses arbitrary .gnu_debugdata.
func FuzzMiniDebugInfo(f *testing.F) {
	real := symbolsSection(f, "inline-minidebuginfo", ".gnu_debugdata")
	f.Add(real)
	f.Add(real[:len(real)/2])
	f.Add([]byte("\xfd7zXZ\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		syms, err := parseMiniDebugInfo(data, &symbolNames{})
		if err == nil && len(syms) == 0 {
			t.Error("no error and no symbols")
		}
	})
}

// FuzzPerfMap parses arbitrary perf maps and looks up a few addresses.
func FuzzPerfMap(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join(symbolsDir, "perf-7.map"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("ffffffffffffffff 1 wraps\n0 ffffffffffffffff all\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parsePerfMap(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range m.syms {
			if s.end <= s.start {
				t.Fatalf("symbol %q with end %#x <= start %#x", s.name, s.end, s.start)
			}
			if name, ok := m.lookup(s.start); !ok || name == "" {
				t.Fatalf("lookup(%#x) = %q, %v", s.start, name, ok)
			}
		}
	})
}

// FuzzPclntab parses arbitrary Go line tables and resolves addresses in
// them, inlined calls included. Seeded with the stripped Go fixture's .gopclntab and cuts of it.
func FuzzPclntab(f *testing.F) {
	real := symbolsSection(f, "gostripped", ".gopclntab")
	f.Add(real)
	for _, n := range []int{16, 64, 4096, len(real) / 2} {
		f.Add(real[:n])
	}
	const text = 0x401000
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newGoResolverFromData(data, text)
		if err != nil {
			return
		}
		// Inline trees read from the same bytes: offsets into go:func.*
		// land anywhere in them.
		r.inline = &goInline{gofunc: data[len(data)/2:]}
		for pc := uint64(text); pc < text+0x100000; pc += 0x1001 {
			if frames, ok := r.resolve(pc); ok && frames[0].Function == "" {
				t.Fatalf("resolve(%#x): nameless frame", pc)
			}
		}
	})
}

// FuzzKallsyms parses arbitrary kallsyms text and looks up every symbol it
// kept: each must be found at its own address with its own name.
func FuzzKallsyms(f *testing.F) {
	seed, err := os.ReadFile("testdata/kallsyms")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("ffffffff81000000 T a\nffffffff81000000 t _a\t[m]\n0 T zero\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseKallsyms(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := range k.len() {
			want := k.at(i)
			if got, ok := k.lookup(want.addr); !ok || got != want {
				t.Fatalf("lookup(%#x) = %+v, %v; want %+v", want.addr, got, ok, want)
			}
		}
	})
}
