package collector

import (
	"debug/elf"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

func TestRangeKeysCoverExactly(t *testing.T) {
	for _, r := range [][2]uint64{{0x1000, 0x2000}, {0x7f0000001000, 0x7f0000235000}, {0x401000, 0x402001}, {0, 0x10}} {
		var covered uint64
		next := r[0]
		for _, k := range rangeKeys(42, r[0], r[1]) {
			bits := k.Prefixlen - 32
			size := uint64(1) << (64 - bits)
			if bits == 0 {
				t.Fatal("whole address space")
			}
			var raw [8]byte
			for i := range raw {
				raw[i] = byte(k.AddrBe >> (8 * i))
			}
			start := uint64(0)
			for _, b := range raw {
				start = start<<8 | uint64(b)
			}
			if start != next || start%size != 0 {
				t.Fatalf("%#x-%#x: key at %#x/%d, want %#x aligned", r[0], r[1], start, bits, next)
			}
			next += size
			covered += size
		}
		if next != r[1] || covered != r[1]-r[0] {
			t.Fatalf("%#x-%#x: covered up to %#x", r[0], r[1], next)
		}
	}
}

func TestShardAllocator(t *testing.T) {
	a := shardAllocator{free: []shard{{0, 100}}}
	s1, _ := a.take(30)
	s2, _ := a.take(30)
	s3, _ := a.take(40)
	if _, ok := a.take(1); ok {
		t.Fatal("took from a full array")
	}
	a.release(s2)
	if _, ok := a.take(31); ok {
		t.Fatal("took 31 from a hole of 30")
	}
	a.release(s1)
	a.release(s3)
	if len(a.free) != 1 || a.free[0] != (shard{0, 100}) {
		t.Fatalf("free list not merged: %v", a.free)
	}
}

// exeSymbols names addresses of a fixture's own code.
type exeSymbols struct {
	path  string
	syms  []elf.Symbol
	loads []progLoad
}

func loadExeSymbols(t *testing.T, path string) *exeSymbols {
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
	syms = slices.DeleteFunc(syms, func(s elf.Symbol) bool { return elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 })
	sort.Slice(syms, func(i, j int) bool { return syms[i].Value < syms[j].Value })
	e := &exeSymbols{path: path, syms: syms}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			e.loads = append(e.loads, progLoad{p.Off, p.Vaddr, p.Filesz, p.Flags&elf.PF_X != 0})
		}
	}
	return e
}

// names returns the function of every frame in the fixture's executable,
// leaf first; frames elsewhere (libc) are left out.
func (e *exeSymbols) names(p *model.Process, pcs []uint64) []string {
	var out []string
	for i, pc := range pcs {
		if i > 0 {
			pc-- // a return address: look up the call
		}
		m := p.FindMapping(pc)
		if m == nil || m.Path != e.path {
			continue
		}
		bias, ok := loadBias(m, e.loads)
		if !ok {
			continue
		}
		v := pc - bias
		j := sort.Search(len(e.syms), func(j int) bool { return e.syms[j].Value > v }) - 1
		if j >= 0 && v < e.syms[j].Value+max(e.syms[j].Size, 1) {
			out = append(out, e.syms[j].Name)
		} else {
			out = append(out, fmt.Sprintf("%#x", v))
		}
	}
	return out
}

// hasChain reports whether want appears in names in order (other frames may
// sit between), and the last frame is the last of want.
func hasChain(names, want []string) bool {
	if len(names) == 0 || !strings.Contains(names[len(names)-1], want[len(want)-1]) {
		return false
	}
	i := 0
	for _, n := range names {
		if i < len(want) && (n == want[i] || !strings.HasPrefix(want[i], "level") && strings.Contains(n, want[i])) {
			i++
		}
	}
	return i == len(want)
}

// TestUnwindFullChains samples fixtures built without frame pointers (and
// one with, and a Go binary walked by frame pointers) and checks that at
// least 99% of the samples the unwinder walked end at _start with the known
// chain of calls, including those through libc's qsort.
func TestUnwindFullChains(t *testing.T) {
	cases := []struct {
		bin string
		// chain is what a sample in the hot function must show, leaf to
		// root, as substrings of symbol names; others must end in a root.
		chain []string
		roots []string
	}{
		{"qsort-nofp", []string{"cmp_items", "sort_round", "run", "main", "_start"}, cRoots},
		{"qsort-fp", []string{"cmp_items", "sort_round", "run", "main", "_start"}, cRoots},
		{"chain-nofp", chainLevels(), cRoots},
		{"chain-debugframe", chainLevels(), cRoots},
		{"sort-cpp", []string{"SlowclE", "sort_round", "run", "main", "_start"}, cRoots},
		{"sort-rust", []string{"slow_cmp", "sort_round", "3run", "4main", "main", "_start"}, cRoots},
		// A 600,000-byte frame: a CFA offset past 16 bits.
		{"bigframe", []string{"leaf", "big", "run", "main", "_start"}, cRoots},
		// Assembly with no CFI row is crossed by its frame pointer.
		{"nocfi", []string{"hot", "asm_trampoline", "run", "main", "_start"}, cRoots},
		// JIT code (anonymous executable memory) is crossed by its frame pointer.
		{"jit", []string{"hot", "run", "main", "_start"}, cRoots},
		// Go: rows from .gopclntab; goroutines end at goexit, the
		// runtime's own threads at mstart, and its g0 stacks at the switch
		// to them (mcall, or morestack when sysmon preempts the locked
		// fixture), whose frame pointer is 0.
		{"../hotspot/hotspot-go", []string{"main.", "main.run", "main.main", "runtime.main", "runtime.goexit"},
			[]string{"runtime.goexit", "runtime.mstart", "runtime.mcall", "runtime.morestack"}},
	}
	for _, tc := range cases {
		t.Run(tc.bin, func(t *testing.T) {
			path, _ := filepath.Abs(filepath.Join("../testdata/unwind", tc.bin))
			syms := loadExeSymbols(t, path)
			cmd := startFixture(t, path, untilKilled)
			pid := uint32(cmd.Process.Pid)
			c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 499})
			var walked, good, kernelFP, hot uint64
			var bad []string
			// About 750 samples, and the samples the kernel walks while
			// the tables are built stay few: building takes CPU time,
			// and the fixture gets about as much meanwhile, loaded or not.
			drainUntilCPU(t, c, pid, 1500*time.Millisecond, func(b *model.Batch) {
				checkAccounting(t, b)
				for _, s := range b.Samples {
					if s.PID != pid || s.UserLost != model.LostNone {
						continue
					}
					if s.UserSource != model.SourceUnwinder {
						kernelFP += s.Count
						continue
					}
					walked += s.Count
					names := syms.names(b.Processes[s.Key()], s.User)
					isHot := len(names) > 0 && strings.Contains(names[0], tc.chain[0])
					if isHot {
						hot += s.Count
					}
					if s.UserEnd == model.UnwindComplete && endsInRoot(names, tc.roots) && (!isHot || hasChain(names, tc.chain)) {
						good += s.Count
					} else if len(bad) < 5 {
						bad = append(bad, fmt.Sprintf("%s %d frames: %s", s.UserEnd, len(s.User), strings.Join(names, ";")))
					}
				}
			})
			t.Logf("%s: %d of %d unwound samples complete with the chain (%.2f%%), %d in the hot function; %d walked by the kernel before the tables were in",
				tc.bin, good, walked, 100*float64(good)/float64(max(walked, 1)), hot, kernelFP)
			if walked < 100 {
				t.Fatalf("only %d samples unwound", walked)
			}
			if good*100 < walked*99 {
				t.Errorf("%d of %d samples complete; some that are not:\n%s", good, walked, strings.Join(bad, "\n"))
			}
			if hot*2 < walked {
				t.Errorf("only %d of %d samples in the hot function", hot, walked)
			}
			if kernelFP*10 > walked {
				t.Errorf("%d samples left to the kernel's walk, against %d unwound", kernelFP, walked)
			}
		})
	}
}

var cRoots = []string{"_start"}

// chainLevels is chain-nofp's full chain: leaf, level0 ... level27, main.
func chainLevels() []string {
	out := []string{"leaf"}
	for i := range 28 {
		out = append(out, fmt.Sprintf("level%d", i))
	}
	return append(out, "main", "_start")
}

func endsInRoot(names, roots []string) bool {
	if len(names) == 0 {
		return false
	}
	for _, r := range roots {
		if strings.Contains(names[len(names)-1], r) {
			return true
		}
	}
	return false
}

// A library loaded after the first snapshot (dlopen) is found when the
// stacks leave the known ranges, and unwound through from then on.
func TestUnwindAfterDlopen(t *testing.T) {
	path, _ := filepath.Abs("../testdata/unwind/dlopen-main")
	cmd := startFixture(t, path, untilKilled)
	pid := uint32(cmd.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 499})
	// The library is loaded half a second (of wall-clock time) in; then
	// the re-read of the mappings gets a moment, in the fixture's CPU time.
	waitMapped(t, int(pid), "libplugin.so")
	drainUntilCPU(t, c, pid, 300*time.Millisecond, func(*model.Batch) {})
	var walked, complete uint64
	ends := map[model.UnwindEnd]uint64{}
	drainUntilCPU(t, c, pid, 500*time.Millisecond, func(b *model.Batch) { countDlopened(b, pid, &walked, &complete, ends) })
	t.Logf("%d of %d samples complete with the leaf in the dlopened library; ends %v", complete, walked, ends)
	if walked < 100 || complete*100 < walked*95 {
		t.Errorf("%d of %d samples complete through the dlopened library; ends %v", complete, walked, ends)
	}
}

func countDlopened(b *model.Batch, pid uint32, walked, complete *uint64, ends map[model.UnwindEnd]uint64) {
	for _, s := range b.Samples {
		if s.PID != pid || s.UserSource != model.SourceUnwinder {
			continue
		}
		*walked += s.Count
		ends[s.UserEnd] += s.Count
		p := b.Processes[s.Key()]
		if s.UserEnd != model.UnwindComplete || len(s.User) < 6 {
			continue
		}
		// main -> call_plugin -> plugin_work (library) -> host_callback -> plugin_spin (library)
		if m := p.FindMapping(s.User[0]); m != nil && strings.HasSuffix(m.Path, "libplugin.so") {
			*complete += s.Count
		}
	}
}

// Tables beyond the budget are not loaded: counted, and the stacks through
// them end marked instead of guessed.
func TestUnwindBudget(t *testing.T) {
	path, _ := filepath.Abs("../testdata/unwind/qsort-nofp")
	cmd := startFixture(t, path, untilKilled)
	pid := uint32(cmd.Process.Pid)
	// Room for the program's own rows, not for libc's 28,000.
	c := newCollector(t, Config{PIDs: []uint32{pid}, UnwindTableBytes: 8 * 2000, FrequencyHz: 499})
	var walked, noTable, truncated uint64
	var tables model.UnwindTableStats
	drainUntilCPU(t, c, pid, 300*time.Millisecond, func(b *model.Batch) {
		checkAccounting(t, b)
		tables = b.Stats.Unwind.Tables
		for _, s := range b.Samples {
			if s.PID != pid || s.UserSource != model.SourceUnwinder {
				continue
			}
			walked += s.Count
			if s.UserEnd == model.UnwindNoTable {
				noTable += s.Count
			}
			if s.UserTruncated {
				truncated += s.Count
			}
		}
	})
	if tables.NotLoaded == 0 {
		t.Errorf("no table reported as over the budget: %+v", tables)
	}
	// Nearly every sample is in cmp_items, called from libc's qsort.
	if walked < 20 || noTable*10 < walked*9 || truncated < noTable {
		t.Errorf("%d walks, %d ended at a table over the budget, %d marked truncated", walked, noTable, truncated)
	}
}

// A second collector reads the tables the first one built from the disk
// cache instead of parsing the files again.
func TestUnwindCacheAcrossRestart(t *testing.T) {
	path, _ := filepath.Abs("../testdata/unwind/qsort-nofp")
	cmd := startFixture(t, path, untilKilled)
	pid := uint32(cmd.Process.Pid)
	dir := t.TempDir()
	for run := range 2 {
		c := newCollector(t, Config{PIDs: []uint32{pid}, UnwindCacheDir: dir})
		// However long the tables take on a loaded machine.
		_, st := waitInstalled(t, c, pid)
		c.Close()
		if run == 0 && (st.CacheHits != 0 || st.Tables == 0) {
			t.Errorf("first run: %+v", st)
		}
		// The program and libc at least (the loader too).
		if run == 1 && st.CacheHits < 2 {
			t.Errorf("second run read %d tables from the cache: %+v", st.CacheHits, st)
		}
	}
}

// Each CPU keeps the ranges it looked up for a process across samples, and
// the rule it found at each return address; a change to the ranges (here:
// the program's own table marked as not loaded, then put back) must reach
// the very next walks, not wait for an exec. (With the rules kept by address
// alone, walks went on completing after the change.)
func TestCachedRangesFollowChanges(t *testing.T) {
	path, _ := filepath.Abs("../testdata/unwind/chain-nofp")
	cmd := startFixture(t, path, untilKilled)
	pid := uint32(cmd.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 499})
	ends := func() map[model.UnwindEnd]uint64 {
		t.Helper()
		if _, err := c.Drain(); err != nil { // what straddles the change
			t.Fatal(err)
		}
		out := map[model.UnwindEnd]uint64{}
		drainUntilCPU(t, c, pid, 400*time.Millisecond, func(b *model.Batch) {
			for _, s := range b.Samples {
				if s.PID == pid && s.UserSource == model.SourceUnwinder {
					out[s.UserEnd] += s.Count
				}
			}
		})
		return out
	}
	// setKind rewrites the kind of every range of the process whose kind
	// is from, and returns how many it rewrote.
	setKind := func(from, to uint32) int {
		u := c.unwind
		u.mu.Lock()
		defer u.mu.Unlock()
		n := 0
		for _, k := range u.installs[pid].keys {
			var r bpf.SamplerUnwindRange
			if err := c.objs.UnwindRanges.Lookup(&k, &r); err != nil {
				t.Fatal(err)
			}
			if r.Kind == from {
				r.Kind = to
				if err := c.objs.UnwindRanges.Put(&k, &r); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
		u.rangesChangedLocked()
		return n
	}
	waitInstalled(t, c, pid)
	if e := ends(); e[model.UnwindComplete] < 100 || e[model.UnwindNoTable] != 0 {
		t.Fatalf("before the change: %v", e)
	}
	rows, noTable := uint32(bpf.SamplerRangeKindRANGE_ROWS), uint32(bpf.SamplerRangeKindRANGE_NO_TABLE)
	if setKind(rows, noTable) == 0 {
		t.Fatal("no ranges with rows")
	}
	if e := ends(); e[model.UnwindNoTable] < 100 || e[model.UnwindComplete] != 0 {
		t.Errorf("after marking the tables as not loaded: %v; want every walk to end at \"no table\"", e)
	}
	setKind(noTable, rows)
	if e := ends(); e[model.UnwindComplete] < 100 || e[model.UnwindNoTable] != 0 {
		t.Errorf("after putting them back: %v", e)
	}
}

// Ember's unwinder goes past the kernel's 127 frames: a 200-level recursion
// comes out whole, to _start; one of 500 levels is cut at its limit of 378
// frames (three stored segments) and marked.
func TestUnwindDeepStacks(t *testing.T) {
	const maxUserDepth = int(bpf.SamplerStackLayoutSTACK_SEGMENT * bpf.SamplerStackLayoutUSER_SEGMENTS)
	path, _ := filepath.Abs("../testdata/hotspot/deep")
	syms := loadExeSymbols(t, path)
	for _, levels := range []int{200, 500} {
		t.Run(fmt.Sprint(levels), func(t *testing.T) {
			cmd := startFixture(t, path, untilKilled, fmt.Sprint(levels))
			pid := uint32(cmd.Process.Pid)
			c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 499})
			var walked, good uint64
			var bad []string
			drainUntilCPU(t, c, pid, 500*time.Millisecond, func(b *model.Batch) {
				checkAccounting(t, b)
				for _, s := range b.Samples {
					if s.PID != pid || s.UserLost != model.LostNone || s.UserSource != model.SourceUnwinder {
						continue
					}
					walked += s.Count
					names := syms.names(b.Processes[s.Key()], s.User)
					descents := 0
					for _, n := range names {
						if strings.Contains(n, "descend") {
							descents++
						}
					}
					var ok bool
					if levels < 300 {
						// bottom, descend x levels+1, main, libc's two, _start.
						ok = s.UserEnd == model.UnwindComplete && !s.UserTruncated && descents == levels+1 &&
							strings.Contains(names[0], "bottom") && endsInRoot(names, cRoots)
					} else {
						ok = s.UserEnd == model.UnwindDepth && s.UserTruncated && len(s.User) == maxUserDepth && descents >= maxUserDepth-2
					}
					if ok {
						good += s.Count
					} else if len(bad) < 3 {
						bad = append(bad, fmt.Sprintf("%s, truncated %v, %d frames, %d descend", s.UserEnd, s.UserTruncated, len(s.User), descents))
					}
				}
			})
			t.Logf("%d levels: %d of %d unwound samples as expected", levels, good, walked)
			if walked < 100 || good*100 < walked*99 {
				t.Errorf("%d of %d samples as expected; some that are not:\n%s", good, walked, strings.Join(bad, "\n"))
			}
		})
	}
}
