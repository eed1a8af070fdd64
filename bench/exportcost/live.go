package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/export"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage"
)

// live does what the daemon does per interval, export on or off: it
// stores each interval of src (read back, standing for the profile the
// pipeline names) into a new store in dst, hands it to the exporters and
// waits until every one has sent it before the next, as exporters keeping
// up with a daemon at a 10 s interval do. Without targets it is the same
// work with export off; the difference of two runs is what export adds.
func live(src, dst string, targets []string, cpuProfile, memProfile string) {
	from, err := storage.Open(storage.Options{Dir: src, MinFreeDiskBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer from.Close()
	to, err := storage.Open(storage.Options{Dir: dst, MinFreeDiskBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer to.Close()
	_, intervals := from.IntervalsAfter(0, 0)
	refs, _ := from.IntervalsAfter(0, intervals)

	shared := export.Share(to) // as the daemon does
	exps := newExporters(targets, shared)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, ex := range exps {
		wg.Go(func() {
			if err := ex.Run(ctx); err != nil {
				log.Fatal(err)
			}
		})
	}
	if memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // enough samples in one run
	}
	runtime.GC()
	rss0, _ := rssKiB()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cpu0, wall0 := cpuTime(), time.Now()
	for _, ref := range refs {
		p, err := from.ReadInterval(ctx, ref)
		if err != nil {
			log.Fatal(err)
		}
		host := hostLabels(p)
		if err := to.Append(ctx, p, host); err != nil {
			log.Fatal(err)
		}
		shared.Stored(p, host)
		for _, ex := range exps {
			ex.Wake()
		}
		waitSent(exps, p.TimeNanos)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			log.Fatal(err)
		}
		runtime.GC()
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	cancel()
	wg.Wait()
	for _, ex := range exps {
		ex.Close()
	}
	_, peak := rssKiB()
	per := cpu / time.Duration(len(refs))
	fmt.Printf("live, %d targets: %d intervals stored in %s wall, %s CPU, %s per interval; peak RSS %.1f MiB (%.1f MiB at the start)\n",
		len(exps), len(refs), wall.Round(time.Millisecond), cpu.Round(time.Millisecond), per.Round(time.Microsecond),
		float64(peak)/1024, float64(rss0)/1024)
}

// hostLabels are the labels of p's first sample that the store keeps as
// the host's: those that are not a process's.
func hostLabels(p *profile.Profile) map[string]string {
	host := map[string]string{}
	if len(p.Sample) == 0 {
		return host
	}
	for name, v := range p.Sample[0].Label {
		if !schema.Reserved(name) && len(v) > 0 {
			host[name] = v[0]
		}
	}
	return host
}

// waitSent returns once every exporter's cursor has reached key.
func waitSent(exps []*export.Exporter, key int64) {
	for _, ex := range exps {
		for {
			st := ex.Status()
			if st.State == "retrying" {
				log.Fatalf("%s: %s", st.Name, st.LastError)
			}
			if c, ok, _ := ex.Cursor(); ok && c >= key {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}
