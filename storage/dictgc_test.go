package storage

import (
	"context"
	"testing"
	"time"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

// TestDictionaryCollection: once retention has removed the oldest hours,
// the dictionary entries only they used leave memory and disk, the data
// left still reads back whole, and a reopened store loads only what is
// left.
func TestDictionaryCollection(t *testing.T) {
	dir := t.TempDir()
	now := t0
	opts := Options{Dir: dir, Retention: 2 * time.Hour, maintenanceEvery: time.Hour,
		now: func() time.Time { return now }}
	s := openTest(t, opts)
	old := backfill.New(backfill.Config{Seed: 1, Processes: 30, StacksPerProgram: 60, CPUs: 1, FrequencyHz: 20})
	recent := backfill.New(backfill.Config{Seed: 2, Processes: 30, StacksPerProgram: 60, CPUs: 1, FrequencyHz: 20})
	appendRange(t, s, old, t0, 5*time.Minute, 12, nil)
	later := t0.Add(3 * time.Hour)
	kept := appendRange(t, s, recent, later, 5*time.Minute, 12, nil)
	full := s.dict.stacks.len()

	now = later.Add(90 * time.Minute) // the cutoff falls between the two ranges
	s.maintainOnce()
	stacks, labelSets := s.dict.stacks.len(), s.dict.labelSets.len()
	if stacks >= full {
		t.Fatalf("%d stacks before retention, %d after: nothing collected", full, stacks)
	}
	// Exactly the entries that the blocks left use are left.
	usedStacks, usedLabelSets := blockIDs(t, s)
	if stacks != len(usedStacks) || labelSets != len(usedLabelSets) {
		t.Errorf("%d stacks and %d label sets left; the blocks left use %d and %d",
			stacks, labelSets, len(usedStacks), len(usedLabelSets))
	}
	want := mergeCanonical(t, kept, nil)
	check := func(s *Store, when string) {
		t.Helper()
		got, err := s.Query(context.Background(), ProfileQuery{From: t0, To: later.Add(time.Hour)})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if canonical(got, nil) != want {
			t.Errorf("%s: the data left is not the merge of its intervals", when)
		}
	}
	check(s, "after collection")
	t.Logf("stacks %d -> %d, label sets now %d, functions %d, locations %d",
		full, stacks, labelSets, s.dict.functions.len(), s.dict.locations.len())

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if s.dict.stacks.len() != stacks || s.dict.labelSets.len() != labelSets {
		t.Errorf("reopened: %d stacks and %d label sets, want %d and %d (entries left on disk)",
			s.dict.stacks.len(), s.dict.labelSets.len(), stacks, labelSets)
	}
	check(s, "reopened")
	// A new interval after the reopen reuses what is left and adds the rest.
	appendRange(t, s, recent, later.Add(time.Hour), 5*time.Minute, 1, nil)
	s.maintainOnce()
	check(s, "after another collection")
}
