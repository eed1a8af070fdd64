package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file is identified once; a copy rewritten in place (new size or
// modification time) is identified again.
func TestFileIDsRemember(t *testing.T) {
	src, err := os.ReadFile("../testdata/unwind/chain-nofp")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(path, src, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids fileIDs
	first := ids.identifyFile(f)
	want := identifyNow(f)
	if first.err != nil || first.id != want.id || len(first.loads) != len(want.loads) || first.cfiBytes != want.cfiBytes {
		t.Fatalf("identified %+v, want %+v", first, want)
	}
	if again := ids.identifyFile(f); again.id != first.id || ids.hits != 1 {
		t.Fatalf("second look: %+v, %d hits (want the remembered answer)", again, ids.hits)
	}
	// Replaced in place by another program: not the remembered answer.
	other, err := os.ReadFile("../testdata/unwind/qsort-nofp")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, other, 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got := ids.identifyFile(f); got.id == first.id || got.id != identifyNow(f).id {
		t.Errorf("rewritten file: got %q, first was %q", got.id, first.id)
	}
	notELF, err := os.Open("fileids_test.go")
	if err != nil {
		t.Fatal(err)
	}
	defer notELF.Close()
	if got := ids.identifyFile(notELF); got.err == nil {
		t.Error("a Go source file identified as ELF")
	}
}

// BenchmarkIdentify is the per-process cost of naming a mapped libc:
// parsed each time, or remembered.
func BenchmarkIdentify(b *testing.B) {
	f, err := os.Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		b.Skip(err)
	}
	defer f.Close()
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			identifyNow(f)
		}
	})
	b.Run("remembered", func(b *testing.B) {
		var ids fileIDs
		for b.Loop() {
			ids.identifyFile(f)
		}
	})
}
