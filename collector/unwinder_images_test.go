package collector

import (
	"debug/elf"
	"slices"
	"testing"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/unwind"
	"github.com/ember-profiler/ember/model"
)

// samplerRange is what install.h puts in the trie for a mapping of a file
// it was offered: the same arithmetic, in Go.
func samplerRange(fu bpf.SamplerFileUnwind, start, limit, off uint64) (bpf.SamplerUnwindRange, bool) {
	r := bpf.SamplerUnwindRange{Start: start, Limit: limit, Table: fu.Table, Buckets: fu.Buckets, Kind: fu.Kind}
	if fu.Kind != uint32(bpf.SamplerRangeKindRANGE_ROWS) {
		return r, true
	}
	found := -1
	for i := range int(fu.Segments) {
		if fu.Seg[i].PageOff == off {
			found = i
			break
		}
	}
	for i := range int(fu.Segments) {
		if found < 0 && off >= fu.Seg[i].PageOff && off < fu.Seg[i].EndOff {
			found = i
		}
	}
	if found < 0 {
		return r, false
	}
	r.Bias = start - off + fu.Seg[found].Delta
	return r, true
}

// The sampler, given the offered file, installs exactly the ranges this
// side installs from a /proc read.
func TestOfferedFilesGiveTheSameRanges(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	p := newProcess(100, 1, mapFile(t, unwindFixture(t, "chain-nofp"), 0x5555_0000_0000), mapFile(t, unwindFixture(t, "libplugin.so"), 0x7f00_0000_0000))
	u.install(p, alwaysAlive)
	checkOffered(t, maps, p)
}

// A file laid out as BOLT leaves librustc_driver and libLLVM (five
// PT_LOADs, code in a second executable segment of another bias) is
// offered too: otherwise every new rustc walked them by frame-pointer
// guesses, cut at their first frameless caller, until its mappings were
// read and installed here.
func TestOfferedFileWithTwoExecutableSegments(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	lib := mapFile(t, unwindFixture(t, "libsplit.so"), 0x7f00_0000_0000)
	if len(lib) != 2 {
		t.Fatalf("libsplit.so maps %d executable segments, want 2", len(lib))
	}
	p := newProcess(100, 1, lib)
	u.install(p, alwaysAlive)
	checkInstalled(t, maps, p)
	checkOffered(t, maps, p)

	// far_leaf, in the second executable segment, finds its row through
	// the range the sampler would install.
	ef, err := elf.NewFile(lib[0].File)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(syms, func(s elf.Symbol) bool { return s.Name == "far_leaf" })
	if i < 0 {
		t.Fatal("libsplit.so has no far_leaf")
	}
	far := lib[1]
	var pc uint64
	for _, pr := range ef.Progs {
		if pr.Type == elf.PT_LOAD && pr.Off&^0xfff == far.Offset {
			pc = far.Start + syms[i].Value - pr.Vaddr&^0xfff
		}
	}
	key, _ := fileKeyOf(&far)
	r, _ := samplerRange(maps.files[key], far.Start, far.Limit, far.Offset)
	exp := expectTable(t, maps, far.Path)
	want, ok := exp.tbl.Lookup(syms[i].Value)
	if !ok {
		t.Fatal("far_leaf has no row in the table")
	}
	id, ok := unwind.LookupWords(tableWords(maps, r, len(exp.words)), exp.buckets, uint32(pc-r.Bias))
	maps.mu.Lock()
	got := maps.rules[uint32(id)]
	maps.mu.Unlock()
	if !ok || (unwind.Rule{CFAOffset: got.CfaOffset, RBPOffset: got.RbpOffset, Kind: got.Kind}) != want.Rule() {
		t.Errorf("far_leaf through the sampler's range: rule %+v (found %v), want %+v", got, ok, want.Rule())
	}
}

// checkOffered checks that each of p's files is offered to the sampler and
// that the range it would install for each mapping is the one installed.
func checkOffered(t *testing.T, maps *fakeUnwindMaps, p *model.Process) {
	t.Helper()
	if len(maps.files) == 0 {
		t.Fatal("no file offered to the sampler")
	}
	for _, m := range p.Mappings {
		key, ok := fileKeyOf(&m)
		if !ok {
			t.Fatalf("%s: no file key", m.Path)
		}
		fu, ok := maps.files[key]
		if !ok {
			t.Fatalf("%s not offered", m.Path)
		}
		got, ok := samplerRange(fu, m.Start, m.Limit, m.Offset)
		if !ok {
			t.Fatalf("%s: the sampler finds no segment for offset %#x", m.Path, m.Offset)
		}
		keys := rangeKeys(p.PID, m.Start, m.Limit)
		want, ok := maps.ranges[keys[0]]
		if !ok {
			t.Fatalf("%s: not installed", m.Path)
		}
		if got != want {
			t.Errorf("%s: the sampler would install %+v, this side installed %+v", m.Path, got, want)
		}
	}
}

// What the sampler installed goes at exit, when a table it used is freed,
// and when the process is found gone; the offers go with their table.
func TestSamplerInstallsTakenBack(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	lib := mapFile(t, unwindFixture(t, "libplugin.so"), 0x7f00_0000_0000)
	u.install(newProcess(100, 1, lib), alwaysAlive)
	key, _ := fileKeyOf(&lib[0])
	fu := maps.files[key]

	// The sampler's install of three images of the library.
	record := func(pid, execSeq uint32, base uint64) {
		m := lib[0]
		start, limit := m.Start-0x7f00_0000_0000+base, m.Limit-0x7f00_0000_0000+base
		r, _ := samplerRange(fu, start, limit, m.Offset)
		keys := rangeKeys(pid, start, limit)
		ranges := make([]bpf.SamplerUnwindRange, len(keys))
		for i := range ranges {
			ranges[i] = r
		}
		maps.putRanges(keys, ranges)
		maps.putProc(pid, &bpf.SamplerUnwindProc{ExecSeq: execSeq})
		rec := bpf.SamplerImageRecord{ExecSeq: execSeq, Ranges: 1}
		rec.R[0] = bpf.SamplerImageRange{Start: start, Limit: limit, Offset: m.Offset, File: key, Table: fu.Table, Installed: 1}
		maps.images[pid] = rec
	}
	record(200, 1, 0x7f10_0000_0000)
	record(300, 2, 0x7f20_0000_0000)
	record(400, 1, 0x7f30_0000_0000)

	if rec := u.remove(200); rec == nil || rec.ExecSeq != 1 {
		t.Errorf("remove gave back %+v, want the record of exec 1", rec)
	}
	if n := len(maps.rangesOf(200)); n != 0 {
		t.Errorf("%d ranges left of the exited process", n)
	}
	if _, ok := maps.procs[200]; ok {
		t.Error("the exited process is still in unwind_procs")
	}

	// Process 300 now runs another image; 400 is alive.
	u.mu.Lock()
	u.sweepImagesLocked(func(pid uint32) (uint32, uint64, bool) {
		return map[uint32]uint32{300: 3, 400: 1}[pid], 0, true
	}, nil)
	u.mu.Unlock()
	if _, ok := maps.images[300]; ok || len(maps.rangesOf(300)) != 0 {
		t.Error("an image replaced by exec kept what the sampler installed")
	}
	if _, ok := maps.images[400]; !ok || len(maps.rangesOf(400)) == 0 {
		t.Fatal("a live image lost what the sampler installed")
	}

	// Its table goes: first the offer, then, as the shard is freed, 400's ranges.
	u.mu.Lock()
	tbl := u.tableAtLocked(fu.Table)
	u.byStart = nil
	if tbl == nil {
		u.mu.Unlock()
		t.Fatal("no table at the offered start")
	}
	u.drop(tbl)
	u.mu.Unlock()
	if _, ok := maps.files[key]; ok {
		t.Error("a dropped table is still offered to the sampler")
	}
	u.advance()
	if _, ok := maps.images[400]; ok || len(maps.rangesOf(400)) != 0 {
		t.Error("ranges of a freed table were left in the sampler's install")
	}
}

// An image the sampler installed whole is not installed again when read
// from /proc; one it installed in part, or whose mappings grew, is.
func TestSamplerInstallKept(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	lib := mapFile(t, unwindFixture(t, "libplugin.so"), 0x7f00_0000_0000)
	u.install(newProcess(100, 1, lib), alwaysAlive)
	key, _ := fileKeyOf(&lib[0])
	fu := maps.files[key]
	m := lib[0]
	record := func(pid uint32, unknown uint32) {
		r, _ := samplerRange(fu, m.Start, m.Limit, m.Offset)
		keys := rangeKeys(pid, m.Start, m.Limit)
		ranges := make([]bpf.SamplerUnwindRange, len(keys))
		for i := range ranges {
			ranges[i] = r
		}
		maps.putRanges(keys, ranges)
		maps.putProc(pid, &bpf.SamplerUnwindProc{ExecSeq: 1})
		rec := bpf.SamplerImageRecord{ExecSeq: 1, Ranges: 1, Unknown: unknown}
		rec.R[0] = bpf.SamplerImageRange{Start: m.Start, Limit: m.Limit, Offset: m.Offset, File: key, Table: fu.Table, Installed: 1}
		maps.images[pid] = rec
	}
	puts := func() int {
		maps.mu.Lock()
		defer maps.mu.Unlock()
		return maps.rangePuts
	}

	record(200, 0)
	before := puts()
	// The loader probe's out-of-line page is in every probed process.
	xol := model.Mapping{Start: 0x7fff_f000_0000, Limit: 0x7fff_f000_1000, Path: "[uprobes]"}
	u.install(newProcess(200, 1, append(append([]model.Mapping(nil), lib...), xol)), alwaysAlive)
	if n := puts() - before; n != 0 {
		t.Errorf("a whole sampler install was installed again (%d ranges put)", n)
	}
	if got := u.stats.SamplerInstallsKept; got != 1 {
		t.Errorf("kept installs: %d, want 1", got)
	}
	// Read again after a dlopen: the new mapping needs this side's install.
	plugin := mapFile(t, unwindFixture(t, "chain-nofp"), 0x5555_0000_0000)
	u.install(newProcess(200, 1, append(append([]model.Mapping(nil), lib...), plugin...)), alwaysAlive)
	if n := puts() - before; n == 0 {
		t.Error("a mapping the sampler did not install got no range")
	}
	u.remove(200)
	if _, ok := maps.procs[200]; ok || len(maps.rangesOf(200)) != 0 {
		t.Error("the exit left ranges or the unwind_procs entry")
	}

	// Part of the image walked by frame pointer only: this side installs.
	record(300, 1)
	before = puts()
	u.install(newProcess(300, 1, lib), alwaysAlive)
	if puts() == before {
		t.Error("a partial sampler install was left as it was")
	}

	// A kept install holds its table as this side's installs do, and goes
	// at exit with the record, unwind_procs included.
	refs := func() int { return tableRefs(t, u, fu.Table) }
	record(400, 0)
	before = puts()
	held := refs()
	u.install(newProcess(400, 1, lib), alwaysAlive)
	if puts() != before || refs() != held+1 {
		t.Errorf("kept install: %d ranges put, table references %d -> %d", puts()-before, held, refs())
	}
	if rec := u.remove(400); rec == nil {
		t.Error("the exit did not give back the sampler's record")
	}
	if refs() != held {
		t.Errorf("the exit left the table with %d references, want %d", refs(), held)
	}
	if _, ok := maps.procs[400]; ok || len(maps.rangesOf(400)) != 0 {
		t.Error("the exit of a kept install left ranges or the unwind_procs entry")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, pid := range []uint32{200, 400} {
		if u.installs[pid] != nil {
			t.Errorf("process %d's install outlived its exit", pid)
		}
	}
}

// An image the sampler installed whole from plain files is not read at all
// (plainFiles.covers); its table is still referenced while it runs, kept
// by retain while the BPF side says it runs, and released when it stops.
func TestCoveredImageHoldsItsTable(t *testing.T) {
	u, maps := newFakeTables(t, 1<<20)
	lib := mapFile(t, unwindFixture(t, "libplugin.so"), 0x7f00_0000_0000)
	first := newProcess(100, 1, lib)
	u.install(first, alwaysAlive)
	var pf plainFiles
	pf.learn(first)
	key, _ := fileKeyOf(&lib[0])
	fu := maps.files[key]
	m := lib[0]
	r, _ := samplerRange(fu, m.Start, m.Limit, m.Offset)
	rec := bpf.SamplerImageRecord{ExecSeq: 1, Ranges: 1}
	rec.R[0] = bpf.SamplerImageRange{Start: m.Start, Limit: m.Limit, Offset: m.Offset, File: key, Table: fu.Table, Installed: 1}
	maps.images[500] = rec
	maps.putRanges(rangeKeys(500, m.Start, m.Limit), []bpf.SamplerUnwindRange{r})
	refs := func() int { return tableRefs(t, u, fu.Table) }
	u.remove(100) // the first reader exits: the table would be idle
	if refs() != 0 {
		t.Fatalf("after the reader's exit: %d references, want 0", refs())
	}
	if !pf.covers(u, model.ProcessKey{PID: 500, ExecSeq: 1}) {
		t.Fatal("the sampler's whole install from a plain file was not covered")
	}
	if refs() != 1 {
		t.Errorf("a covered image holds %d references to its table, want 1", refs())
	}
	running := true
	u.currentImage = func(pid uint32) (uint32, uint64, bool) { return 1, 0, pid == 500 && running }
	neverRead := func(pid, execSeq uint32) bool { return false } // the tracker never saw it
	u.retain(neverRead)
	if refs() != 1 {
		t.Error("retain dropped a covered image that still runs")
	}
	running = false // its exit notification lost
	u.retain(neverRead)
	if refs() != 0 {
		t.Errorf("after its exit went unheard: %d references, want 0", refs())
	}
}

// tableRefs is how many installs reference the loaded table at word start.
func tableRefs(t *testing.T, u *unwindTables, start uint32) int {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, tbl := range u.tables {
		if tbl.start == start && tbl.count > 0 {
			return tbl.refs
		}
	}
	t.Fatal("the library's table is gone")
	return 0
}
