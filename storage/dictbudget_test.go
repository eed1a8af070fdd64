package storage

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/internal/backfill"
	"github.com/ember-profiler/ember/storage/query"
)

// blockIDs returns the stack and label set ids that the stored blocks of
// every level use.
func blockIDs(t testing.TB, s *Store) (stacks, labelSets map[uint32]bool) {
	t.Helper()
	stacks, labelSets = map[uint32]bool{}, map[uint32]bool{}
	s.mu.RLock()
	defer s.mu.RUnlock()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	for level := range numLevels {
		for _, ref := range s.index[level] {
			_, err := readBlock(txn, plannedBlock{level, ref}, func(uint32) bool { return true }, func(r record) {
				stacks[r.stack] = true
				labelSets[r.labelSet] = true
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return stacks, labelSets
}

// churnGenerator makes small intervals with many short-lived processes,
// each a new label set.
func churnGenerator() *backfill.Generator {
	return backfill.New(backfill.Config{Seed: 3, Processes: 20, StacksPerProgram: 150, CPUs: 1, FrequencyHz: 50, TransientPerMin: 60})
}

// TestDictionaryWithinBudget: with a dictionary budget far smaller than the
// dictionary, memory stays within it, appends still find every entry
// written before (the store holds no more entries than one that keeps all
// of them in memory), and queries read back the merge of what was written.
func TestDictionaryWithinBudget(t *testing.T) {
	const budget = 64 << 10
	small := openTest(t, Options{DictionaryCacheBytes: budget})
	large := openTest(t, Options{DictionaryCacheBytes: 256 << 20})
	start := t0
	var written []*profileT
	for _, s := range []*Store{small, large} {
		written = appendRange(t, s, churnGenerator(), start, 30*time.Second, 120, nil)
		// The same hour again, an hour on: every entry is found, none added.
		appendRange(t, s, churnGenerator(), start.Add(time.Hour), 30*time.Second, 120, nil)
	}
	st := small.dict.cache.stats()
	if st.bytes > budget {
		t.Errorf("dictionary cache holds %d bytes, over its budget of %d", st.bytes, budget)
	}
	if st.evictions == 0 {
		t.Errorf("no evictions: the test does not exercise the budget (%d entries cached)", st.entries)
	}
	if a, b := dictCounts(t, small), dictCounts(t, large); a != b {
		t.Errorf("dictionary on disk with a small budget: %s; with room for everything: %s", a, b)
	}
	t.Logf("dictionary: %s; small cache %d bytes in %d entries, %d evictions", dictCounts(t, small), st.bytes, st.entries, st.evictions)

	want := mergeCanonical(t, written, nil)
	for _, s := range []*Store{small, large} {
		got, err := s.Query(context.Background(), ProfileQuery{From: start, To: start.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if canonical(got, nil) != want {
			t.Errorf("budget %d: the hour read back is not the merge of its intervals", s.dict.cache.budget)
		}
	}
	// A selector evaluated label set by label set, through the disk.
	sel, err := ParseSelector(`{comm="sh"}`)
	if err != nil {
		t.Fatal(err)
	}
	var counts []int64
	for _, s := range []*Store{small, large} {
		p, err := s.StackProfile(context.Background(), ProfileQuery{From: start, To: start.Add(2 * time.Hour), Selector: sel})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := totals(p)
		counts = append(counts, n)
	}
	if counts[0] == 0 || counts[0] != counts[1] {
		t.Errorf("samples of comm=sh: %d with a small budget, %d with a large one", counts[0], counts[1])
	}
	if b := small.dict.memoryBytes(); b > budget {
		t.Errorf("dictionary memory %d bytes, over the budget of %d", b, budget)
	}
}

// TestDictionaryFromOlderStore: a store written before the dictionary
// indexes existed (no hash index, no used-id records) gets them at Open;
// appends then find its entries, and collection keeps what its blocks use.
func TestDictionaryFromOlderStore(t *testing.T) {
	dir := t.TempDir()
	now := t0.Add(time.Hour)
	opts := Options{Dir: dir, Retention: 2 * time.Hour, maintenanceEvery: time.Hour, DictionaryCacheBytes: 64 << 10,
		now: func() time.Time { return now }}
	s := openTest(t, opts)
	appendRange(t, s, churnGenerator(), t0, 30*time.Second, 60, nil)
	kept := appendRange(t, s, churnGenerator(), t0.Add(2*time.Hour), 30*time.Second, 60, nil)
	before := dictCounts(t, s)
	// What an older Ember leaves: entries and blocks only.
	if err := s.db.DropPrefix([]byte{prefixHash}, []byte{prefixUsed}, metaDictIndexKey); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, opts)
	if got := dictCounts(t, s); got != before {
		t.Fatalf("reopened: %s, want %s", got, before)
	}
	for _, p := range kept[:20] { // again: every entry is found, none added
		if err := s.Append(context.Background(), p.Copy(), nil); err != nil {
			t.Fatal(err)
		}
	}
	kept = append(kept, kept[:20]...)
	if got := dictCounts(t, s); got != before {
		t.Errorf("after appending what the store already holds: %s, want %s (entries written twice)", got, before)
	}
	var records int
	err := s.db.View(func(txn *badger.Txn) error {
		return iterate(txn, []byte{prefixUsed}, false, func(k, _ []byte) error {
			if _, level, _ := parseUsedKey(k); level == 0 {
				records++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if records != 140 {
		t.Errorf("%d used-id records of intervals for 140 intervals", records)
	}

	now = t0.Add(4 * time.Hour) // the first hour leaves
	s.maintainOnce()
	usedStacks, usedLabelSets := blockIDs(t, s)
	if s.dict.stacks.len() != len(usedStacks) || s.dict.labelSets.len() != len(usedLabelSets) {
		t.Errorf("after collection: %d stacks and %d label sets; the blocks left use %d and %d",
			s.dict.stacks.len(), s.dict.labelSets.len(), len(usedStacks), len(usedLabelSets))
	}
	got, err := s.Query(context.Background(), ProfileQuery{From: t0.Add(2 * time.Hour), To: t0.Add(3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if canonical(got, nil) != mergeCanonical(t, kept, nil) {
		t.Error("after collection: the data left is not the merge of its intervals")
	}
}

// TestUnknownLabelSetsDropped: records of a label set missing from the
// dictionary (a damaged store) are left out of labelled results, as when
// the dictionary was held in memory and the selector skipped them.
func TestUnknownLabelSetsDropped(t *testing.T) {
	s := openTest(t, Options{})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 3, nil)
	q := ProfileQuery{From: t0, To: t0.Add(time.Minute)}
	whole, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	_, labelSets := blockIDs(t, s)
	var gone uint32
	for id := range labelSets {
		gone = max(gone, id)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(dictKey(kindLabelSet, gone)) }); err != nil {
		t.Fatal(err)
	}
	s.dict.cache.remove(kindLabelSet, gone)
	p, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) == 0 || len(p.Sample) >= len(whole.Sample) {
		t.Errorf("%d samples with label set %d gone, %d before", len(p.Sample), gone, len(whole.Sample))
	}
	for _, smp := range p.Sample {
		if len(smp.Label) == 0 {
			t.Fatal("a sample without labels: its label set is not in the dictionary")
		}
	}
	// The pprof download reads label sets as it meets them: the same ones
	// are left out.
	var buf bytes.Buffer
	if err := s.WriteProfile(context.Background(), q, &buf); err != nil {
		t.Fatal(err)
	}
	written, err := profile.ParseData(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(written.Sample) != len(p.Sample) {
		t.Errorf("WriteProfile: %d samples with label set %d gone, Query %d", len(written.Sample), gone, len(p.Sample))
	}
}

// TestFlameStacksOnDamagedDictionary: flame stacks leave out the records
// of a label set the dictionary lost, as Query does, and a lost stack is
// an error that names it, not a panic or a silent gap.
func TestFlameStacksOnDamagedDictionary(t *testing.T) {
	s := openTest(t, Options{})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 3, nil)
	q := ProfileQuery{From: t0, To: t0.Add(time.Minute)}
	ctx := context.Background()
	total := func(st *query.Stacks) (v int64) {
		for i := range st.Samples {
			v += st.Values[i*len(st.SampleTypes)]
		}
		return v
	}
	whole, err := s.FlameStacks(ctx, q, "comm")
	if err != nil {
		t.Fatal(err)
	}
	usedStacks, labelSets := blockIDs(t, s)
	var gone uint32
	for id := range labelSets {
		gone = max(gone, id)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(dictKey(kindLabelSet, gone)) }); err != nil {
		t.Fatal(err)
	}
	s.dict.cache.remove(kindLabelSet, gone)
	s.paths.drop() // it holds the label set read by the query above
	st, err := s.FlameStacks(ctx, q, "comm")
	if err != nil {
		t.Fatal(err)
	}
	if got, before := total(st), total(whole); got == 0 || got >= before {
		t.Errorf("%d samples with label set %d gone, %d before", got, gone, before)
	}
	if ungrouped, err := s.FlameStacks(ctx, q, ""); err != nil || total(ungrouped) != total(whole) {
		t.Errorf("not grouped, no label set is read: %v", err)
	}

	var lost uint32
	for id := range usedStacks {
		lost = max(lost, id)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(dictKey(kindStack, lost)) }); err != nil {
		t.Fatal(err)
	}
	s.dict.cache.remove(kindStack, lost)
	s.paths.drop() // it holds the stack named by the queries above
	if _, err := s.FlameStacks(ctx, q, ""); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("unknown stack %d", lost)) {
		t.Errorf("stack %d lost: error %v", lost, err)
	}
}

// TestFlameStacksReadBy: past its ReadBy a flame graph's reading stops
// after the newest block, and says that only the range from its start is
// in the answer; without ReadBy, everything is read.
func TestFlameStacksReadBy(t *testing.T) {
	s := openTest(t, Options{})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 6, nil)
	ctx := context.Background()
	total := func(st *query.Stacks) (v int64) {
		for i := range st.Samples {
			v += st.Values[i*len(st.SampleTypes)]
		}
		return v
	}
	q := ProfileQuery{From: t0, To: t0.Add(time.Minute)}
	whole, err := s.FlameStacks(ctx, q, "")
	if err != nil {
		t.Fatal(err)
	}
	if !whole.CoveredFrom.IsZero() {
		t.Errorf("no ReadBy: covered from %s, want the whole range", whole.CoveredFrom)
	}
	q.ReadBy = time.Now().Add(-time.Second)
	part, err := s.FlameStacks(ctx, q, "comm")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(50 * time.Second); !part.CoveredFrom.Equal(want) {
		t.Errorf("past ReadBy: covered from %s, want the newest interval's start %s", part.CoveredFrom, want)
	}
	last, err := s.FlameStacks(ctx, ProfileQuery{From: t0.Add(50 * time.Second), To: t0.Add(time.Minute)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := total(part), total(last); got != want || got == 0 || got >= total(whole) {
		t.Errorf("past ReadBy: %d samples, want the newest interval's %d (of %d)", got, want, total(whole))
	}
}

// TestFlameStacksMaxStacks: past its bound on distinct stacks a flame
// graph's reading stops after the block that crossed it and says so (why,
// and from when it covers); a bound the range stays within, or none,
// reads it all.
func TestFlameStacksMaxStacks(t *testing.T) {
	s := openTest(t, Options{})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 6, nil)
	ctx := context.Background()
	q := ProfileQuery{From: t0, To: t0.Add(time.Minute), MaxStacks: -1}
	whole, err := s.FlameStacks(ctx, q, "comm")
	if err != nil {
		t.Fatal(err)
	}
	if !whole.CoveredFrom.IsZero() || whole.StoppedBy != "" {
		t.Fatalf("no bound: covered from %s (%q), want the whole range", whole.CoveredFrom, whole.StoppedBy)
	}
	newest, err := s.FlameStacks(ctx, ProfileQuery{From: t0.Add(50 * time.Second), To: t0.Add(time.Minute)}, "comm")
	if err != nil {
		t.Fatal(err)
	}
	if len(newest.Samples) >= len(whole.Samples) {
		t.Skipf("the newest interval has all %d stacks of the range: nothing to bound", len(whole.Samples))
	}
	q.MaxStacks = len(whole.Samples)
	if within, err := s.FlameStacks(ctx, q, "comm"); err != nil || !within.CoveredFrom.IsZero() {
		t.Errorf("a bound of the range's own %d stacks: covered from %v, error %v; want it all", len(whole.Samples), within.CoveredFrom, err)
	}
	q.MaxStacks = len(newest.Samples) - 1
	part, err := s.FlameStacks(ctx, q, "comm")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(50 * time.Second); !part.CoveredFrom.Equal(want) || part.StoppedBy != "stacks" {
		t.Errorf("bound %d: covered from %s (%q), want the newest interval's start %s (\"stacks\")", q.MaxStacks, part.CoveredFrom, part.StoppedBy, want)
	}
	if len(part.Samples) != len(newest.Samples) {
		t.Errorf("bound %d: %d stacks, want the newest interval's %d", q.MaxStacks, len(part.Samples), len(newest.Samples))
	}
}
