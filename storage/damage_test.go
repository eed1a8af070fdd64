package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedStore writes a store with tables and a MANIFEST of several records
// (two flushes), closes it and returns its directory.
func closedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	g := smallGenerator()
	for round := range 2 {
		s := openTest(t, Options{Dir: dir})
		appendRange(t, s, g, t0.Add(time.Duration(round)*time.Hour), 10*time.Second, 5, nil)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func badgerFilesOf(t *testing.T, dir, suffix string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, badgerDir, "*"+suffix))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s files in the store (%v)", suffix, err)
	}
	return paths
}

func cutFile(t *testing.T, path string, n int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

// TestRefusesDamagedBadgerFiles damages a copy of a store the ways Badger
// answers by deleting or dropping data, or by panicking, and checks that
// Open refuses each with a message that names the damage and the way out,
// and changes nothing on disk.
func TestRefusesDamagedBadgerFiles(t *testing.T) {
	good := closedStore(t)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"MANIFEST missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, badgerDir, "MANIFEST"))
		}, "MANIFEST is missing while"},
		{"MANIFEST cut", func(t *testing.T, dir string) {
			cutFile(t, filepath.Join(dir, badgerDir, "MANIFEST"), 10)
		}, "MANIFEST is cut"},
		{"badger directory removed", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, badgerDir))
		}, "no badger/ directory"},
		{"table cut", func(t *testing.T, dir string) {
			cutFile(t, badgerFilesOf(t, dir, ".sst")[0], 100)
		}, ".sst is damaged"},
		{"table cut to half", func(t *testing.T, dir string) {
			p := badgerFilesOf(t, dir, ".sst")[0]
			st, _ := os.Stat(p)
			cutFile(t, p, st.Size()/2)
		}, ".sst is damaged"},
		{"table missing", func(t *testing.T, dir string) {
			os.Remove(badgerFilesOf(t, dir, ".sst")[0])
		}, "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, good, dir)
			tt.damage(t, dir)
			before := snapshot(t, dir)
			s, err := Open(Options{Dir: dir, Logger: quietLogger()})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a damaged store")
			}
			t.Log(err)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want ErrDamaged saying %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "ember store check") || !strings.Contains(err.Error(), "nothing was changed") {
				t.Errorf("error %q does not say what to do", err)
			}
			checkUnchanged(t, dir, before)
		})
	}
	// The undamaged original still opens, with both hours.
	s := openTest(t, Options{Dir: good})
	if st := s.Stats(); !st.OldestData.Equal(t0) || !st.NewestData.Equal(t0.Add(time.Hour+40*time.Second)) {
		t.Errorf("undamaged store holds %s to %s", st.OldestData, st.NewestData)
	}
}

// TestTableBlocksVerified: a table whose block is overwritten keeps a valid
// index, so Open (which reads indexes only) lets Badger find the damage on
// read, but the full check finds it.
func TestTableBlocksVerified(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, closedStore(t), dir)
	if _, err := verifyBadgerFiles(dir, verifyBlocks, quietLogger()); err != nil {
		t.Fatalf("undamaged store: %v", err)
	}
	p := badgerFilesOf(t, dir, ".sst")[0]
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage!garbage!"), 64); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = verifyBadgerFiles(dir, verifyBlocks, quietLogger())
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "block 0") {
		t.Errorf("block check of an overwritten block: %v", err)
	}
}

// TestNewStoreOrder: a new store gets its Badger directory before its
// marker, so that a creation stopped between the two is finished at the
// next start, while a marker without the directory is damage.
func TestNewStoreOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	s := openTest(t, Options{Dir: dir})
	s.Close()
	for _, name := range []string{markerFile, badgerDir + "/MANIFEST"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("new store: %v", err)
		}
	}
	// Stopped after the Badger directory, before the marker.
	half := t.TempDir()
	if err := os.Mkdir(filepath.Join(half, badgerDir), 0o750); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, Options{Dir: half})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 1, nil)
	s.Close()
}

// TestSecondOpenSaysInUse: a second Open of an open store says another
// process holds it, not that it may be corrupt.
func TestSecondOpenSaysInUse(t *testing.T) {
	dir := t.TempDir()
	openTest(t, Options{Dir: dir})
	before := snapshot(t, dir)
	s, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err == nil {
		s.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, errInUse) || !strings.Contains(err.Error(), "held by another process") ||
		strings.Contains(err.Error(), "corrupt") {
		t.Errorf("second Open: %v", err)
	}
	checkUnchanged(t, dir, before)
}

// TestMaxDiskIgnoresUnwindCache: the collector's unwind cache shares the
// data directory; --max-disk limits the store, so a cache larger than the
// limit must not make the store remove history.
func TestMaxDiskIgnoresUnwindCache(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, MaxDiskBytes: 16 << 20, maintenanceEvery: time.Hour})
	appendRange(t, s, smallGenerator(), t0, 20*time.Minute, 9, nil) // three hours
	cache := filepath.Join(dir, "unwind-cache")
	if err := os.MkdirAll(cache, 0o750); err != nil {
		t.Fatal(err)
	}
	ballast := make([]byte, 24<<20)
	for i := range ballast {
		ballast[i] = byte(i) // allocated, not sparse
	}
	if err := os.WriteFile(filepath.Join(cache, "tables"), ballast, 0o600); err != nil {
		t.Fatal(err)
	}
	s.maintainOnce()
	if st := s.Stats(); !st.OldestData.Equal(t0) {
		t.Errorf("with a 24 MiB unwind cache under a 16 MiB limit the store removed history: oldest data %s, want %s",
			st.OldestData.UTC(), t0)
	}
	if used, err := storeBytes(dir); err != nil || used >= 16<<20 {
		t.Errorf("store bytes %d (%v), want the store alone, under 16 MiB", used, err)
	}
}
