// Command querymem measures how much one API request adds to the resident
// memory of a process that serves a store as the daemon does (web.New over
// storage.Open, GOGC 50): it opens the store, settles, resets the kernel's
// peak-RSS mark, sends the request (or several at once) over HTTP and
// prints the peak RSS above the RSS before, with the Go heap's figures.
// Run one request per process, so that each starts from the same state:
//
//	go run ./bench/querymem -dir STORE -url '/api/v1/series?from=-24h&step=10s&group_by=pid'
//
// bench/querymem.sh backfills a churning store and runs the requests that
// docs/benchmarks.md quotes. Linux only (/proc/self/status, clear_refs).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/web"
)

func main() {
	dir := flag.String("dir", "", "store directory")
	path := flag.String("url", "", "request path and query, e.g. /api/v1/flamegraph?from=-24h")
	parallel := flag.Int("parallel", 1, "requests sent at once")
	out := flag.String("out", "", "file to write the (last) answer's body to, as sent (gzipped if the server chose to)")
	allocProfile := flag.String("allocprofile", "", "file to write a heap profile to after the request (its alloc_space is mostly the request's)")
	peakHeap := flag.String("peakheap", "", "file to write a heap profile to, taken when the live heap was highest during the request (inuse_space is what the request held)")
	cpuProfile := flag.String("cpuprofile", "", "file to write a CPU profile of the request (not the settling) to")
	warm := flag.String("warm", "", "request sent before settling, e.g. the pprof profile of the same range: fills the dictionary cache to its budget, as a running daemon's is")
	flag.Parse()
	if *dir == "" || *path == "" {
		log.Fatal("-dir and -url are required")
	}
	debug.SetGCPercent(50) // as the daemon runs
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := storage.Open(storage.Options{Dir: *dir, MinFreeDiskBytes: 1 << 20, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	api, err := web.New(web.Options{Store: web.FromStorage(store), Logger: quiet,
		Limits: web.Limits{RequestTimeout: 10 * time.Minute, MaxConcurrentQueries: 2, QueueWait: 10 * time.Minute}})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go api.Serve(ctx, l)
	base := "http://" + l.Addr().String()

	// Settle: a small request, then give memory back (fresh), then let the
	// heap grow to its collection target as a running daemon's does with
	// its own garbage (settled), so that the figure is the request's alone.
	if _, _, err := get(base+"/api/v1/labels?from=-5m", ""); err != nil {
		log.Fatal(err)
	}
	if *warm != "" {
		if _, _, err := get(base+*warm, ""); err != nil {
			log.Fatal(err)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	fresh := status("VmRSS")
	churn()
	settled := status("VmRSS")
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil { // resets VmHWM to VmRSS
		log.Fatal(err)
	}
	// The live heap after each collection, sampled: its peak above the
	// settled one is the request's own memory, without the collector's
	// headroom and timing that move RSS.
	live0 := liveHeap()
	var peakLive atomic.Int64
	var peakProfile bytes.Buffer // written by the sampler only, read after it stops
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if l := liveHeap(); l > peakLive.Load() {
				// A new profile only for a peak 1 MiB higher: writing one
				// takes longer than the sampling period.
				if *peakHeap != "" && l > peakLive.Load()+1<<20 {
					peakProfile.Reset()
					_ = pprof.Lookup("heap").WriteTo(&peakProfile, 0)
				}
				peakLive.Store(l)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bytes int64
	codes := map[int]int{}
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, code, err := get(base+*path, *out)
			if err != nil {
				log.Fatal(err)
			}
			mu.Lock()
			bytes += n
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	took, cpu := time.Since(start), cpuTime()-cpu0
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	close(stopSampling)
	<-sampled
	peak := status("VmHWM")
	if *peakHeap != "" {
		if err := os.WriteFile(*peakHeap, peakProfile.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *allocProfile != "" {
		f, err := os.Create(*allocProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	fmt.Printf("%s x%d: status %v, %.1f MB of body (gzipped), %s (CPU %s); RSS fresh %.1f MiB, settled %.1f MiB, peak %.1f MiB: +%.1f MiB over settled (+%.1f over fresh); live heap peak +%.1f MiB; Go allocated %.1f MiB\n",
		*path, *parallel, codes, float64(bytes)/1e6, took.Round(time.Millisecond), cpu.Round(time.Millisecond),
		mib(fresh), mib(settled), mib(peak), mib(peak-settled), mib(peak-fresh),
		mib(peakLive.Load()-live0), mib(int64(ms1.TotalAlloc-ms0.TotalAlloc)))
}

// cpuTime is the process's user and system time: on a shared machine it
// moves less with the others' load than the request's wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// liveHeap is the heap the last collection found live.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

var sink []byte

// churn allocates short-lived garbage until the collector has run a few
// times, so that the heap has grown to its target once.
func churn() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for gcs := ms.NumGC; ms.NumGC < gcs+3; runtime.ReadMemStats(&ms) {
		for range 1024 {
			sink = make([]byte, 64<<10)
		}
	}
	sink = nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// get sends a request (accepting gzip, as browsers do) and reads the body,
// keeping it in file out if one is named.
func get(url, out string) (int64, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var w io.Writer = io.Discard
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, resp.Body)
	return n, resp.StatusCode, err
}

// status reads a kB field of /proc/self/status, in bytes.
func status(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if err != nil {
				log.Fatal(err)
			}
			return kb << 10
		}
	}
	log.Fatal(errors.New("no " + field + " in /proc/self/status"))
	return 0
}
