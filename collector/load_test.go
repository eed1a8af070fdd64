package collector

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

// The tests here run on loaded machines too (CI runners are shared): they
// wait for CPU time the kernel charged a fixture, not for wall-clock time,
// and compare the samples with that charge (see internal/testenv).

// untilKilled is the run time, in seconds, given to fixtures the test stops
// itself: longer than any test waits, short enough that a leaked one ends.
const untilKilled = "600"

// startFixture runs a testdata program with args until the test ends.
func startFixture(t *testing.T, path string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// drainUntilCPU drains c every 250 ms, handing each batch to each, until the
// kernel has charged pid cpu more than when it was called, and returns what
// it charged from the call to the last drain: the CPU time those batches'
// samples of pid stand for.
func drainUntilCPU(t *testing.T, c *Collector, pid uint32, cpu time.Duration, each func(*model.Batch)) time.Duration {
	t.Helper()
	before := testenv.CPU(t, int(pid))
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		time.Sleep(250 * time.Millisecond)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		each(b)
		got := testenv.CPU(t, int(pid)) - before
		if got >= cpu {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d got %s of CPU in %s, want %s", pid, got, testenv.CPUTimeout, cpu)
		}
	}
}

// waitExec waits until process pid runs the program at path (after its
// execve), and returns the CPU time it had used by then.
func waitExec(t *testing.T, pid int, path string) time.Duration {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		if exe == path {
			return testenv.CPU(t, pid)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs %s after %s, want %s", pid, exe, testenv.CPUTimeout, path)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitMapped waits until process pid maps a file whose path ends in suffix.
func waitMapped(t *testing.T, pid int, suffix string) {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		maps, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "maps"))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		if strings.Contains(string(maps), suffix+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d maps no %s after %s", pid, suffix, testenv.CPUTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitInstalled drains c until process pid has its unwind ranges installed
// (its tables are built on a goroutine of their own, slowly on a loaded
// machine), and returns the tables it uses and the stats of that drain.
func waitInstalled(t *testing.T, c *Collector, pid uint32) ([]string, model.UnwindTableStats) {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		c.unwind.mu.Lock()
		in := c.unwind.installs[pid]
		var tables []string
		if in != nil {
			tables = slices.Clone(in.tables)
		}
		c.unwind.mu.Unlock()
		// Drained after the install, the stats include it.
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		if in != nil {
			return tables, b.Stats.Unwind.Tables
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d has no unwind ranges after %s: %+v", pid, testenv.CPUTimeout, b.Stats.Unwind.Tables)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The collector reads its notifications of new and ended processes on a
// goroutine of its own, which a loaded machine may hold back for seconds;
// tests about what it does with them wait for them to be read.

// waitObserved waits until the collector has read pid's notification of a
// new image for which match holds (a snapshot taken while it ran).
func waitObserved(t *testing.T, c *Collector, pid uint32, match func(*model.Process) bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		c.tracker.mu.Lock()
		found := false
		for key, tp := range c.tracker.procs {
			if key.PID == pid && tp.snapshot.SnapshotErr == nil && match(tp.snapshot) {
				found = true
			}
		}
		c.tracker.mu.Unlock()
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not observed by the collector in %s", pid, testenv.CPUTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExitSeen waits until the collector has read that pid exited.
func waitExitSeen(t *testing.T, c *Collector, pid uint32) {
	t.Helper()
	deadline := time.Now().Add(testenv.CPUTimeout)
	for {
		c.tracker.mu.Lock()
		images, ended := 0, 0
		for key, tp := range c.tracker.procs {
			if key.PID == pid {
				images++
				if tp.exitedAt != 0 {
					ended++
				}
			}
		}
		c.tracker.mu.Unlock()
		if images > 0 && ended == images {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector has not seen pid %d exit after %s (%d of its %d images ended)", pid, testenv.CPUTimeout, ended, images)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drainInBackground drains c every 250 ms until the returned function is
// called, which drains once more and returns every batch: for tests that
// wait on something else while a whole-host collector's maps, undrained,
// would fill with the rest of a busy machine's stacks.
func drainInBackground(t *testing.T, c *Collector) func() []*model.Batch {
	t.Helper()
	var (
		mu      sync.Mutex
		batches []*model.Batch
		errs    []error
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			b, err := c.Drain()
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				batches = append(batches, b)
			}
			mu.Unlock()
		}
	}()
	return func() []*model.Batch {
		t.Helper()
		close(stop)
		<-done
		b, err := c.Drain()
		if err != nil {
			errs = append(errs, err)
		}
		for _, err := range errs {
			t.Error(err)
		}
		return append(batches, b)
	}
}
