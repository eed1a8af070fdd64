package unwind

import (
	"bytes"
	"debug/elf"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"../../testdata/unwind/qsort-nofp",
	"../../testdata/unwind/sort-cpp",
	"../../testdata/unwind/chain-nofp",
}

func ehFrameOf(t testing.TB, path string) ([]byte, uint64) {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".eh_frame")
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return data, s.Addr
}

// FuzzTableFromCFI feeds arbitrary .eh_frame bytes to the parser and row
// builder: they must return rows or an error, never panic, the rows must
// be sorted and without duplicates, and their BPF layout must find the same
// rows.
func FuzzTableFromCFI(f *testing.F) {
	for _, p := range fuzzSeeds {
		data, addr := ehFrameOf(f, p)
		f.Add(data, addr)
		f.Add(data[:len(data)/2], addr)
	}
	f.Add([]byte{}, uint64(0x1000))
	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		tbl, err := tableFromCFI(data, max(addr, 1))
		if err != nil {
			return
		}
		for i := 1; i < len(tbl.Rows); i++ {
			if tbl.Rows[i].PC <= tbl.Rows[i-1].PC {
				t.Fatalf("rows not sorted at %d", i)
			}
		}
		checkWords(t, tbl, rand.New(rand.NewPCG(1, 2)))
	})
}

// FuzzBuild feeds whole (mutated) ELF files.
func FuzzBuild(f *testing.F) {
	for _, p := range fuzzSeeds {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		Build(bytes.NewReader(raw))
	})
}

// FuzzDecodeTable: a damaged cache file is rejected, never trusted or a panic.
func FuzzDecodeTable(f *testing.F) {
	f.Add(encodeTable(&Table{Base: 0x1000, Rows: []Row{makeRow(0, CFASP, 8, RBPSame, 0), makeRow(4, CFAGap, 0, RBPSame, 0)}, Source: ".eh_frame"}))
	f.Add(encodeTable(&Table{FramePointers: true, Source: "go"}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tbl, err := decodeTable(raw)
		if err != nil {
			return
		}
		if again := encodeTable(tbl); !bytes.Equal(again, raw) {
			t.Fatalf("decoded table does not encode back to the same bytes")
		}
	})
}

func TestCacheRoundTripAndCorruption(t *testing.T) {
	c, err := NewCache(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fuzzSeeds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := Build(f)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		t.Fatal(err)
	}
	id, err := FileID(ef)
	if err != nil || id[0] != 'b' {
		t.Fatalf("FileID = %q, %v; want a build ID", id, err)
	}
	if _, err := c.Load(id); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty cache: %v", err)
	}
	if err := c.Store(id, tbl); err != nil {
		t.Fatal(err)
	}
	got, err := c.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tbl) {
		t.Fatalf("round trip changed the table")
	}
	// Flip one byte in the rows: the checksum must catch it.
	p := filepath.Join(c.dir, id+".unwind")
	raw, _ := os.ReadFile(p)
	raw = slices.Clone(raw)
	raw[40] ^= 0x10
	os.WriteFile(p, raw, 0o600)
	if _, err := c.Load(id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt file: %v", err)
	}
	if _, err := c.Load("../etc"); err == nil {
		t.Fatal("path-like id accepted")
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	tbl := &Table{Base: 0x1000, Rows: make([]Row, 1000), Source: ".eh_frame"}
	for i := range tbl.Rows {
		tbl.Rows[i] = makeRow(uint32(i), CFASP, 8, RBPSame, 0)
	}
	size := int64(len(encodeTable(tbl)))
	c, err := NewCache(t.TempDir(), 2*size+size/2) // room for two
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b01", "b02"} {
		if err := c.Store(id, tbl); err != nil {
			t.Fatal(err)
		}
	}
	// b01 is used, so b02 is the least recently used when b03 arrives.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(c.dir, "b02.unwind"), old, old)
	if _, err := c.Load("b01"); err != nil {
		t.Fatal(err)
	}
	if err := c.Store("b03", tbl); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load("b02"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b02 not evicted: %v", err)
	}
	for _, id := range []string{"b01", "b03"} {
		if _, err := c.Load(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if c.Evictions() != 1 {
		t.Errorf("%d evictions, want 1", c.Evictions())
	}
}

// FuzzPclntabRows feeds arbitrary Go line tables to the row builder: rows
// or an error, never a panic, and sorted rows the BPF layout finds again.
func FuzzPclntabRows(f *testing.F) {
	ef, err := elf.Open("../../testdata/unwind/go-frameless")
	if err != nil {
		f.Fatal(err)
	}
	data, err := ef.Section(".gopclntab").Data()
	ef.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, uint64(0x401000))
	f.Add(data[:len(data)/3], uint64(0x401000))
	f.Add(data[:80], uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, text uint64) {
		tbl, _, err := pclntabRows(data, text)
		if err != nil {
			return
		}
		if len(tbl.Rows) > maxGoRows+2 {
			t.Fatalf("%d rows", len(tbl.Rows))
		}
		for i := 1; i < len(tbl.Rows); i++ {
			if tbl.Rows[i].PC <= tbl.Rows[i-1].PC {
				t.Fatalf("rows not sorted at %d", i)
			}
		}
		checkWords(t, tbl, rand.New(rand.NewPCG(1, 2)))
	})
}
