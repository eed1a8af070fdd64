package symbolizer

import (
	"debug/elf"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// copyFixture copies a testdata/symbols fixture to a temporary file and
// returns its path and .text section.
func copyFixture(t *testing.T, name string) (string, *elf.Section) {
	t.Helper()
	data, err := os.ReadFile(symbolsFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	return path, ef.Section(".text")
}

// TestTruncatedMappedFile truncates a Go binary whose line table is mapped.
// Lookups in the parsed tables then fault on the missing pages: they must
// leave the address unnamed instead of crashing the process with SIGBUS.
// Through Profile, the changed file is noticed and parsed again.
func TestTruncatedMappedFile(t *testing.T) {
	path, text := copyFixture(t, "gostripped")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ef, _, err := parseELFWith(f, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(ef.mapped) == 0 {
		t.Fatal("the fixture was not memory-mapped")
	}
	if _, ok := ef.resolve(text.Addr + 0x100); !ok {
		t.Fatal("before truncation: no frame")
	}

	s := newTestSymbolizer(t)
	proc := process(1, loadPathAt(t, path, path, 0))
	if got := userNames(t, s, proc, text.Addr+0x100); strings.HasPrefix(got[0], "[unknown") {
		t.Fatalf("before truncation: named %v, want a Go function", got)
	}

	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // as Profile does
		for pc := text.Addr + 0x1000; pc < text.Addr+text.Size; pc += 0x4001 {
			if frames, ok := ef.resolve(pc); ok {
				t.Fatalf("after truncation: %#x named %v from pages that are gone", pc, frames)
			}
		}
	}()
	for pc := text.Addr + 0x1000; pc < text.Addr+text.Size; pc += 0x40001 {
		if got := userNames(t, s, proc, pc); len(got) == 0 || !strings.HasPrefix(got[0], "[unknown") {
			t.Fatalf("after truncation: %#x named %v, want it unknown", pc, got)
		}
	}
}
