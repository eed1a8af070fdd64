package storage

import (
	"context"
	"testing"
	"time"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

// TestMaxDiskOnDisk applies the disk limit to a store on a real filesystem,
// measured as the maintenance does (allocated blocks of every file, Badger's
// own included), over several rounds: the store ends within the limit,
// without a round removing more than it had to (the disk only shrinks once
// Badger has rewritten its tables), and what is left reads back.
func TestMaxDiskOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, maintenanceEvery: time.Hour})
	s.opts.diskBytes = directoryBytes
	g := backfill.New(backfill.Config{Seed: 3, Processes: 20, StacksPerProgram: 60, CPUs: 1, FrequencyHz: 99, TransientPerMin: 0.1})
	appendRange(t, s, g, t0, 10*time.Minute, 36, nil) // 6 hours
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
	full, err := directoryBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.opts.MaxDiskBytes = full / 2
	var afterFirst time.Time
	for round := range 5 {
		s.maintainOnce()
		used, _ := directoryBytes(dir)
		oldest := s.Stats().OldestData
		t.Logf("round %d: %d bytes on disk, limit %d; data from %s", round, used, s.opts.MaxDiskBytes, oldest.UTC().Format("15:04"))
		if round == 0 {
			afterFirst = oldest
		} else if !oldest.Equal(afterFirst) {
			t.Errorf("round %d removed more (data from %s, was %s): the disk had not caught up", round, oldest.UTC(), afterFirst.UTC())
		}
	}
	used, err := directoryBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if used > s.opts.MaxDiskBytes {
		t.Errorf("%d bytes on disk after five rounds, over the %d byte limit", used, s.opts.MaxDiskBytes)
	}
	// Half the disk holds about half the hours; keeping fewer than two of
	// six means rounds removed data the disk had already given back.
	oldest := s.Stats().OldestData
	if kept := t0.Add(6 * time.Hour).Sub(oldest); kept < 2*time.Hour {
		t.Errorf("only %s of 6 h kept under a limit of half the disk", kept)
	}
	if _, err := s.Query(context.Background(), ProfileQuery{From: oldest, To: t0.Add(6 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	t.Logf("full store %d bytes; after the limit %d, keeping %s", full, used, t0.Add(6*time.Hour).Sub(oldest))
}
