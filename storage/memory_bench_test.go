package storage

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

// The store-memory benchmark: a day of history from a host with process
// churn, as in issue 15's soak (about 180,000 stacks and 50,000 label sets:
// 35 short-lived processes a minute, each a new pid, and 5,000 user stacks
// per program). bench/store-memory.sh runs it as
//
//	EMBER_STORAGE_CHURN_DIR=/tmp/ember-churn go test ./storage -run TestStoreMemory -v -timeout 60m
//
// It backfills the directory unless it already holds the day, then, in a
// fresh process, prints the Go heap after Open and after a 24-hour query,
// and p50/p95 latencies of merged-profile (Query) and per-stack (what the
// flame graph asks for) queries over 1 h and 24 h.

func churnConfig() backfill.Config {
	return backfill.Config{Seed: 42, StacksPerProgram: 5000, TransientPerMin: 35}
}

func churnDir(tb testing.TB) string {
	dir := os.Getenv("EMBER_STORAGE_CHURN_DIR")
	if dir == "" {
		tb.Skip("set EMBER_STORAGE_CHURN_DIR to a directory for the churn store (bench/store-memory.sh does)")
	}
	return dir
}

// TestStoreMemoryBackfill fills an empty churn store.
func TestStoreMemoryBackfill(t *testing.T) {
	dir := churnDir(t)
	s := openBench(t, dir)
	defer s.Close()
	if st := s.Stats(); !st.OldestData.IsZero() {
		t.Skip("the store already holds history")
	}
	g := backfill.New(churnConfig())
	const interval = 10 * time.Second
	start := benchStart()
	n := int(benchHours * time.Hour / interval)
	var appendTime time.Duration
	for i := range n {
		p := g.Interval(start.Add(time.Duration(i)*interval), interval)
		t0 := time.Now()
		if err := s.Append(context.Background(), p, map[string]string{"host": "churn-1"}); err != nil {
			t.Fatal(err)
		}
		appendTime += time.Since(t0)
		if i%1000 == 0 {
			fmt.Fprintf(os.Stderr, "backfilled %d/%d intervals\n", i, n)
		}
	}
	fmt.Printf("append: %d intervals, %.2f ms per interval\n", n, float64(appendTime.Microseconds())/1000/float64(n))
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreMemory measures a store opened on a copy of the churn history.
func TestStoreMemory(t *testing.T) {
	src := churnDir(t)
	dir := t.TempDir()
	copyDir(t, src, dir)
	began := time.Now()
	s := openBench(t, dir)
	fmt.Printf("first open of the copy: %s\n", time.Since(began).Round(time.Millisecond))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	base := liveHeapMiB()
	began = time.Now()
	s = openBench(t, dir)
	defer s.Close()
	opened := time.Since(began)
	st := s.Stats()
	if st.OldestData.IsZero() {
		t.Skip("run TestStoreMemoryBackfill first")
	}
	fmt.Printf("open: %s; live Go heap %.1f MiB more than before Open\n", opened.Round(time.Millisecond), liveHeapMiB()-base)
	fmt.Printf("dictionary on disk: %s\n", dictCounts(t, s))
	start := st.OldestData.Truncate(time.Hour)
	ctx := context.Background()
	if _, err := s.Query(ctx, ProfileQuery{From: start, To: start.Add(benchHours * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("after a 24 h merged query (result dropped): live Go heap %.1f MiB more than before Open\n", liveHeapMiB()-base)

	r := rand.New(rand.NewSource(7))
	type kind struct {
		name  string
		query func(ProfileQuery) error
	}
	kinds := []kind{
		{"merged profile", func(q ProfileQuery) error { _, err := s.Query(ctx, q); return err }},
		{"per-stack profile (diff)", func(q ProfileQuery) error { _, err := s.StackProfile(ctx, q); return err }},
		{"flame stacks by comm (flame graph)", func(q ProfileQuery) error { _, err := s.FlameStacks(ctx, q, "comm"); return err }},
	}
	for _, span := range []time.Duration{time.Hour, 24 * time.Hour} {
		for _, k := range kinds {
			var lat []time.Duration
			for i := range 10 {
				from := start.Add(time.Duration(r.Int63n(int64(benchHours*time.Hour - span + time.Second))))
				if span == benchHours*time.Hour && i%2 == 0 {
					from = start
				}
				t0 := time.Now()
				if err := k.query(ProfileQuery{From: from, To: from.Add(span)}); err != nil {
					t.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			fmt.Printf("%s %s: p50 %s p95 %s (10 queries at random offsets)\n", k.name, span, pct(lat, 50), pct(lat, 95))
		}
	}
	fmt.Printf("after the queries: live Go heap %.1f MiB more than before Open\n", liveHeapMiB()-base)

	// An hour's appends from where the history ends, new processes and all.
	g := backfill.New(churnConfig())
	next := st.NewestData.Add(10 * time.Second)
	var appendTime time.Duration
	const n = 360
	for i := range n {
		p := g.Interval(next.Add(time.Duration(i)*10*time.Second), 10*time.Second)
		t0 := time.Now()
		if err := s.Append(ctx, p, map[string]string{"host": "churn-1"}); err != nil {
			t.Fatal(err)
		}
		appendTime += time.Since(t0)
	}
	fmt.Printf("append after the queries: %d intervals, %.2f ms per interval; live Go heap %.1f MiB more than before Open\n",
		n, float64(appendTime.Microseconds())/1000/n, liveHeapMiB()-base)
	runtime.KeepAlive(s)
}

// dictCounts counts the dictionary entries on disk by kind.
func dictCounts(t testing.TB, s *Store) string {
	counts := map[byte]int{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			counts[it.Item().Key()[1]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d functions, %d mappings, %d locations, %d stacks, %d label sets",
		counts[kindFunction], counts[kindMapping], counts[kindLocation], counts[kindStack], counts[kindLabelSet])
}

// liveHeapMiB is the heap that live objects hold, after a collection (in
// use, which counts spans that hold some live objects, stays high after a
// large query has come and gone).
func liveHeapMiB() float64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}
