package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRepair copies what reads of a damaged store into a new one: all of
// it when only the MANIFEST is gone or cut, all but the damaged table's
// intervals when a table is cut (a table lost takes with it dictionary
// entries that other blocks use). The damaged store is never changed.
func TestRepair(t *testing.T) {
	good := closedStore(t) // two tables of 5 intervals each
	ctx := context.Background()
	all := generatedSamples(5, 10*time.Second) * 2
	tests := []struct {
		name      string
		damage    func(t *testing.T, dir string)
		intervals int // -1: fewer than all
		skipped   int
	}{
		{"MANIFEST missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, badgerDir, "MANIFEST"))
		}, 10, 0},
		{"MANIFEST cut", func(t *testing.T, dir string) {
			cutFile(t, filepath.Join(dir, badgerDir, "MANIFEST"), 10)
		}, 10, 0},
		{"table cut", func(t *testing.T, dir string) {
			cutFile(t, badgerFilesOf(t, dir, ".sst")[0], 100)
		}, -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			damaged, repaired := t.TempDir(), filepath.Join(t.TempDir(), "repaired")
			copyDir(t, good, damaged)
			tt.damage(t, damaged)
			before := snapshot(t, damaged)
			rep, err := Repair(ctx, damaged, repaired, quietLogger())
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			checkUnchanged(t, damaged, before)
			intervalsOK := rep.Check.Intervals == tt.intervals || (tt.intervals < 0 && rep.Check.Intervals < 10)
			if !intervalsOK || len(rep.TablesSkipped) != tt.skipped {
				t.Errorf("repaired %+v, want %d intervals and %d tables skipped", rep, tt.intervals, tt.skipped)
			}
			if tt.skipped == 0 && rep.Check.Samples != all {
				t.Errorf("repaired store holds %d samples, want %d", rep.Check.Samples, all)
			}
			if tt.skipped > 0 && !strings.Contains(rep.TablesSkipped[0], ".sst") {
				t.Errorf("skipped %q", rep.TablesSkipped)
			}
			// The repaired store opens and takes writes.
			s := openTest(t, Options{Dir: repaired})
			appendRange(t, s, smallGenerator(), t0.Add(3*time.Hour), 10*time.Second, 1, nil)
		})
	}
}
