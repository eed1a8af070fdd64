package storage

import (
	"fmt"
	"testing"
)

// TestEntryCacheBudget: the cache stays within its budget, keeps entries
// used since the hand last passed over those that were not, never evicts
// pinned entries, and finds entries by id and by value alike.
func TestEntryCacheBudget(t *testing.T) {
	value := func(i int) string { return fmt.Sprintf("stack-%04d", i) }
	size := int64(len(value(0))) + cacheSlotOverhead
	c := newEntryCache(10 * size)
	for i := 1; i <= 10; i++ {
		c.add(kindStack, uint32(i), value(i), []byte(value(i)), false)
	}
	c.addPinned(kindStack, 100, value(100), []byte(value(100)))
	if st := c.stats(); st.bytes > 10*size || st.entries != 10 || st.evictions != 1 {
		t.Fatalf("%d bytes in %d entries after %d evictions, want 10 entries after 1", st.bytes, st.entries, st.evictions)
	}
	if _, ok := c.get(kindStack, 3); !ok { // referenced: survives a pass
		t.Fatal("entry 3 missing")
	}
	for i := 11; i <= 18; i++ {
		c.add(kindStack, uint32(i), value(i), []byte(value(i)), false)
	}
	if st := c.stats(); st.bytes > 10*size {
		t.Errorf("%d bytes cached, budget %d", st.bytes, 10*size)
	}
	if _, ok := c.get(kindStack, 3); !ok {
		t.Error("entry 3, used since it was added, was evicted before unused ones")
	}
	if id, enc, ok := c.lookup(kindStack, []byte(value(100))); !ok || id != 100 || enc != value(100) {
		t.Errorf("pinned entry evicted or wrong: %d %q %v", id, enc, ok)
	}
	if _, ok := c.get(kindStack, 1); ok {
		t.Error("entry 1, never used, survived nine additions to a full cache")
	}
	if id, _, ok := c.lookup(kindStack, []byte(value(18))); !ok || id != 18 {
		t.Errorf("lookup by value: %d %v", id, ok)
	}
	if _, _, ok := c.lookup(kindLabelSet, []byte(value(18))); ok {
		t.Error("a value found under another kind")
	}
	c.remove(kindStack, 18)
	if _, _, ok := c.lookup(kindStack, []byte(value(18))); ok {
		t.Error("removed entry still found by value")
	}
	c.unpin(kindStack, 100)
	for i := 200; i < 230; i++ {
		c.add(kindStack, uint32(i), value(i), []byte(value(i)), false)
	}
	if st := c.stats(); st.bytes > 10*size {
		t.Errorf("%d bytes cached after unpinning, budget %d", st.bytes, 10*size)
	}
}

// TestDictionaryRollback: entries added for a write that failed are
// forgotten, in memory and for lookups, and their ids given out again.
func TestDictionaryRollback(t *testing.T) {
	s := openTest(t, Options{})
	d := s.dict
	m := d.mark()
	id := d.stack([]byte{1, 2, 3})
	d.rollback(m)
	if _, _, ok := d.cache.lookup(kindStack, []byte{1, 2, 3}); ok {
		t.Error("a rolled-back stack is still found")
	}
	if d.stacks.len() != 0 {
		t.Errorf("%d stacks counted after the rollback", d.stacks.len())
	}
	d.mark()
	if again := d.stack([]byte{4, 5}); again != id {
		t.Errorf("next stack has id %d, want the rolled-back id %d again", again, id)
	}
}

func TestSortedIDs(t *testing.T) {
	for _, ids := range [][]uint32{
		nil,
		{5, 3, 5, 1},
		append(make([]uint32, 0, 200), func() []uint32 {
			var v []uint32
			for i := range 200 {
				v = append(v, uint32((i*37)%90+1))
			}
			return v
		}()...),
	} {
		want := map[uint32]bool{}
		for _, id := range ids {
			want[id] = true
		}
		got := sortedIDs(append([]uint32(nil), ids...))
		if len(got) != len(want) {
			t.Errorf("%d ids, want %d", len(got), len(want))
		}
		for i, id := range got {
			if !want[id] || i > 0 && got[i-1] >= id {
				t.Errorf("not sorted and distinct at %d: %v", i, got)
				break
			}
		}
	}
}
