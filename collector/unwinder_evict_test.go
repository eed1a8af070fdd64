package collector

import (
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/collector/unwind"
)

// tableSize is how many words a file's table takes.
func tableSize(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := unwind.Build(f)
	if err != nil {
		t.Fatal(err)
	}
	words, _, err := tbl.Words(func(unwind.Rule) (uint16, error) { return 0, nil })
	if err != nil {
		t.Fatal(err)
	}
	return uint32(len(words))
}

func fileID(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, _, _, err := identify(f)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestEvictIdleTablesWhenFull: with the word budget full, a new table is
// not loaded (its range says so); the drain after drops the least recently
// used idle table, keeps the newer one, and frees its words at the next,
// so that the next process mapping the new file gets its table there.
func TestEvictIdleTablesWhenFull(t *testing.T) {
	paths := []string{unwindFixture(t, "chain-nofp"), unwindFixture(t, "qsort-nofp"), unwindFixture(t, "burst")}
	slices.SortFunc(paths, func(a, b string) int { return int(tableSize(t, b)) - int(tableSize(t, a)) })
	x, y, z := paths[0], paths[1], paths[2] // x the largest: z fits where it was
	wx, wy, wz := tableSize(t, x), tableSize(t, y), tableSize(t, z)
	u, maps := newFakeTables(t, wx+wy+wz-1)
	t.Logf("tables of %d, %d and %d words in a budget of %d", wx, wy, wz, wx+wy+wz-1)

	px := newProcess(100, 1, mapFile(t, x, 0x5555_0000_0000))
	py := newProcess(200, 1, mapFile(t, y, 0x5556_0000_0000))
	u.install(px, alwaysAlive)
	u.remove(px.PID) // x idle first: least recently used
	u.install(py, alwaysAlive)
	u.remove(py.PID)
	yStart := u.tables[fileID(t, y)].start
	yWords := maps.words(yStart, wy)

	pz := newProcess(300, 1, mapFile(t, z, 0x5557_0000_0000))
	u.install(pz, alwaysAlive)
	for _, r := range maps.rangesOf(pz.PID) {
		if r.Kind != uint32(bpf.SamplerRangeKindRANGE_NO_TABLE) {
			t.Fatalf("with the budget full, a range of kind %d, want RANGE_NO_TABLE", r.Kind)
		}
	}
	st := u.advance()
	if st.NotLoaded != 1 || st.Idle != 1 || st.Tables != 1 {
		t.Fatalf("after the drain: %d not loaded, %d idle of %d tables; want 1, 1 of 1 (the newer idle table)", st.NotLoaded, st.Idle, st.Tables)
	}
	if u.tables[fileID(t, x)] != nil || u.tables[fileID(t, y)] == nil {
		t.Fatal("the drain dropped the newer idle table, or kept the older")
	}
	if got := u.alloc.largest(); got >= wz {
		t.Errorf("the dropped table's words were freed at once (largest free run %d): a walk may still read them", got)
	}
	u.advance()
	if got := u.alloc.largest(); got < wz {
		t.Fatalf("largest free run %d after the second drain, want the dropped table's %d back", got, wx)
	}

	u.remove(pz.PID)
	pz2 := newProcess(400, 1, mapFile(t, z, 0x5558_0000_0000))
	u.install(pz2, alwaysAlive)
	checkInstalled(t, maps, pz2)
	if !slices.Equal(maps.words(yStart, wy), yWords) {
		t.Error("loading the new table changed the idle table's words")
	}
	if st := u.advance(); st.Tables != 2 || st.Idle != 1 {
		t.Errorf("at the end: %d tables, %d idle; want 2, 1", st.Tables, st.Idle)
	}
}

// syntheticTable has n rows, 4 bytes apart, all of one rule.
func syntheticTable(n int) *unwind.Table {
	tbl := &unwind.Table{Base: 0x1000}
	for i := range n {
		tbl.Rows = append(tbl.Rows, unwind.Row{PC: uint32(i * 4), CFAOffset: 16, Kind: uint8(unwind.CFASP)})
	}
	return tbl
}

// TestChunksFollowTables: chunks are created as tables need them and
// dropped when none does; a table that starts in a block another ends in
// leaves that one's words alone; a freed shard is reused first fit; a table
// larger than any free run is refused without a chunk.
func TestChunksFollowTables(t *testing.T) {
	u, maps := newFakeTables(t, 4*chunkWords)
	load := func(id string, tbl *unwind.Table) (*loadedTable, []uint32) {
		t.Helper()
		lt := &loadedTable{id: id, refs: 1}
		if err := u.loadTable(lt, tbl); err != nil {
			t.Fatalf("load %s: %v", id, err)
		}
		words, buckets, err := tbl.Words(u.ruleID)
		if err != nil {
			t.Fatal(err)
		}
		if lt.count != uint32(len(words)) || lt.buckets != buckets {
			t.Fatalf("%s: %d words and %d buckets loaded, want %d and %d", id, lt.count, lt.buckets, len(words), buckets)
		}
		u.mu.Lock()
		u.tables[id] = lt
		u.mu.Unlock()
		return lt, words
	}
	check := func(lt *loadedTable, words []uint32) {
		t.Helper()
		if !slices.Equal(maps.words(lt.start, lt.count), words) {
			t.Errorf("%s: the maps hold other words than its table's", lt.id)
		}
	}

	big, bigWords := load("big", syntheticTable(chunkWords)) // more than a chunk
	if got := maps.chunkIndexes(); !slices.Equal(got, []uint32{0, 1}) {
		t.Fatalf("chunks %v for a table of %d words, want 0 and 1", got, big.count)
	}
	small, smallWords := load("small", syntheticTable(10))
	if small.start != big.count || small.start%blockWords == 0 {
		t.Fatalf("small table at word %d, want right after the big one, mid-block", small.start)
	}
	check(big, bigWords) // the shared block was read before it was written
	check(small, smallWords)

	u.mu.Lock()
	u.drop(big)
	u.mu.Unlock()
	st := u.advance()
	if got := maps.chunkIndexes(); !slices.Equal(got, []uint32{1}) {
		t.Errorf("chunks %v once the big table is freed, want only 1, which the small one uses", got)
	}
	if st.ChunkBytes != chunkWords*wordBytes {
		t.Errorf("ChunkBytes %d, want one chunk's %d", st.ChunkBytes, chunkWords*wordBytes)
	}
	check(small, smallWords)

	reused, reusedWords := load("reused", syntheticTable(100))
	if reused.start != 0 {
		t.Errorf("a small table went to word %d, not to the first free run at 0", reused.start)
	}
	if got := maps.chunkIndexes(); !slices.Equal(got, []uint32{0, 1}) {
		t.Errorf("chunks %v, want 0 made again and 1", got)
	}
	check(reused, reusedWords)

	added := maps.chunksAdded
	free := u.alloc.largest()
	if err := u.loadTable(&loadedTable{id: "huge"}, syntheticTable(int(free))); err != errBudget {
		t.Errorf("a table larger than the largest free run (%d words): %v, want errBudget", free, err)
	}
	if maps.chunksAdded != added || u.alloc.largest() != free {
		t.Error("a refused table took chunks or words")
	}
}

// TestShardAllocatorFragmentation takes and releases runs at random and
// checks after each step that the free list stays sorted and merged, that
// no run is handed out twice, and that every word is free or taken.
func TestShardAllocatorFragmentation(t *testing.T) {
	const capacity = 10_000
	a := shardAllocator{free: []shard{{0, capacity}}}
	rng := rand.New(rand.NewPCG(1, 2))
	var taken []shard
	for step := range 5000 {
		if len(taken) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(taken))
			a.release(taken[i])
			taken = slices.Delete(taken, i, i+1)
		} else {
			n := uint32(1 + rng.IntN(400))
			largest := a.largest()
			s, ok := a.take(n)
			if ok != (n <= largest) {
				t.Fatalf("step %d: take(%d) = %v with a largest free run of %d", step, n, ok, largest)
			}
			if ok {
				taken = append(taken, s)
			}
		}
		var used [capacity]bool
		var sum uint32
		for _, s := range append(slices.Clone(taken), a.free...) {
			for w := s.start; w < s.start+s.count; w++ {
				if used[w] {
					t.Fatalf("step %d: word %d both taken and free, or taken twice", step, w)
				}
				used[w] = true
			}
			sum += s.count
		}
		if sum != capacity {
			t.Fatalf("step %d: %d words accounted for of %d", step, sum, capacity)
		}
		for i := 1; i < len(a.free); i++ {
			if a.free[i-1].start+a.free[i-1].count >= a.free[i].start {
				t.Fatalf("step %d: free runs %v unsorted or not merged", step, a.free[i-1:i+1])
			}
		}
	}
	for _, s := range taken {
		a.release(s)
	}
	if len(a.free) != 1 || a.free[0] != (shard{0, capacity}) {
		t.Errorf("all released: free list %v, want one run of everything", a.free)
	}
}
