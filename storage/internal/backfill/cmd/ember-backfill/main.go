// Command ember-backfill fills a store with generated history (package
// backfill's busy host: about 200 processes on 2 busy CPUs at 99 Hz, 10 s
// intervals) for benchmarks that need one, such as bench/ui.sh. It writes
// the hours before the last whole hour and refuses a directory that
// already holds a store. With -then-copy it writes the hours before the
// first interval of a store the daemon recorded, then copies that store's
// intervals after them: recorded live data on top of generated history.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/storage/internal/backfill"
)

func main() {
	dir := flag.String("dir", "", "store directory to create")
	hours := flag.Int("hours", 2, "hours of history to write")
	seed := flag.Int64("seed", 42, "generator seed")
	transient := flag.Float64("transient-per-min", 0, "short-lived processes started per minute, each a new pid (0: the generator's default of 2)")
	thenCopy := flag.String("then-copy", "", "a recorded store whose intervals follow the generated hours (opened read-write: copy it first)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		log.Fatalf("%s is not empty", *dir)
	}
	store, err := storage.Open(storage.Options{Dir: *dir, MinFreeDiskBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	const interval = 10 * time.Second
	end := time.Now().UTC().Truncate(time.Hour)
	var recorded *storage.Store
	if *thenCopy != "" {
		recorded, err = storage.Open(storage.Options{Dir: *thenCopy, MinFreeDiskBytes: 64 << 20})
		if err != nil {
			log.Fatal(err)
		}
		first, _ := recorded.IntervalsAfter(0, 1)
		if len(first) == 0 {
			log.Fatalf("%s holds no intervals", *thenCopy)
		}
		end = first[0].Start().UTC().Truncate(interval)
	}
	start := end.Add(-time.Duration(*hours) * time.Hour)
	g := backfill.New(backfill.Config{Seed: *seed, TransientPerMin: *transient})
	n := int(end.Sub(start) / interval)
	began := time.Now()
	for i := range n {
		p := g.Interval(start.Add(time.Duration(i)*interval), interval)
		if err := store.Append(context.Background(), p, map[string]string{"host": "bench-1"}); err != nil {
			log.Fatal(err)
		}
		if i%360 == 359 {
			fmt.Fprintf(os.Stderr, "backfilled %d/%d intervals in %s\n", i+1, n, time.Since(began).Round(time.Second))
		}
	}
	copied := 0
	if recorded != nil {
		copied, err = copyIntervals(store, recorded)
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}
	abs, _ := filepath.Abs(*dir)
	fmt.Printf("backfilled %s to %s (%d intervals) into %s in %s\n",
		start.Format(time.RFC3339), end.Format(time.RFC3339), n, abs, time.Since(began).Round(time.Second))
	if recorded != nil {
		fmt.Printf("then copied %d recorded intervals from %s\n", copied, *thenCopy)
	}
}

// copyIntervals appends every interval of from to to, oldest first, with
// the labels they were stored under (host labels included, as sample
// labels).
func copyIntervals(to, from *storage.Store) (int, error) {
	defer from.Close()
	ctx := context.Background()
	var after int64
	copied := 0
	for {
		refs, _ := from.IntervalsAfter(after, 64)
		if len(refs) == 0 {
			return copied, nil
		}
		for _, ref := range refs {
			p, err := from.ReadInterval(ctx, ref)
			if err != nil {
				return copied, err
			}
			if err := to.Append(ctx, p, nil); err != nil {
				return copied, fmt.Errorf("interval at %s: %w", ref.Start().UTC().Format(time.RFC3339), err)
			}
			after = ref.Key
			copied++
		}
	}
}
