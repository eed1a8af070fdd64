package storage

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func generatedSamples(n int, d time.Duration) int64 {
	g := smallGenerator()
	var total int64
	for i := range n {
		for _, s := range g.Interval(t0.Add(time.Duration(i)*d), d).Sample {
			total += s.Value[0]
		}
	}
	return total
}

// TestCheck reads a clean store, a copy of one that was not closed (its
// write-ahead log replayed in a scratch copy), one held by a process and
// a damaged one, changing nothing in any.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 12, nil)
	want := generatedSamples(12, 10*time.Second)

	// Held by the open store.
	if _, err := Check(ctx, dir, quietLogger()); !errors.Is(err, errInUse) {
		t.Errorf("check of an open store: %v, want in use", err)
	}

	// A copy taken while open is what a crash leaves.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	before := snapshot(t, crashed)
	rep, err := Check(ctx, crashed, quietLogger())
	if err != nil {
		t.Fatalf("check of a crashed store: %v", err)
	}
	if !rep.WriteAheadReplayed || rep.Intervals != 12 || rep.Samples != want || !rep.Oldest.Equal(t0) {
		t.Errorf("crashed store: %+v, want the write-ahead log replayed, 12 intervals, %d samples from %s", rep, want, t0)
	}
	checkUnchanged(t, crashed, before)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, dir)
	rep, err = Check(ctx, dir, quietLogger())
	if err != nil {
		t.Fatalf("check of a clean store: %v", err)
	}
	if rep.WriteAheadReplayed || rep.Intervals != 12 || rep.Samples != want || rep.Tables == 0 || rep.Stacks == 0 {
		t.Errorf("clean store: %+v, want 12 intervals and %d samples in tables", rep, want)
	}
	checkUnchanged(t, dir, before)

	// A block overwritten inside a table: Open lets it through (indexes
	// only), the check does not.
	p := badgerFilesOf(t, dir, ".sst")[0]
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage!garbage!"), 64)
	f.Close()
	if _, err := Check(ctx, dir, quietLogger()); !errors.Is(err, ErrDamaged) {
		t.Errorf("check of an overwritten table: %v, want ErrDamaged", err)
	}
}
