package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

const waitsC = "../testdata/offcpu/waits"

// waitsResult is what the waits fixture measured of its worker thread.
type waitsResult struct {
	tid                                 uint32
	sleep, pipe, wall, onCPU, offCPUSum time.Duration
}

// runWaits runs the waits fixture for seconds under c, following it from
// its fork, and returns its measurements and every batch drained meanwhile.
// The worker starts once the process's unwind tables are in, so that its
// stacks are walked by Ember's unwinder from its first wait.
func runWaits(t *testing.T, c *Collector, seconds string) (waitsResult, []*model.Batch) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "waits.out")
	cmd := exec.Command(waitsC, seconds, out)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", waitsC, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitInstalled(t, c, uint32(cmd.Process.Pid))
	finish := drainInBackground(t, c)
	if _, err := stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("waits: %v", err)
	}
	batches := finish()
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r waitsResult
	var sleep, pipe, wall, onCPU int64
	if _, err := fmt.Sscan(string(raw), &r.tid, &sleep, &pipe, &wall, &onCPU); err != nil {
		t.Fatalf("waits wrote %q: %v", raw, err)
	}
	r.sleep, r.pipe, r.wall, r.onCPU = time.Duration(sleep), time.Duration(pipe), time.Duration(wall), time.Duration(onCPU)
	return r, batches
}

// checkOffCPUAccounting asserts that every switch-in of a thread seen
// leaving is recorded, or counted as short or lost, and that the samples
// add up to the waits recorded.
func checkOffCPUAccounting(t *testing.T, b *model.Batch) {
	t.Helper()
	st := b.Stats.OffCPU
	if st.Arrived != st.Recorded+st.Short+st.CountMapFull {
		t.Errorf("arrived %d != recorded %d + short %d + count map full %d", st.Arrived, st.Recorded, st.Short, st.CountMapFull)
	}
	if st.Left != st.Reused+st.Walked+st.Preempted {
		t.Errorf("left %d != reused %d + walked %d + preempted %d", st.Left, st.Reused, st.Walked, st.Preempted)
	}
	var waits int64
	for _, s := range b.Samples {
		if s.State != model.StateNone {
			waits += s.Values[1]
		}
		// A preemption takes no stacks, and its wait is for a CPU.
		if s.UserLost == model.LostPreempted && (s.State != model.StateRunnable || len(s.User) > 0 || len(s.Kernel) > 0 || s.KernelLost != model.LostNone) {
			t.Errorf("preempted wait of %d: state %s, %d user and %d kernel frames, kernel %s", s.TID, s.State, len(s.User), len(s.Kernel), s.KernelLost)
		}
	}
	if uint64(waits) != st.Recorded {
		t.Errorf("samples add up to %d waits, stats say %d recorded", waits, st.Recorded)
	}
	if st.StacksGone > 0 {
		t.Errorf("%d waits found their stack gone at the drain", st.StacksGone)
	}
}

// TestOffCPUTruth profiles a thread with known waits: the time off the CPU
// under each function is within 5% of what the thread measured around its
// blocking calls, and its time off the CPU plus its time on it (the
// kernel's schedstat) is its wall time within 2%, or more by at most the
// time it spent preempted (which may fall outside the measured window).
func TestOffCPUTruth(t *testing.T) {
	testenv.RequireBPF(t)
	c := newCollector(t, Config{ForkParent: uint32(os.Getpid()), OffCPU: true})
	r, batches := runWaits(t, c, "2")
	syms := loadExeSymbols(t, mustAbs(t, waitsC))

	// cut is the time of waits whose user stack could not be walked to its
	// end (tables not in yet, on a loaded host): it may belong to either
	// function, and it is counted, not silently lost.
	var sleep, pipe, total, cut, preempted time.Duration
	states := map[model.ThreadState]time.Duration{}
	var unnamed []string
	for _, b := range batches {
		checkOffCPUAccounting(t, b)
		if !slices.Equal(b.ValueTypes, offCPUValueTypes) {
			t.Fatalf("value types %v", b.ValueTypes)
		}
		for _, s := range b.Samples {
			if s.TID != r.tid || s.State == model.StateNone {
				continue
			}
			d := time.Duration(s.Values[0])
			total += d
			states[s.State] += d
			names := syms.names(b.Processes[s.Key()], s.User)
			switch {
			case s.UserLost == model.LostPreempted:
				preempted += d
			case slices.Contains(names, "sleep_part"):
				sleep += d
			case slices.Contains(names, "pipe_part"):
				pipe += d
			default:
				if s.UserEnd != model.UnwindComplete || s.UserLost != model.LostNone {
					cut += d
				}
				if d > time.Millisecond && len(unnamed) < 5 {
					unnamed = append(unnamed, fmt.Sprintf("%s %s: %v (%s, %s)", d, s.State, names, s.UserEnd, s.UserLost))
				}
			}
		}
	}
	t.Logf("worker %d: wall %s, on CPU %s; off CPU %s (sleep_part %s, measured %s; pipe_part %s, measured %s; cut stacks %s; preempted %s); by state %v",
		r.tid, r.wall, r.onCPU, total, sleep, r.sleep, pipe, r.pipe, cut, preempted, states)
	if len(unnamed) > 0 {
		t.Logf("long waits under neither function: %v", unnamed)
	}
	// Within the tolerance, and below it by at most the waits with cut
	// stacks, which may be either function's.
	within := func(what string, got, want time.Duration, tolerance float64, unknown time.Duration) {
		t.Helper()
		if d := float64(got - want); d > tolerance*float64(want) || -d > tolerance*float64(want)+float64(unknown) {
			t.Errorf("%s: %s, want %s within %.0f%% (less up to %s of waits with cut stacks)", what, got, want, 100*tolerance, unknown)
		}
	}
	within("off CPU in sleep_part", sleep, r.sleep, 0.05, cut)
	within("off CPU in pipe_part", pipe, r.pipe, 0.05, cut)
	// The worker's wall time runs from its first instruction to its last
	// measurement; its schedstat and its waits run from thread start to
	// exit. A preemption just before or after the window (a loaded host's
	// timeslice, tens of ms) is counted here and not there: the sum may
	// exceed the wall time by the time spent preempted, never fall short.
	if sum := total + r.onCPU; float64(sum-r.wall) > 0.02*float64(r.wall)+float64(preempted) || float64(r.wall-sum) > 0.02*float64(r.wall) {
		t.Errorf("off CPU + on CPU: %s, want %s within 2%% (more by up to the %s preempted, at the window's ends)", sum, r.wall, preempted)
	}
	if states[model.StateSleeping] < (r.sleep+r.pipe)*9/10 {
		t.Errorf("sleeping %s, want most of the %s in nanosleep and read", states[model.StateSleeping], r.sleep+r.pipe)
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
