package symbolizer

import (
	"debug/elf"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/ember-profiler/ember/model"
)

const fixtureDir = "../testdata/elf"

func newTestSymbolizer(t testing.TB) *Symbolizer {
	t.Helper()
	s, err := New(Options{KallsymsPath: "testdata/kallsyms"})
	if err != nil {
		t.Fatal(err)
	}
	s.log = slog.New(slog.DiscardHandler)
	s.procRoot = hostProcRoot(t, 1)
	return s
}

// hostProcRoot lays out a fake /proc in which each of pids has the host's
// root as its root directory, as for a process outside any container.
func hostProcRoot(t testing.TB, pids ...int) string {
	t.Helper()
	procRoot := t.TempDir()
	for _, pid := range pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/", filepath.Join(dir, "root")); err != nil {
			t.Fatal(err)
		}
	}
	return procRoot
}

// openFixture opens an ELF fixture the way the collector holds files: open
// for the test's duration.
func openFixture(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

const pageSize = 0x1000

// loadAt returns the executable mappings the dynamic loader would create
// for a fixture whose first PT_LOAD lands at base. base 0 keeps the file's
// own addresses, as for a non-PIE executable.
func loadAt(t testing.TB, name string, base uint64) []model.Mapping {
	t.Helper()
	return loadPathAt(t, filepath.Join(fixtureDir, name), "/opt/fixture/"+name, base)
}

// loadPathAt is loadAt for any file, mapped under the path mapPath.
func loadPathAt(t testing.TB, path, mapPath string, base uint64) []model.Mapping {
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
	var bias uint64
	var ms []model.Mapping
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if ms == nil && base != 0 {
			bias = base - p.Vaddr&^(pageSize-1)
		}
		if ms == nil {
			ms = []model.Mapping{} // the first segment sets the bias
		}
		if p.Flags&elf.PF_X == 0 {
			continue
		}
		ms = append(ms, model.Mapping{
			Start:  bias + p.Vaddr&^(pageSize-1),
			Limit:  bias + (p.Vaddr+p.Memsz+pageSize-1)&^(pageSize-1),
			Offset: p.Off &^ (pageSize - 1),
			Path:   mapPath,
			File:   f,
		})
	}
	return ms
}

// fixtureSymbol returns the ELF address and size of a symbol, read with
// debug/elf so tests never hard-code addresses.
func fixtureSymbol(t testing.TB, name, symbol string) (addr, size uint64) {
	t.Helper()
	ef, err := elf.Open(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, _ := ef.Symbols()
	dyn, _ := ef.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if s.Name == symbol {
			return s.Value, s.Size
		}
	}
	t.Fatalf("%s has no symbol %s", name, symbol)
	return 0, 0
}

// process builds a live process from mapping lists.
func process(pid uint32, mappings ...[]model.Mapping) *model.Process {
	p := &model.Process{PID: pid, Comm: "test"}
	for _, ms := range mappings {
		p.Mappings = append(p.Mappings, ms...)
	}
	sort.Slice(p.Mappings, func(i, j int) bool { return p.Mappings[i].Start < p.Mappings[j].Start })
	return p
}

// userNames symbolizes one user stack (leaf first) of proc and returns its
// function names and the profile.
func userNames(t testing.TB, s *Symbolizer, proc *model.Process, user ...uint64) []string {
	t.Helper()
	b := &model.Batch{
		PeriodNanos: 1,
		Samples:     []model.Sample{{PID: proc.PID, TID: proc.PID, User: user, Count: 1}},
		Processes:   map[model.ProcessKey]*model.Process{{PID: proc.PID}: proc},
	}
	p, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, loc := range p.Sample[0].Location {
		names = append(names, loc.Line[0].Function.Name)
	}
	return names
}
