package collector

// The unwinder's table logic against fakeUnwindMaps, without root: what
// install, sharing, eviction, refresh and exit leave in the maps. Inputs
// are the real ELF fixtures of testdata/unwind (built by its build.sh).

import (
	"debug/elf"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/unwind"
	"github.com/ember-profiler/ember/model"
)

func unwindFixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("../testdata/unwind", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mapFile maps path's executable segments at base (0 for a non-PIE
// program), as the dynamic loader would, with the file open.
func mapFile(t *testing.T, path string, base uint64) []model.Mapping {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ef, err := elf.NewFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if ef.Type == elf.ET_EXEC {
		base = 0
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var ms []model.Mapping
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		ms = append(ms, model.Mapping{
			Start:  base + p.Vaddr&^0xfff,
			Limit:  base + (p.Vaddr+p.Memsz+0xfff)&^0xfff,
			Offset: p.Off &^ 0xfff,
			Path:   path,
			Inode:  st.Sys().(*syscall.Stat_t).Ino,
			File:   f,
		})
	}
	if len(ms) == 0 {
		t.Fatalf("%s has no executable segment", path)
	}
	return ms
}

func newProcess(pid, execSeq uint32, mappings ...[]model.Mapping) *model.Process {
	p := &model.Process{PID: pid, ExecSeq: execSeq}
	for _, ms := range mappings {
		p.Mappings = append(p.Mappings, ms...)
	}
	return p
}

func newFakeTables(t *testing.T, capacityWords uint32) (*unwindTables, *fakeUnwindMaps) {
	t.Helper()
	maps := newFakeUnwindMaps()
	u, err := newUnwindTablesIn(maps, capacityWords, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return u, maps
}

func alwaysAlive(uint32, uint32) bool { return true }

// expectedTable is a file's table as it should be in the maps, built here
// again from the file, with the rule IDs the maps hold.
type expectedTable struct {
	tbl     *unwind.Table
	words   []uint32
	buckets uint32
}

func expectTable(t *testing.T, maps *fakeUnwindMaps, path string) expectedTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := unwind.Build(f)
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[unwind.Rule]uint16)
	maps.mu.Lock()
	for id, r := range maps.rules {
		ids[unwind.Rule{CFAOffset: r.CfaOffset, RBPOffset: r.RbpOffset, Kind: r.Kind}] = uint16(id)
	}
	maps.mu.Unlock()
	words, buckets, err := tbl.Words(func(r unwind.Rule) (uint16, error) {
		id, ok := ids[r]
		if !ok {
			return 0, fmt.Errorf("rule %+v is not in the rule map", r)
		}
		return id, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return expectedTable{tbl, words, buckets}
}

// tableWords returns the words of the table a range points at.
func tableWords(maps *fakeUnwindMaps, r bpf.SamplerUnwindRange, n int) []uint32 {
	return maps.words(r.Table, uint32(n))
}

// checkInstalled checks that pid's ranges in the maps are exactly its
// mappings', that each points at its file's table with the right bias,
// and that the table resolves the file's functions to their rules. It
// returns each mapping's range, by path.
func checkInstalled(t *testing.T, maps *fakeUnwindMaps, p *model.Process) map[string]bpf.SamplerUnwindRange {
	t.Helper()
	maps.mu.Lock()
	proc, ok := maps.procs[p.PID]
	maps.mu.Unlock()
	if !ok || proc.ExecSeq != p.ExecSeq {
		t.Fatalf("pid %d: unwind_procs has %+v (present %v), want exec_seq %d", p.PID, proc, ok, p.ExecSeq)
	}
	got := maps.rangesOf(p.PID)
	byPath := make(map[string]bpf.SamplerUnwindRange)
	keys := 0
	for _, m := range p.Mappings {
		exp := expectTable(t, maps, m.Path)
		for _, k := range rangeKeys(p.PID, m.Start, m.Limit) {
			keys++
			r, ok := got[k]
			if !ok {
				t.Fatalf("pid %d: %s [%#x, %#x) lacks the key at %+v", p.PID, filepath.Base(m.Path), m.Start, m.Limit, k)
			}
			if r.Start != m.Start || r.Limit != m.Limit || r.Kind != uint32(bpf.SamplerRangeKindRANGE_ROWS) {
				t.Fatalf("pid %d: %s: range %+v, want rows over [%#x, %#x)", p.PID, filepath.Base(m.Path), r, m.Start, m.Limit)
			}
			byPath[m.Path] = r
		}
		r := byPath[m.Path]
		ef, err := elf.NewFile(m.File)
		if err != nil {
			t.Fatal(err)
		}
		var base uint64 // where the file's address 0 is in the process
		for _, pr := range ef.Progs {
			if pr.Type == elf.PT_LOAD && pr.Off&^0xfff == m.Offset {
				base = m.Start - pr.Vaddr&^0xfff
			}
		}
		if r.Bias != base+exp.tbl.Base {
			t.Errorf("%s: bias %#x, want %#x", filepath.Base(m.Path), r.Bias, base+exp.tbl.Base)
		}
		words := tableWords(maps, r, len(exp.words))
		if r.Buckets != exp.buckets || !slices.Equal(words, exp.words) {
			t.Fatalf("%s: the maps hold %d words and %d buckets that differ from its table's %d words and %d buckets",
				filepath.Base(m.Path), len(words), r.Buckets, len(exp.words), exp.buckets)
		}
		checkLookups(t, maps, ef, exp, words)
	}
	if len(got) != keys {
		t.Errorf("pid %d has %d range keys, want its mappings' %d", p.PID, len(got), keys)
	}
	return byPath
}

// checkLookups looks every function of a file up in the words the maps
// hold, as the BPF walk does, and checks it finds the rule of its row.
func checkLookups(t *testing.T, maps *fakeUnwindMaps, ef *elf.File, exp expectedTable, words []uint32) {
	t.Helper()
	syms, _ := ef.Symbols()
	dyn, _ := ef.DynamicSymbols()
	n := 0
	for _, s := range append(syms, dyn...) {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 {
			continue
		}
		row, ok := exp.tbl.Lookup(s.Value)
		if !ok {
			continue
		}
		id, ok := unwind.LookupWords(words, exp.buckets, uint32(s.Value-exp.tbl.Base))
		maps.mu.Lock()
		r := maps.rules[uint32(id)]
		maps.mu.Unlock()
		if got := (unwind.Rule{CFAOffset: r.CfaOffset, RBPOffset: r.RbpOffset, Kind: r.Kind}); !ok || got != row.Rule() {
			t.Errorf("%s at %#x: the maps give rule %+v (found %v), its row %+v", s.Name, s.Value, got, ok, row.Rule())
		}
		n++
	}
	if n == 0 {
		t.Errorf("no function of the file looked up")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInstallSharesTablesByFile: a process gets ranges for its program and
// its library, pointing at tables that resolve their functions; a second
// process mapping the same library (another copy, same build ID) shares
// its table instead of loading it again.
func TestInstallSharesTablesByFile(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	lib := unwindFixture(t, "libplugin.so")
	libCopy := filepath.Join(t.TempDir(), "libplugin-copy.so")
	copyFile(t, lib, libCopy)

	p1 := newProcess(100, 1, mapFile(t, unwindFixture(t, "chain-nofp"), 0x5555_0000_0000), mapFile(t, lib, 0x7f00_0000_0000))
	u.install(p1, alwaysAlive)
	r1 := checkInstalled(t, maps, p1)
	st := u.advance()
	if st.Tables != 2 || st.Processes != 1 {
		t.Fatalf("after one process: %d tables, %d processes; want 2 and 1", st.Tables, st.Processes)
	}
	gen := maps.gen
	if gen == 0 {
		t.Error("ranges generation not bumped after the install")
	}
	writes := maps.blockWrites

	p2 := newProcess(200, 1, mapFile(t, unwindFixture(t, "qsort-nofp"), 0x5600_0000_0000), mapFile(t, libCopy, 0x7f10_0000_0000))
	u.install(p2, alwaysAlive)
	r2 := checkInstalled(t, maps, p2)
	if st := u.advance(); st.Tables != 3 || st.Processes != 2 {
		t.Errorf("after two processes sharing a library: %d tables, %d processes; want 3 and 2", st.Tables, st.Processes)
	}
	if r1[lib].Table != r2[libCopy].Table {
		t.Errorf("the library's table is at word %d for one process, %d for the other", r1[lib].Table, r2[libCopy].Table)
	}
	qsortWords := len(expectTable(t, maps, unwindFixture(t, "qsort-nofp")).words)
	if blocks := maps.blockWrites - writes; blocks > qsortWords/blockWords+2 {
		t.Errorf("the second install wrote %d blocks; the program's table takes at most %d", blocks, qsortWords/blockWords+2)
	}
	if maps.gen <= gen {
		t.Error("ranges generation not bumped after the second install")
	}
}

// TestRemoveOnExit: an exited process loses its ranges and its entry, and
// the tables it shared stay for the processes still using them; the last
// one's exit leaves them loaded, idle.
func TestRemoveOnExit(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	lib := unwindFixture(t, "libplugin.so")
	p1 := newProcess(100, 1, mapFile(t, unwindFixture(t, "chain-nofp"), 0x5555_0000_0000), mapFile(t, lib, 0x7f00_0000_0000))
	p2 := newProcess(200, 3, mapFile(t, unwindFixture(t, "qsort-nofp"), 0x5600_0000_0000), mapFile(t, lib, 0x7f10_0000_0000))
	u.install(p1, alwaysAlive)
	u.install(p2, alwaysAlive)

	gen := maps.gen
	u.remove(p1.PID)
	if n := len(maps.rangesOf(p1.PID)); n != 0 {
		t.Errorf("%d ranges left of the exited process", n)
	}
	if _, ok := maps.procs[p1.PID]; ok {
		t.Error("the exited process is still in unwind_procs")
	}
	if maps.gen <= gen {
		t.Error("ranges generation not bumped at the exit")
	}
	checkInstalled(t, maps, p2) // its library's table untouched
	if st := u.advance(); st.Tables != 3 || st.Idle != 1 || st.Processes != 1 {
		t.Errorf("after one exit: %d tables, %d idle, %d processes; want 3, 1 (the exited program's), 1", st.Tables, st.Idle, st.Processes)
	}

	// An exit lost to a full ring buffer is found at the next drain.
	u.retain(func(pid, execSeq uint32) bool { return pid != p2.PID })
	if n := len(maps.rangesOf(p2.PID)); n != 0 || len(maps.procs) != 0 {
		t.Errorf("after retain: %d ranges and %d processes left", n, len(maps.procs))
	}
	if st := u.advance(); st.Tables != 3 || st.Idle != 3 || st.Processes != 0 {
		t.Errorf("after every exit: %d tables, %d idle, %d processes; want 3 idle, none", st.Tables, st.Idle, st.Processes)
	}

	// A process that exits while its tables are built is not left installed.
	p3 := newProcess(300, 1, mapFile(t, unwindFixture(t, "burst"), 0x5700_0000_0000))
	u.install(p3, func(uint32, uint32) bool { return false })
	if n := len(maps.rangesOf(p3.PID)); n != 0 || len(maps.procs) != 0 {
		t.Errorf("a process gone during its install kept %d ranges", n)
	}
}

// TestRefreshAfterLibraryAppears: a process whose walks leave its known
// ranges has its mappings read again at once the first time, then not
// before refreshFirst; the new snapshot, with a library loaded since, adds
// the library's range and table and keeps the program's.
func TestRefreshAfterLibraryAppears(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	prog := mapFile(t, unwindFixture(t, "dlopen-main"), 0x5555_0000_0000)
	p := newProcess(100, 2, prog)
	u.install(p, alwaysAlive)
	before := checkInstalled(t, maps, p)

	if u.needsRefresh(p.PID, 1) || u.needsRefresh(999, 2) {
		t.Error("refresh asked for another image or an unknown process")
	}
	if !u.needsRefresh(p.PID, p.ExecSeq) {
		t.Fatal("the first ask does not refresh")
	}
	if u.needsRefresh(p.PID, p.ExecSeq) {
		t.Error("a second ask at once refreshes again")
	}
	// ... but is not forgotten: it is made once the wait is over.
	if due := u.dueRefreshes(); len(due) != 0 {
		t.Errorf("deferred ask made at once: %v", due)
	}
	u.mu.Lock()
	u.installs[p.PID].installed = time.Now().Add(-2 * refreshFirst)
	u.mu.Unlock()
	if due := u.dueRefreshes(); len(due) != 1 || due[0] != (model.ProcessKey{PID: p.PID, ExecSeq: p.ExecSeq}) {
		t.Errorf("deferred ask after the wait: %v, want pid %d", due, p.PID)
	}
	if due := u.dueRefreshes(); len(due) != 0 {
		t.Errorf("deferred ask made twice: %v", due)
	}

	lib := unwindFixture(t, "libplugin.so")
	after := newProcess(100, 2, prog, mapFile(t, lib, 0x7f00_0000_0000))
	u.enqueue(after)
	q := <-u.queue // what run would take
	if !u.installFrom(q, alwaysAlive, true) {
		t.Fatal("install of the refreshed snapshot did not finish")
	}
	got := checkInstalled(t, maps, after)
	if got[prog[0].Path] != before[prog[0].Path] {
		t.Errorf("the program's range changed: %+v, was %+v", got[prog[0].Path], before[prog[0].Path])
	}
	if st := u.advance(); st.Tables != 2 || st.Processes != 1 {
		t.Errorf("after the refresh: %d tables, %d processes; want 2 and 1", st.Tables, st.Processes)
	}

	// An older snapshot installed late does not undo the newer one.
	u.installFrom(queuedInstall{p, q.seq - 1}, alwaysAlive, true)
	checkInstalled(t, maps, after)

	// A read that found a new range starts the waits again, as a JIT
	// compiler warming up maps page after page: the next ask refreshes at
	// once.
	if !u.needsRefresh(p.PID, p.ExecSeq) {
		t.Error("no refresh at once after a read that found a library")
	}
	// A read that finds nothing new does not: the ask after it waits
	// twice refreshFirst, then refreshes.
	u.enqueue(after)
	if q = <-u.queue; !u.installFrom(q, alwaysAlive, true) {
		t.Fatal("install of the same snapshot again did not finish")
	}
	if u.needsRefresh(p.PID, p.ExecSeq) {
		t.Error("refreshed again at once after a read that found nothing new")
	}
	u.mu.Lock()
	u.installs[p.PID].installed = time.Now().Add(-2 * refreshFirst)
	u.mu.Unlock()
	if !u.needsRefresh(p.PID, p.ExecSeq) {
		t.Error("no refresh after twice refreshFirst")
	}
}

// A JIT compiler's reserve after its code is installed to be walked by
// frame pointer as code not read yet (it asks for the mappings), so that
// a walk through pages mapped since needs no VMA lookup.
func TestCodeReserveInstalled(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	prog := mapFile(t, unwindFixture(t, "dlopen-main"), 0x5555_0000_0000)
	code := model.Mapping{Start: 0x7f00_0000_0000, Limit: 0x7f00_0004_0000}
	reserve := model.AddressRange{Start: code.Limit, Limit: code.Limit + 500<<20}
	p := newProcess(100, 2, append(prog, code))
	p.CodeReserves = []model.AddressRange{reserve}
	u.install(p, alwaysAlive)
	var codeKeys, reserveKeys int
	for _, r := range maps.rangesOf(p.PID) {
		switch {
		case r.Start == code.Start && r.Limit == code.Limit && r.Kind == uint32(bpf.SamplerRangeKindRANGE_FP):
			codeKeys++
		case r.Start == reserve.Start && r.Limit == reserve.Limit && r.Kind == uint32(bpf.SamplerRangeKindRANGE_FP_UNREAD):
			reserveKeys++
		}
	}
	if codeKeys == 0 || reserveKeys == 0 {
		t.Errorf("keys of the code %d (want walked by frame pointer), of the reserve %d (want not read yet)", codeKeys, reserveKeys)
	}
}
