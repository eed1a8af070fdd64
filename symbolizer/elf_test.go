package symbolizer

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ember-profiler/ember/model"
)

// TestNormalize checks runtime-to-ELF address translation for each kind of
// file, with mappings laid out as the loader lays them out.
func TestNormalize(t *testing.T) {
	const (
		pieBase = 0x555555554000
		libBase = 0x7f0000000000
	)
	tests := []struct {
		file   string
		base   uint64 // where the first PT_LOAD lands; 0 = at its ELF address
		symbol string
	}{
		{"prog-pie", pieBase, "ember_leaf"},
		{"prog-pie", pieBase, "ember_middle"},
		{"prog-pie", pieBase, "ember_static_helper"}, // local: .symtab only
		{"prog-pie", pieBase, "main"},
		{"prog-nopie", 0, "ember_leaf"},
		{"prog-nopie", 0, "ember_static_helper"},
		{"prog-nopie", 0, "main"},
		{"libember.so", libBase, "ember_lib_compute"},
		{"libember.so", libBase, "ember_lib_entry"},
		{"libember-stripped.so", libBase, "ember_lib_entry"}, // .dynsym only
		{"uselib", pieBase, "ember_app_work"},
	}
	s := newTestSymbolizer(t)
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.symbol, func(t *testing.T) {
			ms := loadAt(t, tt.file, tt.base)
			proc := process(1, ms)
			value, size := fixtureSymbol(t, tt.file, tt.symbol)
			var bias uint64 // 0 for non-PIE: loaded at its ELF addresses
			if tt.base != 0 {
				bias = tt.base - fixtureFirstLoad(t, tt.file)
			}
			start, end := bias+value, bias+value+size
			// A leaf anywhere in the function, and return addresses up to
			// its very end (a call as the last instruction returns to the
			// next function's first byte).
			got := userNames(t, s, proc, start, start+1, end-1, end)
			want := []string{tt.symbol, tt.symbol, tt.symbol, tt.symbol}
			if !slices.Equal(got, want) {
				t.Errorf("frames at %#x, %#x, %#x, %#x (returns) = %q, want %q", start, start+1, end-1, end, got, want)
			}
		})
	}
}

// fixtureFirstLoad returns the page-aligned ELF address of the first
// PT_LOAD, which the loader places at the load base.
func fixtureFirstLoad(t testing.TB, name string) uint64 {
	t.Helper()
	ef, err := elf.NewFile(openFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			return p.Vaddr &^ (pageSize - 1)
		}
	}
	t.Fatalf("%s has no PT_LOAD", name)
	return 0
}

// TestReturnAddressAdjust checks that only non-leaf frames are looked up
// at addr-1: the first byte after ember_middle is ember_static_helper's
// first byte as a leaf, but a return into ember_middle as a caller.
func TestReturnAddressAdjust(t *testing.T) {
	s := newTestSymbolizer(t)
	proc := process(1, loadAt(t, "prog-nopie", 0))
	middle, size := fixtureSymbol(t, "prog-nopie", "ember_middle")
	helper, _ := fixtureSymbol(t, "prog-nopie", "ember_static_helper")
	if middle+size != helper {
		t.Fatalf("fixture layout changed: ember_middle ends at %#x, ember_static_helper starts at %#x", middle+size, helper)
	}
	if got := userNames(t, s, proc, helper); got[0] != "ember_static_helper" {
		t.Errorf("leaf at %#x = %q, want ember_static_helper", helper, got[0])
	}
	s = newTestSymbolizer(t) // fresh caches
	if got := userNames(t, s, proc, helper+4, helper); got[1] != "ember_middle" {
		t.Errorf("return address %#x = %q, want ember_middle", helper, got[1])
	}
}

func TestUnknownFrames(t *testing.T) {
	s := newTestSymbolizer(t)
	stripped := loadAt(t, "prog-stripped", 0x555555554000)
	nofile := loadAt(t, "prog-pie", 0x7f0000000000)
	for i := range nofile {
		nofile[i].File = nil // the collector could not open it
	}
	special := []model.Mapping{
		{Start: 0x7ffff7fc1000, Limit: 0x7ffff7fc3000, Path: "[vdso]"},
		{Start: 0x7e0000000000, Limit: 0x7e0000010000},
		{Start: 0x7d0000000000, Limit: 0x7d0000010000, Path: "[anon:jit]"},
	}
	proc := process(1, stripped, nofile, special)
	got := userNames(t, s, proc,
		stripped[0].Start+0x10,
		nofile[0].Start+0x20,
		0x7ffff7fc1100,
		0x7e0000000100,
		0x7d0000000100,
		0x10,
	)
	want := []string{
		fmt.Sprintf("[unknown in prog-stripped+%#x]", stripped[0].Offset+0x10),
		fmt.Sprintf("[unknown in prog-pie+%#x]", nofile[0].Offset+0x20),
		"[vdso]",
		anonWhy(jitNoRoot),
		"[unknown in [anon:jit]: " + jitNoRoot + "]",
		"[unknown: address in no mapping]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Read after it exited: /proc/PID/maps of a zombie is empty.
	zombie := process(2)
	if got := userNames(t, s, zombie, 0x401000); got[0] != markerExited {
		t.Errorf("process with no mappings: %q, want %q", got[0], markerExited)
	}
}

func TestBuildID(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"prog-pie", "prog-nopie", "libember.so", "uselib"} {
		ef, err := parseELF(openFixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := hex.DecodeString(ef.buildID); err != nil || len(b) != 20 {
			t.Errorf("%s: build ID %q is not a 20-byte sha1", name, ef.buildID)
		}
		if other, ok := seen[ef.buildID]; ok {
			t.Errorf("%s and %s have the same build ID %s", name, other, ef.buildID)
		}
		seen[ef.buildID] = name
	}
	// strip keeps the note, so the stripped copy matches its original.
	pie, _ := parseELF(openFixture(t, "prog-pie"))
	stripped, _ := parseELF(openFixture(t, "prog-stripped"))
	if pie.buildID != stripped.buildID {
		t.Errorf("stripped build ID %q, original %q", stripped.buildID, pie.buildID)
	}
}

// TestMalformedELF feeds truncated and garbage files through parseELF and
// through Profile: errors and unknown frames, never a panic.
func TestMalformedELF(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(fixtureDir, "prog-pie"))
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{
		"empty":          {},
		"garbage":        bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024),
		"header":         good[:64],
		"elf magic only": []byte("\x7fELF"),
	}
	for _, n := range []int{16, 100, 1000, 4096, len(good) / 2, len(good) - 100} {
		inputs[fmt.Sprintf("truncated at %d", n)] = good[:n]
	}
	// A section table claiming a huge symbol table.
	inputs["corrupt section headers"] = corruptSectionHeaders(good)

	dir := t.TempDir()
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			ef, err := parseELF(bytes.NewReader(data))
			if err == nil && len(data) < 1000 {
				t.Errorf("parse of %d bytes succeeded: %+v", len(data), ef)
			}
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			proc := process(1, []model.Mapping{{
				Start: 0x400000, Limit: 0x500000, Offset: 0x1000, Path: "/opt/bad/libbad.so", File: f,
			}})
			got := userNames(t, newTestSymbolizer(t), proc, 0x401234)
			if ef == nil && got[0] != "[unknown in libbad.so+0x2234]" {
				t.Errorf("frame = %q, want the unknown marker", got[0])
			}
		})
	}
}

// corruptSectionHeaders returns a copy of an ELF64 file whose every
// section claims to be 1 TiB long.
func corruptSectionHeaders(good []byte) []byte {
	b := bytes.Clone(good)
	shoff := leUint64(b[0x28:])
	shentsize := uint64(leUint16(b[0x3a:]))
	shnum := uint64(leUint16(b[0x3c:]))
	for i := uint64(0); i < shnum; i++ {
		sizeAt := shoff + i*shentsize + 0x20
		if sizeAt+8 <= uint64(len(b)) {
			for j := range 8 {
				b[sizeAt+uint64(j)] = byte((uint64(1) << 40) >> (8 * j))
			}
		}
	}
	return b
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func leUint16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

// TestSymbolTableCap checks the size limits directly: debug/elf already
// refuses a section that runs past the end of the file, so a file small
// enough to commit cannot reach them.
func TestSymbolTableCap(t *testing.T) {
	huge := &elf.Section{SectionHeader: elf.SectionHeader{Name: ".symtab", Size: maxSymbolTableBytes + 1, Link: 1}}
	strtab := &elf.Section{SectionHeader: elf.SectionHeader{Name: ".strtab", Size: 100}}
	f := &elf.File{Sections: []*elf.Section{huge, strtab}}
	if err := checkSymbolTableSize(f, huge); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge .symtab: error %v, want one naming the limit", err)
	}
	huge.Size, strtab.Size = 100, maxSymbolTableBytes+1
	if err := checkSymbolTableSize(f, huge); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge .strtab: error %v, want one naming the limit", err)
	}
	strtab.Size = 100
	if err := checkSymbolTableSize(f, huge); err != nil {
		t.Errorf("small tables: %v", err)
	}
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLiveProcess runs the uselib fixture (a PIE executable using
// libember.so), reads its real /proc/PID/maps, and checks that the runtime
// addresses it prints for its own and the library's functions resolve.
func TestLiveProcess(t *testing.T) {
	cmd := exec.Command(filepath.Join(fixtureDir, "uselib"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	addrs := map[string]uint64{}
	sc := bufio.NewScanner(stdout)
	for len(addrs) < 2 && sc.Scan() {
		name, hexAddr, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("unexpected output %q", sc.Text())
		}
		a, err := strconv.ParseUint(strings.TrimPrefix(hexAddr, "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		addrs[name] = a
	}
	if len(addrs) < 2 {
		t.Fatalf("fixture printed %v", addrs)
	}
	proc := readMaps(t, cmd.Process.Pid)
	s := newTestSymbolizer(t)
	app, lib := addrs["ember_app_work"], addrs["ember_lib_compute"]
	got := userNames(t, s, proc, lib+2, app+3)
	want := []string{"ember_lib_compute", "ember_app_work"}
	if !slices.Equal(got, want) {
		t.Errorf("live frames at %#x, %#x = %q, want %q", lib+2, app+3, got, want)
	}
}

// readMaps is a minimal /proc/PID/maps reader for tests: executable
// file-backed mappings, with files opened by path (the collector uses
// map_files instead).
func readMaps(t testing.TB, pid int) *model.Process {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	proc := &model.Process{PID: uint32(pid), Comm: "uselib"}
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// 5622ae859000-5622ae85a000 r-xp 00001000 fe:01 1234   /path
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[1][2] != 'x' || !strings.HasPrefix(fields[5], "/") {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		limit, _ := strconv.ParseUint(hi, 16, 64)
		off, _ := strconv.ParseUint(fields[2], 16, 64)
		file, err := os.Open(fields[5])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { file.Close() })
		proc.Mappings = append(proc.Mappings, model.Mapping{
			Start: start, Limit: limit, Offset: off, Path: fields[5], File: file,
		})
	}
	if len(proc.Mappings) == 0 {
		t.Fatalf("no executable mappings in /proc/%d/maps", pid)
	}
	return proc
}
