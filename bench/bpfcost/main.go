// Command bpfcost follows a loaded BPF program's kernel statistics
// (run_time_ns, run_cnt; needs kernel.bpf_stats_enabled=1) in short windows,
// so that a run's mean cost per run can be told apart from a few windows in
// which the VM lost its CPU to the host. Used by bench/unwind.sh.
//
//	go run ./bench/bpfcost -name sample -after ID -for 15s -every 500ms
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func main() {
	name := flag.String("name", "sample", "program name")
	after := flag.Uint("after", 0, "only programs with a larger ID (loaded after this one)")
	before := flag.Uint("before", 1<<32-1, "only programs with a smaller ID")
	wait := flag.Duration("wait", 10*time.Second, "how long to wait for the program to appear")
	span := flag.Duration("for", 15*time.Second, "how long to follow it")
	every := flag.Duration("every", 500*time.Millisecond, "window length")
	flag.Parse()
	if err := run(*name, ebpf.ProgramID(*after), ebpf.ProgramID(*before), *wait, *span, *every); err != nil {
		slog.Error("bpfcost", "err", err)
		os.Exit(1)
	}
}

type reading struct {
	runs uint64
	ns   time.Duration
}

func run(name string, after, before ebpf.ProgramID, wait, span, every time.Duration) error {
	prog, err := find(name, after, before, wait)
	if err != nil {
		return err
	}
	defer prog.Close()
	prev, err := read(prog)
	if err != nil {
		return err
	}
	first := prev
	var verified uint32
	if info, err := prog.Info(); err == nil {
		verified, _ = info.VerifiedInstructions()
	}
	var perRun []float64 // ns per run, one per window with runs
	var loop []float64   // CPU time of a fixed loop, one per window
	var chase []float64  // CPU time of a fixed walk through memory
	runtime.LockOSThread()
	ring := newRing(64 << 20)
	for end := time.Now().Add(span); time.Now().Before(end); {
		time.Sleep(every)
		loop = append(loop, fixedLoop())
		chase = append(chase, ring.walk(20_000))
		cur, err := read(prog)
		if err != nil {
			break // the program was unloaded: report what was seen
		}
		if n := cur.runs - prev.runs; n > 0 {
			perRun = append(perRun, float64(cur.ns-prev.ns)/float64(n))
		}
		prev = cur
	}
	if len(perRun) == 0 {
		return errors.New("the program did not run")
	}
	total := prev.runs - first.runs
	mean := float64(prev.ns-first.ns) / float64(total)
	slices.Sort(perRun)
	slices.Sort(loop)
	slices.Sort(chase)
	q := func(p float64) float64 { return perRun[int(p*float64(len(perRun)-1))] }
	fmt.Printf("runs %d mean_ns %.0f windows %d p10_ns %.0f median_ns %.0f p90_ns %.0f max_ns %.0f loop_us %.0f chase_ns %.0f verified_insns %d\n",
		total, mean, len(perRun), q(0.1), q(0.5), q(0.9), perRun[len(perRun)-1], loop[len(loop)/2]/1000, chase[len(chase)/2], verified)
	return nil
}

var sink uint64

// ring is a random cycle through a buffer larger than the caches: walking
// it costs a cache miss and mostly a TLB miss a step.
type ring []uint32

func newRing(bytes int) ring {
	r := make(ring, bytes/64*16) // one step per cache line
	n := uint32(len(r) / 16)
	order := rand.Perm(int(n))
	for i := range order {
		r[uint32(order[i])*16] = uint32(order[(i+1)%len(order)]) * 16
	}
	return r
}

// walk returns the thread CPU time per step, in ns, of steps steps.
func (r ring) walk(steps int) float64 {
	var a, b unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &a)
	i := uint32(sink) % uint32(len(r)/16) * 16
	for range steps {
		i = r[i]
	}
	sink += uint64(i)
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &b)
	return float64(b.Nano()-a.Nano()) / float64(steps)
}

// fixedLoop returns the thread CPU time, in ns, of a fixed amount of
// arithmetic: how fast this vCPU runs at the moment, whoever else shares it.
func fixedLoop() float64 {
	var a, b unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &a)
	x := sink | 1
	for i := 0; i < 1_000_000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	sink = x
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &b)
	return float64(b.Nano() - a.Nano())
}

// find returns the newest program called name with an ID in (after, before).
func find(name string, after, before ebpf.ProgramID, wait time.Duration) (*ebpf.Program, error) {
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		var best *ebpf.Program
		for id := after; ; {
			next, err := ebpf.ProgramGetNextID(id)
			if err != nil || next >= before {
				break
			}
			id = next
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				continue
			}
			if info, err := p.Info(); err == nil && info.Name == name {
				if best != nil {
					best.Close()
				}
				best = p
				continue
			}
			p.Close()
		}
		if best != nil {
			return best, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no program %q with an ID in (%d, %d)", name, after, before)
		}
	}
}

func read(prog *ebpf.Program) (reading, error) {
	st, err := prog.Stats()
	if err != nil {
		return reading{}, err
	}
	return reading{st.RunCount, st.Runtime}, nil
}
