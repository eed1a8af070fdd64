package storage

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

type profileT = profile.Profile

// The storage benchmark: bench/storage.sh runs it as
//
//	EMBER_STORAGE_BENCH_DIR=/tmp/ember-bench go test ./storage -run TestStorageBenchmark -v -timeout 30m
//
// It backfills 24 hours of generated history (99 Hz on 2 busy CPUs, 10 s
// intervals) unless the directory already holds it, compacts, and prints
// bytes per sample on disk and query latencies. BenchmarkQuery1h and
// BenchmarkQuery24h read the same directory.

const benchHours = 24

func benchDir(tb testing.TB) string {
	dir := os.Getenv("EMBER_STORAGE_BENCH_DIR")
	if dir == "" {
		tb.Skip("set EMBER_STORAGE_BENCH_DIR to a directory for the 24-hour store (bench/storage.sh does)")
	}
	return dir
}

// benchStart is the start of the backfilled day: the last whole hour a day ago.
func benchStart() time.Time {
	return time.Now().UTC().Truncate(time.Hour).Add(-benchHours * time.Hour)
}

func openBench(tb testing.TB, dir string) *Store {
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), MinFreeDiskBytes: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// backfillBench fills an empty store with benchHours of history.
func backfillBench(tb testing.TB, s *Store, start time.Time) (time.Duration, int) {
	g := backfill.New(backfill.Config{Seed: 42})
	const interval = 10 * time.Second
	n := int(benchHours * time.Hour / interval)
	began := time.Now()
	var appendTime time.Duration
	for i := range n {
		p := g.Interval(start.Add(time.Duration(i)*interval), interval)
		t := time.Now()
		if err := s.Append(context.Background(), p, map[string]string{"host": "bench-1"}); err != nil {
			tb.Fatal(err)
		}
		appendTime += time.Since(t)
		if i%1000 == 0 {
			fmt.Fprintf(os.Stderr, "backfilled %d/%d intervals in %s\n", i, n, time.Since(began).Round(time.Second))
		}
	}
	return appendTime, n
}

func TestStorageBenchmark(t *testing.T) {
	dir := benchDir(t)
	s := openBench(t, dir)
	defer s.Close()
	st := s.Stats()
	start := benchStart()
	if st.IntervalsWritten == 0 && st.OldestData.IsZero() {
		appendTime, n := backfillBench(t, s, start)
		fmt.Printf("append: %d intervals, %.2f ms per interval (%.0f samples each)\n",
			n, float64(appendTime.Microseconds())/1000/float64(n), float64(s.Stats().SamplesWritten)/float64(n))
	} else {
		start = st.OldestData.Truncate(time.Hour)
	}
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
	// Close and reopen so that memtables are on disk and counted.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBench(t, dir)
	defer s.Close()
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
	samples, records := s.countSamples(t, start, start.Add(benchHours*time.Hour))
	du, err := directoryBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("disk: %d bytes (du) for %d samples (%d sample records) over %d h: %.2f bytes/sample, %.2f bytes/record\n",
		du, samples, records, benchHours, float64(du)/float64(samples), float64(du)/float64(records))
	fmt.Printf("files: %s\n", fileSummary(dir))
	fmt.Printf("dictionary: %d functions, %d mappings, %d locations, %d stacks, %d label sets, ~%.1f MiB in memory\n",
		s.dict.functions.len(), s.dict.mappings.len(), s.dict.locations.len(), s.dict.stacks.len(), s.dict.labelSets.len(),
		float64(s.dict.memoryBytes())/(1<<20)) // the cache as the queries left it
	fmt.Printf("blocks: %d raw, %d 1m, %d 10m, %d 1h\n", len(s.index[0]), len(s.index[1]), len(s.index[2]), len(s.index[3]))

	r := rand.New(rand.NewSource(7))
	for _, span := range []time.Duration{time.Hour, 24 * time.Hour} {
		var lat, buildLat, writeLat []time.Duration
		var nSamples, wrote int
		for i := range 30 {
			from := start
			if span < benchHours*time.Hour {
				from = start.Add(time.Duration(r.Int63n(int64(benchHours*time.Hour - span))))
			} else if i%2 == 1 {
				// A day that is not aligned to the hour.
				from = start.Add(time.Duration(r.Int63n(int64(time.Hour))))
			}
			t0 := time.Now()
			p, err := s.Query(context.Background(), ProfileQuery{From: from, To: from.Add(span)})
			if err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			nSamples = len(p.Sample)
			t1 := time.Now()
			if err := p.WriteUncompressed(discard{}); err != nil {
				t.Fatal(err)
			}
			buildLat = append(buildLat, time.Since(t1)+lat[len(lat)-1])
			// What the HTTP API serves: records encoded straight to pprof.
			var w countingWriter
			t2 := time.Now()
			if err := s.WriteProfile(context.Background(), ProfileQuery{From: from, To: from.Add(span)}, &w); err != nil {
				t.Fatal(err)
			}
			writeLat = append(writeLat, time.Since(t2))
			wrote = int(w)
		}
		fmt.Printf("query %s: p50 %s p95 %s (merged profile, 30 queries at random offsets, ~%d samples); with pprof encoding p50 %s p95 %s\n",
			span, pct(lat, 50), pct(lat, 95), nSamples, pct(buildLat, 50), pct(buildLat, 95))
		fmt.Printf("WriteProfile %s (merged and encoded as pprof, as the API serves it): p50 %s p95 %s (%.1f MiB uncompressed)\n",
			span, pct(writeLat, 50), pct(writeLat, 95), float64(wrote)/(1<<20))
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Printf("process after queries: heap in use %.1f MiB, RSS %s\n", float64(ms.HeapInuse)/(1<<20), rss())
}

type discard struct{}

type countingWriter int

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)].Round(100 * time.Microsecond)
}

// rss returns the process's resident set: total, anonymous (heap, stacks,
// Badger's allocations) and file-backed (Badger's mmapped tables and
// memtable files, which the kernel can drop).
func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, v, ok := strings.Cut(line, ":"); ok {
			fields[name] = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("%s (anonymous %s, file %s)", fields["VmRSS"], fields["RssAnon"], fields["RssFile"])
}

func fileSummary(dir string) string {
	counts := map[string]int{}
	sizes := map[string]int64{}
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			ext := filepath.Ext(path)
			counts[ext]++
			sizes[ext] += info.Size()
		}
		return nil
	})
	var parts []string
	for ext, n := range counts {
		parts = append(parts, fmt.Sprintf("%s x%d %.1f MiB (apparent)", ext, n, float64(sizes[ext])/(1<<20)))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// countSamples sums the sample counts and records at level 0 in a range.
func (s *Store) countSamples(t testing.TB, from, to time.Time) (samples, records int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	_, err := s.scanPlanned(context.Background(), txn, s.index.plan(nil, from.UnixNano(), to.UnixNano(), 0), Selector{}, nil, func(r record) {
		samples += r.count()
		records++
	})
	if err != nil {
		t.Fatal(err)
	}
	return samples, records
}

func benchmarkQuery(b *testing.B, span time.Duration, query func(*Store, ProfileQuery) error) {
	dir := benchDir(b)
	s := openBench(b, dir)
	defer s.Close()
	st := s.Stats()
	if st.OldestData.IsZero() {
		b.Skip("run TestStorageBenchmark first to backfill ", dir)
	}
	start := st.OldestData.Truncate(time.Hour)
	r := rand.New(rand.NewSource(1))
	b.ResetTimer()
	for b.Loop() {
		from := start.Add(time.Duration(r.Int63n(int64(benchHours*time.Hour - span + time.Second))))
		if err := query(s, ProfileQuery{From: from, To: from.Add(span)}); err != nil {
			b.Fatal(err)
		}
	}
}

func mergedProfile(s *Store, q ProfileQuery) error {
	_, err := s.Query(context.Background(), q)
	return err
}

// encodedProfile is what /api/v1/profile does before gzip.
func encodedProfile(s *Store, q ProfileQuery) error {
	return s.WriteProfile(context.Background(), q, discard{})
}

// stackProfile is what flame graphs ask for.
func stackProfile(s *Store, q ProfileQuery) error {
	_, err := s.StackProfile(context.Background(), q)
	return err
}

// flameStacks is what the UI's flame graph asks for: grouped by process.
func flameStacks(s *Store, q ProfileQuery) error {
	_, err := s.FlameStacks(context.Background(), q, "comm")
	return err
}

func BenchmarkQuery1h(b *testing.B)         { benchmarkQuery(b, time.Hour, mergedProfile) }
func BenchmarkQuery24h(b *testing.B)        { benchmarkQuery(b, 24*time.Hour, mergedProfile) }
func BenchmarkWriteProfile1h(b *testing.B)  { benchmarkQuery(b, time.Hour, encodedProfile) }
func BenchmarkWriteProfile24h(b *testing.B) { benchmarkQuery(b, 24*time.Hour, encodedProfile) }
func BenchmarkStackProfile1h(b *testing.B)  { benchmarkQuery(b, time.Hour, stackProfile) }
func BenchmarkStackProfile24h(b *testing.B) { benchmarkQuery(b, 24*time.Hour, stackProfile) }
func BenchmarkFlameStacks1h(b *testing.B)   { benchmarkQuery(b, time.Hour, flameStacks) }
func BenchmarkFlameStacks24h(b *testing.B)  { benchmarkQuery(b, 24*time.Hour, flameStacks) }

// BenchmarkAppend measures writing one 10-second interval of the generated
// history (about 1,980 samples) into a store.
func BenchmarkAppend(b *testing.B) {
	s := openTest(b, Options{})
	g := backfill.New(backfill.Config{Seed: 42})
	start := time.Now().Add(-time.Hour).Truncate(time.Hour)
	ps := make([]*profileT, 64)
	for i := range ps {
		ps[i] = g.Interval(start.Add(time.Duration(i)*10*time.Second), 10*time.Second)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		p := ps[i%len(ps)].Copy()
		p.TimeNanos = start.Add(time.Duration(i) * 10 * time.Second).UnixNano()
		if err := s.Append(context.Background(), p, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestGeneratorShape prints what one generated interval holds.
func TestGeneratorShape(t *testing.T) {
	g := backfill.New(backfill.Config{Seed: 42})
	p := g.Interval(time.Now(), 10*time.Second)
	n, _ := totals(p)
	t.Logf("one interval: %d samples in %d sample records, %d locations, %d functions, %d mappings", n, len(p.Sample), len(p.Location), len(p.Function), len(p.Mapping))
}

// TestStorageBenchmarkMemory measures the memory of a store as the daemon
// holds it: a copy of the 24-hour benchmark store, opened, then 360 more
// 10-second intervals appended (one hour of writes, as fast as they go), no
// queries. bench/storage.sh runs it in a process of its own.
func TestStorageBenchmarkMemory(t *testing.T) {
	src := benchDir(t)
	dir := t.TempDir()
	copyDir(t, src, dir)
	s := openBench(t, dir)
	defer s.Close()
	fmt.Printf("memory after opening the 24 h store: heap in use %.1f MiB, RSS %s\n", heapMiB(), rss())
	g := backfill.New(backfill.Config{Seed: 42}) // the same host, an hour on
	start := s.Stats().NewestData.Add(10 * time.Second)
	for i := range 360 {
		if err := s.Append(context.Background(), g.Interval(start.Add(time.Duration(i)*10*time.Second), 10*time.Second), nil); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("memory after appending 360 intervals: heap in use %.1f MiB, RSS %s (the generator's profiles included)\n", heapMiB(), rss())
}

func heapMiB() float64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}
