package symbolizer

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestUnitByUnitMatchesWhole names every address of DWARF fixtures (C,
// C++, Rust, and libc6-dbg's libc when it is installed) through units read
// one at a time and through the file read as one, and checks both give the
// same frames.
func TestUnitByUnitMatchesWhole(t *testing.T) {
	files := []string{
		filepath.Join(symbolsDir, "inline"),
		filepath.Join(symbolsDir, "templates"),
		filepath.Join(symbolsDir, "rust-v0"),
	}
	if debug := "/usr/lib/debug/.build-id/93/ac61ec5a8eb1396f9fbd350e3169a558528a40.debug"; fileExists(debug) {
		files = append(files, debug)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sections, _, err := readDWARFSections(elfImage{File: f}, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			byUnit, err := dwarfResolverFromSections(sections)
			if err != nil || byUnit == nil {
				t.Fatalf("by unit: %v", err)
			}
			if byUnit.whole != nil {
				t.Skip("units refer to each other: read whole only")
			}
			whole := &dwarfResolver{sections: sections, line: sections[".debug_line"], names: make(map[dieKey]string)}
			if whole.whole, err = whole.newData(sections[".debug_info"]); err != nil {
				t.Fatal(err)
			}
			if err := whole.indexUnits(); err != nil {
				t.Fatal(err)
			}
			if len(whole.units) != len(byUnit.units) {
				t.Fatalf("%d units read whole, %d one by one", len(whole.units), len(byUnit.units))
			}
			lo, hi := byUnit.ranges[0].lo, byUnit.ranges[len(byUnit.ranges)-1].hi
			step := max((hi-lo)/4000, 1)
			var named int
			for pc := lo; pc < hi; pc += step {
				a, okA := byUnit.resolve(pc)
				b, okB := whole.resolve(pc)
				if okA != okB || !slices.Equal(a, b) {
					t.Fatalf("%#x: one unit at a time %v (%v), whole %v (%v)", pc, a, okA, b, okB)
				}
				if okA {
					named++
				}
			}
			if named == 0 {
				t.Fatal("no address named")
			}
			t.Logf("%d units, %d addresses named the same both ways", len(byUnit.units), named)
		})
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestCrossUnitReferencesReadWhole: Go's linker refers to types in other
// units (DW_FORM_ref_addr), so a Go binary's DWARF must be read as one.
func TestCrossUnitReferencesReadWhole(t *testing.T) {
	f, err := elf.Open("../testdata/hotspot/hotspot-go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections, _, err := readDWARFSections(elfImage{File: f}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !refersAcrossUnits(sections[".debug_abbrev"]) {
		t.Fatal("Go DWARF: no cross-unit reference form found")
	}
	if refersAcrossUnits(dwarfSections(t, "inline")[".debug_abbrev"]) {
		t.Fatal("C DWARF: a cross-unit reference form found")
	}
}
