package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

// sleepsPy blocks in time.sleep, for the same time at each call, from
// three Python functions: f (two calls), g (one) and h (one, called twice
// from one place), and writes the time it measured in each. It warms up
// until the file named by its second argument exists, then measures for
// the seconds of its first. Since 3.11 the native stack at every sleep is
// the same: only the Python frames tell them apart.
const sleepsPy = `import os, sys, time
def f():
    time.sleep(0.001)
    time.sleep(0.001)
def g():
    time.sleep(0.001)
def h():
    time.sleep(0.001)
def each():
    f(); g()
    for _ in range(2):
        h()
start, out = sys.argv[2], sys.argv[3]
while not os.path.exists(start):
    each()
t = [0, 0, 0]
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    t0 = time.perf_counter_ns(); f(); t1 = time.perf_counter_ns(); g(); t2 = time.perf_counter_ns()
    for _ in range(2):
        h()
    t3 = time.perf_counter_ns()
    t[0] += t1 - t0; t[1] += t2 - t1; t[2] += t3 - t2
with open(out, "w") as w:
    w.write(f"{t[0]} {t[1]} {t[2]}\n")
`

// sleepsFuncs are the functions of sleepsPy, in the order it writes them.
var sleepsFuncs = []string{"f", "g", "h"}

// sleepsRun is one CPython's run of sleepsPy: off-CPU time under each of
// its functions, as Ember saw it and as the program measured it.
type sleepsRun struct {
	name     string
	pid      uint32
	out      string
	got      [3]time.Duration
	measured [3]time.Duration
	// Waits that began with a preemption, which take no stacks: on a
	// loaded host they fall inside any function's measured time.
	preempted time.Duration
}

// TestOffCPUPythonReuse profiles CPython 3.11+ threads that block at the
// same native place from three Python functions in turn: each function's
// share of the off-CPU time is within 3 points of the share the program
// measured, so a thread's last stacks are not reused for another's wait,
// and some are reused (h's second call of each round).
func TestOffCPUPythonReuse(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "sleeps.py")
	if err := os.WriteFile(script, []byte(sleepsPy), 0o644); err != nil {
		t.Fatal(err)
	}
	start := filepath.Join(dir, "start")
	var runs []*sleepsRun
	var pids []uint32
	byPID := map[uint32]*sleepsRun{}
	for minor := 11; minor <= 13; minor++ {
		var exe string
		t.Run(fmt.Sprintf("find 3.%d", minor), func(t *testing.T) { exe = pythonBuild(t, minor) })
		if exe == "" {
			continue
		}
		out := filepath.Join(dir, fmt.Sprintf("3.%d.out", minor))
		cmd := startFixture(t, exe, script, "2", start, out)
		r := &sleepsRun{name: fmt.Sprintf("3.%d", minor), pid: uint32(cmd.Process.Pid), out: out}
		runs, pids, byPID[r.pid] = append(runs, r), append(pids, r.pid), r
	}
	if len(runs) == 0 {
		t.Skip("no CPython 3.11+ build to run")
	}
	c := newCollector(t, Config{PIDs: pids, OffCPU: true})

	// Warm up until every process's waits carry Python frames: its
	// interpreter found and its unwind tables in.
	ready := map[uint32]bool{}
	deadline := time.Now().Add(testenv.CPUTimeout)
	for len(ready) < len(runs) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d fixtures had waits with Python frames in %s", len(ready), len(runs), testenv.CPUTimeout)
		}
		time.Sleep(250 * time.Millisecond)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Samples {
			py := pythonOnly(s.UserFrames)
			if s.State != model.StateNone && len(py) > 0 && slices.Contains(sleepsFuncs, py[0].Function) {
				ready[s.PID] = true
			}
		}
	}
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	finish := drainInBackground(t, c)
	for _, r := range runs {
		for {
			raw, err := os.ReadFile(r.out)
			if err == nil && len(raw) > 0 {
				var ns [3]int64
				if _, err := fmt.Sscan(string(raw), &ns[0], &ns[1], &ns[2]); err != nil {
					t.Fatalf("%s wrote %q: %v", r.name, raw, err)
				}
				for i, n := range ns {
					r.measured[i] = time.Duration(n)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s wrote no measurements in %s", r.name, testenv.CPUTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var reused, walked uint64
	for _, b := range finish() {
		checkOffCPUAccounting(t, b)
		reused += b.Stats.OffCPU.Reused
		walked += b.Stats.OffCPU.Walked
		for _, s := range b.Samples {
			r := byPID[s.PID]
			if r == nil || s.State == model.StateNone {
				continue
			}
			py := pythonOnly(s.UserFrames)
			if s.UserLost == model.LostPreempted {
				r.preempted += time.Duration(s.Values[0])
			} else if i := slices.Index(sleepsFuncs, py0(py)); i >= 0 {
				r.got[i] += time.Duration(s.Values[0])
			}
		}
	}
	t.Logf("switch-outs: %d reused their last stacks, %d walked", reused, walked)
	if reused == 0 {
		t.Errorf("no switch-out reused its last stacks: h blocks twice from one place")
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			var got, measured time.Duration
			for i := range sleepsFuncs {
				got += r.got[i]
				measured += r.measured[i]
			}
			t.Logf("off CPU under f, g, h: %v, preempted %s; measured %v", r.got, r.preempted, r.measured)
			if got < measured/2 {
				t.Fatalf("f, g and h have %s off CPU, want most of the %s measured", got, measured)
			}
			// The preempted time may be any function's. Five points: CI's
			// loaded step (load 23) saw h 3.1 points under the program's own
			// clock; a reuse across places gives one function 98-100%.
			const slack = 5
			all := float64(got + r.preempted)
			for i, fn := range sleepsFuncs {
				want := 100 * float64(r.measured[i]) / float64(measured)
				lo, hi := 100*float64(r.got[i])/all, 100*float64(r.got[i]+r.preempted)/all
				if want < lo-slack || want > hi+slack {
					t.Errorf("%s: %.1f-%.1f%% of the time off CPU (as the preempted %s falls), measured %.1f%%, want within %d points",
						fn, lo, hi, r.preempted, want, slack)
				}
			}
		})
	}
}

// py0 is the leaf function of Python frames, or "".
func py0(py []model.Frame) string {
	if len(py) == 0 {
		return ""
	}
	return py[0].Function
}
