package symbolizer

import (
	"bytes"
	"debug/elf"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"testing"

	"github.com/ember-profiler/ember/model"
)

// hostELFFiles lists up to max regular ELF files of the host's program and
// library directories and the Go toolchain, in a stable order.
func hostELFFiles(t testing.TB, max int) []string {
	t.Helper()
	dirs := []string{"/usr/bin", "/usr/lib/x86_64-linux-gnu", filepath.Join(runtime.GOROOT(), "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH)}
	var out []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			magic := make([]byte, 4)
			_, err = io.ReadFull(f, magic)
			f.Close()
			if err == nil && bytes.Equal(magic, []byte(elf.ELFMAG)) {
				out = append(out, path)
			}
		}
	}
	sort.Strings(out)
	if len(out) > max {
		// Every k-th, so that all directories are represented.
		k := float64(len(out)) / float64(max)
		picked := make([]string, 0, max)
		for i := 0; i < max; i++ {
			picked = append(picked, out[int(float64(i)*k)])
		}
		out = picked
	}
	return out
}

// heapInUse is the live Go heap after two collections.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// symbolizeHostFiles names addresses spread over the code of every file,
// each mapped by its own process, batchFiles files per Profile call.
func symbolizeHostFiles(t testing.TB, s *Symbolizer, paths []string, addrsPerFile int) {
	t.Helper()
	const batchFiles = 16
	for i := 0; i < len(paths); i += batchFiles {
		b := &model.Batch{PeriodNanos: 1, Processes: map[model.ProcessKey]*model.Process{}}
		var open []*os.File
		for j, path := range paths[i:min(i+batchFiles, len(paths))] {
			ms, f := mapForBudget(path)
			if f == nil {
				continue
			}
			open = append(open, f)
			pid := uint32(1000 + i + j)
			proc := process(pid, ms)
			b.Processes[model.ProcessKey{PID: pid}] = proc
			for _, m := range ms {
				step := max((m.Limit-m.Start)/uint64(addrsPerFile), 1)
				for a := m.Start; a < m.Limit; a += step {
					b.Samples = append(b.Samples, model.Sample{PID: pid, TID: pid, User: []uint64{a}, Count: 1})
				}
			}
		}
		if _, err := s.Profile(b); err != nil {
			t.Fatal(err)
		}
		for _, f := range open {
			f.Close()
		}
	}
}

// mapForBudget is loadPathAt without a test's cleanup: the file is closed
// by the caller, as the collector does after a batch.
func mapForBudget(path string) ([]model.Mapping, *os.File) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, nil
	}
	var ms []model.Mapping
	var bias uint64
	first := true
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if first && ef.Type == elf.ET_DYN {
			bias = 0x7f0000000000 - p.Vaddr&^(pageSize-1)
		}
		first = false
		if p.Flags&elf.PF_X == 0 || p.Memsz == 0 {
			continue
		}
		ms = append(ms, model.Mapping{
			Start:  bias + p.Vaddr&^(pageSize-1),
			Limit:  bias + (p.Vaddr+p.Memsz+pageSize-1)&^(pageSize-1),
			Offset: p.Off &^ (pageSize - 1),
			Path:   path,
			File:   f,
		})
	}
	if len(ms) == 0 {
		f.Close()
		return nil, nil
	}
	return ms, f
}

// TestCacheKeepsBudgetOnHostFiles names addresses in many of the host's
// binaries and libraries with a small budget, and checks that the Go heap
// the Symbolizer holds afterwards (everything it keeps: parsed files,
// named addresses, perf maps, bookkeeping) stays within that budget plus
// a fixed overhead, and that its own accounting stays within the budget.
// Figures for other sizes: EMBER_CACHE_TEST_MIB, _FILES and _ADDRS (per
// file), with -v.
func TestCacheKeepsBudgetOnHostFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("reads hundreds of host files")
	}
	paths := hostELFFiles(t, envInt("EMBER_CACHE_TEST_FILES", 400))
	if len(paths) < 100 {
		t.Skipf("only %d ELF files on this host", len(paths))
	}
	budget := int64(envInt("EMBER_CACHE_TEST_MIB", 8)) << 20
	// fixedOverhead covers what is bounded by entry count, not bytes:
	// the per-file entries and parse numbers (MaxCachedFiles of each).
	const fixedOverhead = 2 << 20
	for try := 0; ; try++ {
		held, st := symbolizeWithinBudget(t, paths, budget)
		if st.Evictions == 0 && try < 3 {
			// The host's files fit (they differ from host to host): the
			// budget is only tested by a smaller one.
			t.Logf("nothing evicted at %.1f MiB: trying %.1f MiB", mib(budget), mib(st.Bytes/2))
			budget = st.Bytes / 2
			continue
		}
		if st.Evictions == 0 {
			t.Errorf("nothing evicted: the files fit in %.1f MiB, the budget was not tested", mib(budget))
		}
		if st.Bytes > budget {
			t.Errorf("accounted %d bytes, over the %d byte budget", st.Bytes, budget)
		}
		if held > budget+fixedOverhead {
			t.Errorf("the symbolizer holds %.1f MiB of heap, over its %.1f MiB budget + %.0f MiB", mib(held), mib(budget), mib(fixedOverhead))
		}
		return
	}
}

// symbolizeWithinBudget names addresses in paths with a Symbolizer of the
// given budget and returns the heap it holds afterwards and its stats.
func symbolizeWithinBudget(t *testing.T, paths []string, budget int64) (int64, CacheStats) {
	t.Helper()
	before := int64(heapInUse())
	s, err := New(Options{KallsymsPath: "testdata/kallsyms", MaxCacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	s.log = slog.New(slog.DiscardHandler)
	kernel := int64(heapInUse()) - before // the test's kallsyms: not a cache
	symbolizeHostFiles(t, s, paths, envInt("EMBER_CACHE_TEST_ADDRS", 256))
	held := int64(heapInUse()) - before - kernel
	st := s.Stats()
	t.Logf("%d files, budget %.1f MiB: heap held %.1f MiB, accounted %.1f MiB (files %.1f, addresses %.1f in %d entries), %d parses kept, %d evicted",
		len(paths), mib(budget), mib(held), mib(st.Bytes), mib(s.tables.bytes), mib(s.addrs.bytes), s.addrs.len(), st.Files, st.Evictions)
	runtime.KeepAlive(s)
	return held, st
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
