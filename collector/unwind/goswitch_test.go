package unwind

import (
	"debug/elf"
	"os"
	"testing"
)

// The offsets table by version agrees with the DWARF of a binary built by
// the Go on this machine, and the stripped build, which has no DWARF, gets
// the same from its version.
func TestGoLayoutDWARF(t *testing.T) {
	f, err := elf.Open("../../testdata/unwind/go-frameless")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fromDWARF, ok := dwarfLayout(f)
	if !ok {
		t.Fatal("no runtime layout in the fixture's DWARF")
	}
	minor, ok := goMinorVersion(f)
	if !ok {
		t.Fatal("no Go version in the fixture's build information")
	}
	s, err := elf.Open("../../testdata/unwind/go-frameless-stripped")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := dwarfLayout(s); ok {
		t.Fatal("the stripped fixture has DWARF")
	}
	fromVersion, ok := goRuntimeLayout(s)
	if !ok {
		t.Fatalf("go1.%d: no layout for the stripped fixture", minor)
	}
	if fromDWARF != fromVersion {
		t.Errorf("go1.%d: DWARF %+v, version table %+v", minor, fromDWARF, fromVersion)
	}
}

// Each switch's call on g0 has its rule, one byte long, in the binaries
// with and without symbols, and in the Go compiler (no DWARF).
func TestGoSwitchRows(t *testing.T) {
	paths := []string{"../../testdata/unwind/go-frameless", "../../testdata/unwind/go-frameless-stripped", "../../testdata/unwind/go-cgo"}
	if _, err := os.Stat(goCompiler); err == nil {
		paths = append(paths, goCompiler)
	}
	for _, path := range paths {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := buildFromELF(f)
		data, addr, _ := pclntabData(f)
		_, funcs, _ := pclntabRows(data, goTextStart(f, data, addr))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		counts := map[CFAKind]int{}
		for i, r := range tbl.Rows[:len(tbl.Rows)-1] {
			if k := r.CFA(); k == CFAGoSystemstack || k == CFAGoMorestack {
				counts[k]++
				if tbl.Rows[i+1].PC != r.PC+1 {
					t.Errorf("%s: %v row at %#x holds %d bytes", path, k, r.PC, tbl.Rows[i+1].PC-r.PC)
				}
			}
		}
		if counts[CFAGoSystemstack] != 1 || counts[CFAGoMorestack] != 1 {
			t.Errorf("%s: rows %v, want one systemstack and one morestack return", path, counts)
		}
		// mcall ends the walk where its call returns (and over the tail
		// after it, which never runs), not before.
		mcall := funcs["runtime.mcall"]
		if len(mcall) != 1 {
			t.Fatalf("%s: runtime.mcall %v", path, mcall)
		}
		ends := 0
		for a := mcall[0].start; a < mcall[0].end; a++ {
			if r, _ := tbl.Lookup(a); r.CFA() == CFAEnd {
				ends++
			}
		}
		if ends == 0 || ends > 16 {
			t.Errorf("%s: %d bytes of runtime.mcall end the walk", path, ends)
		}
		// The signal handler's entry reads the interrupted registers from the
		// ucontext right above the restorer's address.
		for _, name := range []string{"runtime.sigtramp", "runtime.sigreturn__sigaction"} {
			fns := funcs[name]
			if len(fns) != 1 {
				t.Fatalf("%s: %s %v", path, name, fns)
			}
			want := int32(8)
			if name == "runtime.sigreturn__sigaction" {
				want = 0
			}
			if r, _ := tbl.Lookup(fns[0].start); r.CFA() != CFASigframe || r.CFAOffset != want {
				t.Errorf("%s: %s at entry: %v%+d, want sigframe%+d", path, name, r.CFA(), r.CFAOffset, want)
			}
			if r, _ := tbl.Lookup(fns[0].end - 1); r.CFA() != CFASigframe {
				t.Errorf("%s: %s's last byte: %v", path, name, r.CFA())
			}
		}
		// The vDSO callers are walked by frame pointer from their
		// prologue's end, across the g0 stack they call on.
		for _, name := range []string{"time.now", "runtime.nanotime1"} {
			fns := funcs[name]
			if len(fns) != 1 {
				t.Fatalf("%s: %s %v", path, name, fns)
			}
			if r, _ := tbl.Lookup(fns[0].start + 4); r.CFA() != CFAFPSwitched || r.CFAOffset != 16 {
				t.Errorf("%s: %s after its prologue: %v%+d, want fp-switched+16", path, name, r.CFA(), r.CFAOffset)
			}
			if r, _ := tbl.Lookup(fns[0].start); r.CFA() == CFAFPSwitched {
				t.Errorf("%s: %s's entry, before its frame pointer is set, is walked by it", path, name)
			}
		}
	}
}

const goCompiler = "/usr/local/go/pkg/tool/linux_amd64/compile"

func TestGoLayoutPack(t *testing.T) {
	l := goLayout{gM: 48, gSched: 56, mCurg: 184, gobufBP: 40, tlsG: -8}
	v, ok := l.pack(16)
	if !ok {
		t.Fatal("does not fit")
	}
	u := uint32(v)
	got := goLayout{
		mCurg:   int(u>>goCurgShift&0xff) * 8,
		gobufBP: int(u>>goBPShift&0xf) * 8,
		tlsG:    -int(u>>goTLSShift&0xf) * 8,
		gM:      int(u>>goGMShift&0xf) * 8,
		gSched:  int(u>>goSchedShift) * 8,
	}
	if got != l || u&0xff != 16 {
		t.Errorf("packed %#x reads back %+v frame %d", u, got, u&0xff)
	}
	for _, bad := range []goLayout{{gM: 48, gSched: 56, mCurg: 4096, gobufBP: 40, tlsG: -8}, {gM: 48, gSched: 56, mCurg: 184, gobufBP: 41, tlsG: -8}, {gM: 48, gSched: 56, mCurg: 184, gobufBP: 40}} {
		if _, ok := bad.pack(16); ok {
			t.Errorf("%+v packed", bad)
		}
	}
}
