package storage

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ember-profiler/ember/storage/query"
)

// renderStacks renders flame stacks by what they show: "group | frame:line
// ... -> value" summed, so that answers with other frame numbering compare.
func renderStacks(st *query.Stacks) map[string]int64 {
	out := map[string]int64{}
	for i, smp := range st.Samples {
		var b strings.Builder
		if smp.Group >= 0 {
			b.WriteString(st.Groups[smp.Group])
		}
		b.WriteString(" |")
		if smp.Leaf > 0 { // a path of the cache's trie
			var path []query.TrieNode
			for n := smp.Leaf; n > 0; n = st.Trie[n].Parent {
				path = append(path, st.Trie[n])
			}
			for j := len(path) - 1; j >= 0; j-- {
				f := st.TrieFrames[path[j].Frame]
				fmt.Fprintf(&b, " %s@%s@%s:%d", f.Name, f.File, f.Binary, path[j].Line)
			}
		}
		for j := smp.Start; j < smp.End; j++ {
			f := st.Frames[st.Paths[j]]
			fmt.Fprintf(&b, " %s@%s@%s:%d", f.Name, f.File, f.Binary, st.Lines[j])
		}
		out[b.String()] += st.Values[i*len(st.SampleTypes)]
	}
	return out
}

// TestPathCacheSameAnswers: flame stacks are the same with the path cache
// off, cold, warm, and dropped and refilled by a budget too small for one
// query; a warm query names nothing from the dictionary.
func TestPathCacheSameAnswers(t *testing.T) {
	if len(query.GroupDetailLabels) != numDetailLabels {
		t.Fatalf("numDetailLabels is %d, GroupDetailLabels has %d", numDetailLabels, len(query.GroupDetailLabels))
	}
	dir := t.TempDir()
	g := smallGenerator()
	s := openTest(t, Options{Dir: dir, PathCacheBytes: -1})
	appendRange(t, s, g, t0, 10*time.Second, 90, map[string]string{"host": "h"})
	ctx := context.Background()
	type ask struct {
		from, to time.Time
		groupBy  string
	}
	asks := []ask{
		{t0, t0.Add(15 * time.Minute), ""},
		{t0, t0.Add(15 * time.Minute), "comm"},
		{t0.Add(3 * time.Minute), t0.Add(9 * time.Minute), "pid"},
		{t0.Add(5 * time.Minute), t0.Add(6 * time.Minute), "comm"},
	}
	want := make([]map[string]int64, len(asks))
	for i, a := range asks {
		st, err := s.FlameStacks(ctx, ProfileQuery{From: a.from, To: a.to}, a.groupBy)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Samples) == 0 {
			t.Fatalf("ask %d: no samples", i)
		}
		want[i] = renderStacks(st)
	}
	if s.paths != nil {
		t.Fatal("PathCacheBytes -1 should turn the cache off")
	}
	s.Close()

	for _, budget := range []int64{0, 16 << 10} {
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
			s := openTest(t, Options{Dir: dir, PathCacheBytes: budget})
			for round := range 3 {
				for i, a := range asks {
					before := s.paths.stats()
					st, err := s.FlameStacks(ctx, ProfileQuery{From: a.from, To: a.to}, a.groupBy)
					if err != nil {
						t.Fatal(err)
					}
					if got := renderStacks(st); !maps.Equal(got, want[i]) {
						t.Fatalf("round %d ask %d: %d paths, want %d", round, i, len(got), len(want[i]))
					}
					after := s.paths.stats()
					if budget == 0 && round > 0 && after.Misses != before.Misses {
						t.Errorf("round %d ask %d: %d stacks named again from the dictionary", round, i, after.Misses-before.Misses)
					}
					if limit := after.Budget + after.Budget/2 + 4<<10; after.Bytes > limit {
						t.Errorf("cache at %d bytes, budget %d", after.Bytes, after.Budget)
					}
				}
			}
			st := s.paths.stats()
			if budget > 0 && st.Drops == 0 {
				t.Errorf("a %d-byte budget was never spent: %+v", budget, st)
			}
			t.Logf("%+v", st)
		})
	}
}

// TestPathCacheConcurrentQueries: queries at once, on a budget that drops
// the cache under them, each get their own answer (run with -race).
func TestPathCacheConcurrentQueries(t *testing.T) {
	s := openTest(t, Options{PathCacheBytes: 24 << 10})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 60, nil)
	ctx := context.Background()
	ranges := make([]ProfileQuery, 6)
	want := make([]map[string]int64, len(ranges))
	for i := range ranges {
		ranges[i] = ProfileQuery{From: t0.Add(time.Duration(i) * time.Minute), To: t0.Add(time.Duration(i+2) * time.Minute)}
		st, err := s.FlameStacks(ctx, ranges[i], "comm")
		if err != nil {
			t.Fatal(err)
		}
		want[i] = renderStacks(st)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(ranges))
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range len(ranges) {
				i := (k + w) % len(ranges)
				st, err := s.FlameStacks(ctx, ranges[i], "comm")
				if err != nil {
					errs <- err
					return
				}
				if !maps.Equal(renderStacks(st), want[i]) {
					errs <- fmt.Errorf("worker %d: range %d answered differently", w, i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
