// Command exportcost measures what --export adds to the daemon: it opens a
// store (make one with ember-backfill), sends its whole history to the
// targets given (bench/exportsink, another process), as the daemon's
// exporters would, and prints the CPU time and memory that took per
// interval. Used by bench/export-cost.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ember-profiler/ember/export"
	"github.com/ember-profiler/ember/storage"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssKiB is the process's resident memory now and at its peak.
func rssKiB() (now, peak int64) {
	raw, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(raw), "\n") {
		var v int64
		if n, _ := fmt.Sscanf(line, "VmRSS: %d kB", &v); n == 1 {
			now = v
		}
		if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &v); n == 1 {
			peak = v
		}
	}
	return now, peak
}

func main() {
	dir := flag.String("dir", "", "store to read (not written, except the exporters' cursors)")
	var targets []string
	flag.Func("export", "a target as for ember daemon --export (repeatable)", func(s string) error {
		targets = append(targets, s+",history=true")
		return nil
	})
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the export here")
	memProfile := flag.String("memprofile", "", "with -live, write a heap profile (allocations over the run, memory in use at its end) here")
	liveTo := flag.String("live", "", "store each interval of -dir into a new store here and export it as the daemon does (no -export: export off)")
	flag.Parse()
	if *liveTo != "" {
		live(*dir, *liveTo, targets, *cpuProfile, *memProfile)
		return
	}
	store, err := storage.Open(storage.Options{Dir: *dir, MinFreeDiskBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	_, intervals := store.IntervalsAfter(0, 0)
	// Read everything back once first: the daemon reads an interval it has
	// just written, whose dictionary entries its cache holds; this pass
	// warms the cache likewise, and says what reading back costs alone.
	readCPU := cpuTime()
	refs, _ := store.IntervalsAfter(0, intervals)
	for _, ref := range refs {
		if _, err := store.ReadInterval(context.Background(), ref); err != nil {
			log.Fatal(err)
		}
	}
	readCPU = cpuTime() - readCPU
	fmt.Printf("reading %d intervals back (cold store): %s CPU, %s per interval\n", intervals, readCPU.Round(time.Millisecond),
		(readCPU / time.Duration(intervals)).Round(time.Microsecond))
	runtime.GC()
	rss0, _ := rssKiB()
	cpu0, wall0 := cpuTime(), time.Now()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var wg sync.WaitGroup
	for _, ex := range newExporters(targets, export.Share(store)) {
		wg.Go(func() {
			defer ex.Close()
			if err := ex.Flush(context.Background()); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	rss1, peak := rssKiB()
	per := cpu / time.Duration(intervals)
	fmt.Printf("exported %d intervals to %d targets in %s wall, %s CPU\n", intervals, len(targets), wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
	fmt.Printf("CPU per interval (all targets): %s = %.4f%% of one core at a 10 s interval\n", per.Round(time.Microsecond), 100*per.Seconds()/10)
	fmt.Printf("RSS: %.1f MiB before exporting (store read once), %.1f MiB after, peak %.1f MiB (+%.1f MiB over before)\n",
		float64(rss0)/1024, float64(rss1)/1024, float64(peak)/1024, float64(peak-rss0)/1024)
}

// newExporters makes an exporter per target over history, shared as the
// daemon shares it, logging only warnings.
func newExporters(targets []string, history *export.SharedHistory) []*export.Exporter {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var exps []*export.Exporter
	for _, s := range targets {
		t, err := export.ParseTarget(s)
		if err != nil {
			log.Fatal(err)
		}
		ex, err := export.New(t, export.Options{History: history, Logger: quiet})
		if err != nil {
			log.Fatal(err)
		}
		exps = append(exps, ex)
	}
	return exps
}
