package collector

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

const hotspotC = "../testdata/hotspot/hotspot"

// startHotspot runs the C fixture until the test ends.
func startHotspot(t *testing.T) *exec.Cmd {
	t.Helper()
	return startFixture(t, hotspotC, untilKilled)
}

func newCollector(t *testing.T, cfg Config) *Collector {
	t.Helper()
	testenv.RequireBPF(t)
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("start collector: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkAccounting asserts that every sample the program took is accounted
// for: recorded in a count, or counted as left out or lost.
func checkAccounting(t *testing.T, b *model.Batch) {
	t.Helper()
	st := b.Stats
	if got := st.Idle + st.Filtered + st.Recorded + st.CountMapFull; got != st.Taken {
		t.Errorf("taken %d != idle %d + filtered %d + recorded %d + count map full %d", st.Taken, st.Idle, st.Filtered, st.Recorded, st.CountMapFull)
	}
	var sum uint64
	userLost := map[model.LossReason]uint64{}
	for _, s := range b.Samples {
		sum += s.Count
		userLost[s.UserLost] += s.Count
	}
	if sum != st.Recorded {
		t.Errorf("samples add up to %d, stats say %d recorded", sum, st.Recorded)
	}
	for _, r := range []model.LossReason{model.LostCollision, model.LostMapFull, model.LostKernelThread, model.LostExiting, model.LostExecve, model.LostOther} {
		if userLost[r] != st.UserLost[r] {
			t.Errorf("user stacks lost to %s: samples say %d, stats say %d", r, userLost[r], st.UserLost[r])
		}
	}
}

func TestSamplesOneProcess(t *testing.T) {
	hot := startHotspot(t)
	pid := uint32(hot.Process.Pid)
	// 999 Hz: about a thousand samples a CPU second, enough to compare
	// with the kernel's accounting after a short wait on a loaded machine.
	c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 999})

	exe, _ := filepath.Abs(hotspotC)
	var total uint64
	var inExe uint64
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	var periodNanos int64
	cpu := drainUntilCPU(t, c, pid, 1500*time.Millisecond, func(b *model.Batch) {
		periodNanos = b.PeriodNanos
		checkAccounting(t, b)
		for _, s := range b.Samples {
			if s.PID != pid {
				t.Fatalf("sample of pid %d passed the filter for %d", s.PID, pid)
			}
			if s.Comm != "hotspot" {
				t.Errorf("comm %q, want hotspot", s.Comm)
			}
			total += s.Count
			p := b.Processes[s.Key()]
			if p == nil {
				t.Fatalf("no process snapshot for %d", pid)
			}
			if p.Exe != exe {
				t.Errorf("exe %q, want %q", p.Exe, exe)
			}
			if len(s.User) == 0 {
				continue
			}
			if m := p.FindMapping(s.User[0]); m != nil && m.Path == exe {
				if m.File == nil {
					t.Errorf("mapping of %s has no file held", m.Path)
				}
				inExe += s.Count
			}
		}
	})
	// The samples must tell the truth: as much CPU time as the kernel charged
	// the process over the same window, whatever share of a CPU it got.
	if err := testenv.SamplesAgree(int64(total), time.Duration(periodNanos), cpu); err != nil {
		t.Error(err)
	} else {
		t.Logf("%d samples = %s of CPU; the kernel charged %s", total, time.Duration(int64(total)*periodNanos), cpu)
	}
	if inExe < total*9/10 {
		t.Errorf("only %d of %d samples have their leaf in %s", inExe, total, exe)
	}
}

// A process that runs for 100 ms of CPU and exits before the drain must
// still be attributed, with its mappings and files captured at first sight.
// (A run of fixed wall-clock time gets next to no CPU on a loaded machine.)
func TestShortLivedProcess(t *testing.T) {
	c := newCollector(t, Config{FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hotspotC, untilKilled)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", hotspotC, err)
	}
	pid := uint32(cmd.Process.Pid)
	testenv.WaitCPU(t, int(pid), 100*time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	waitExitSeen(t, c, pid)
	b, err := c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	var n uint64
	for _, s := range b.Samples {
		if s.PID == pid {
			n += s.Count
		}
	}
	if err := testenv.SamplesAgree(int64(n), time.Duration(b.PeriodNanos), cpu); err != nil {
		t.Fatalf("short-lived process: %v", err)
	}
	// The samples after the execve belong to the hotspot's own image.
	exe, _ := filepath.Abs(hotspotC)
	var p *model.Process
	for key, image := range b.Processes {
		if key.PID == pid && image.Exe == exe {
			p = image
		}
	}
	if p == nil || p.SnapshotErr != nil {
		t.Fatalf("process %d was not captured before it exited: %+v", pid, b.Processes)
	}
	if !p.Exited {
		t.Error("process not marked exited")
	}
	held := 0
	for _, m := range p.Mappings {
		if m.File != nil {
			held++
			if _, err := m.File.Stat(); err != nil {
				t.Errorf("file of %s closed too early: %v", m.Path, err)
			}
		}
	}
	// At least the executable. Under bench/load.sh the snapshot once held
	// only one file, not libc too: a snapshot taken before the loader had
	// mapped the libraries, not refreshed since (issue 15, open).
	if held < 1 {
		t.Errorf("no mapped file held for the exited process, want the executable at least")
	}
}

// With tiny stack maps, stacks must be lost and reported (the map full, or
// a hash collision), never silently mis-attributed.
func TestStackLossIsCounted(t *testing.T) {
	startHotspot(t)
	startFixture(t, "../testdata/hotspot/hotspot-go", untilKilled)
	// Hundreds of distinct stacks a CPU second: recursion of varying depth
	// through libc's qsort, with the leaf anywhere in the comparator.
	qs := startFixture(t, "../testdata/unwind/qsort-nofp", untilKilled)
	c := newCollector(t, Config{StackMapEntries: 64, FrequencyHz: 499})
	var lost uint64
	drainUntilCPU(t, c, uint32(qs.Process.Pid), 500*time.Millisecond, func(b *model.Batch) {
		checkAccounting(t, b)
		for _, r := range []model.LossReason{model.LostCollision, model.LostMapFull} {
			lost += b.Stats.UserLost[r] + b.Stats.KernelLost[r]
		}
	})
	if lost == 0 {
		t.Error("no losses reported with a 64-entry stack map under load; losses are not being counted")
	}
}

// The sampler skips storing a stack it already stored in the current
// generation's map (a per-CPU record); every drain must still find the
// stacks of its samples, including the ones seen in earlier generations of
// the same buffer.
func TestStacksFoundAfterEveryDrain(t *testing.T) {
	hot := startHotspot(t)
	pid := hot.Process.Pid
	c := newCollector(t, Config{PIDs: []uint32{uint32(pid)}, FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	var withStack uint64
	for i := range 8 {
		// About 25 samples in each drain, however loaded the machine.
		testenv.WaitCPU(t, pid, testenv.CPU(t, pid)+25*time.Millisecond)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, b)
		var n uint64
		for _, s := range b.Samples {
			if s.UserLost == model.LostDrained || s.KernelLost == model.LostDrained {
				t.Errorf("drain %d: %d samples name a stack that is not in the map", i, s.Count)
			}
			if len(s.User) > 0 {
				n += s.Count
			}
		}
		if n == 0 {
			t.Errorf("drain %d: no sample with a user stack", i)
		}
		withStack += n
	}
	t.Logf("%d samples with a user stack over 8 drains", withStack)
}

func TestNoSuchPID(t *testing.T) {
	_, err := New(Config{PIDs: []uint32{4000000}})
	if !errors.Is(err, ErrNoSuchProcess) {
		t.Fatalf("got %v, want ErrNoSuchProcess", err)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	for _, cfg := range []Config{{FrequencyHz: -1}, {StackMapEntries: 3}, {CountMapEntries: 1 << 30}} {
		_, err := New(cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%+v: got %v, want a ConfigError", cfg, err)
		}
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(hotspotC); err != nil {
		panic("fixture missing: " + err.Error())
	}
	os.Exit(m.Run())
}

// A stack deeper than the kernel's limit, walked by the kernel, comes out
// cut at the limit and marked truncated, and counted as such.
func TestTruncatedStack(t *testing.T) {
	cmd := startFixture(t, "../testdata/hotspot/deep", untilKilled)
	pid := uint32(cmd.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}, Unwind: UnwindFP, FrequencyHz: 499})
	var n, truncated, statsTruncated uint64
	var periodNanos int64
	cpu := drainUntilCPU(t, c, pid, 300*time.Millisecond, func(b *model.Batch) {
		checkAccounting(t, b)
		periodNanos = b.PeriodNanos
		statsTruncated += b.Stats.Truncated
		for _, s := range b.Samples {
			n += s.Count
			if s.UserTruncated {
				truncated += s.Count
				if len(s.User) != c.maxDepth {
					t.Errorf("truncated stack has %d frames, limit is %d", len(s.User), c.maxDepth)
				}
			}
		}
	})
	if err := testenv.SamplesAgree(int64(n), time.Duration(periodNanos), cpu); err != nil {
		t.Error(err)
	}
	if n < 20 || truncated < n*9/10 {
		t.Errorf("%d of %d samples of a 200-deep recursion marked truncated", truncated, n)
	}
	if statsTruncated != truncated {
		t.Errorf("stats say %d truncated, samples %d", statsTruncated, truncated)
	}
}

// Samples after an execve belong to the new image, at once: each CPU keeps
// the image it last saw for a process, and an exec anywhere must make it
// look again. A sample read against the wrong image would have its leaf
// outside that image's mappings.
func TestExecKeepsImagesApart(t *testing.T) {
	c := newCollector(t, Config{FrequencyHz: 499})
	hot, _ := filepath.Abs(hotspotC)
	// A shell busy in its own code, then the same process as the hotspot,
	// ended once it has had 150 ms of CPU. Each image lasts until the
	// collector has read of it: this is about samples kept apart, not
	// about a collector held back by a loaded machine.
	cmd := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; read go; exec "$0" `+untilKilled, hot)
	next, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := uint32(cmd.Process.Pid)
	stop := drainInBackground(t, c)
	waitObserved(t, c, pid, func(p *model.Process) bool { return strings.Contains(filepath.Base(p.Exe), "sh") })
	next.Write([]byte("\n"))
	waitObserved(t, c, pid, func(p *model.Process) bool { return p.Exe == hot })
	testenv.WaitCPU(t, int(pid), waitExec(t, int(pid), hot)+150*time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	waitExitSeen(t, c, pid)
	perImage := map[string]uint64{}
	var n, inside uint64
	for _, b := range stop() {
		for _, s := range b.Samples {
			if s.PID != pid || len(s.User) == 0 {
				continue
			}
			p := b.Processes[s.Key()]
			if p == nil {
				continue
			}
			n += s.Count
			perImage[filepath.Base(p.Exe)] += s.Count
			if p.FindMapping(s.User[0]) != nil {
				inside += s.Count
			} else {
				t.Logf("outside: image %+v (%s, read error %v), leaf %#x, kernel stack %x", s.Key(), p.Exe, p.SnapshotErr, s.User[0], s.Kernel)
			}
		}
	}
	t.Logf("%d samples by image %v, %d with the leaf in their image's mappings", n, perImage, inside)
	if perImage["dash"]+perImage["sh"] < 5 || perImage[filepath.Base(hot)] < 20 {
		t.Fatalf("want samples of the shell and of %s: %v", filepath.Base(hot), perImage)
	}
	if inside*100 < n*99 {
		t.Errorf("%d of %d samples have their leaf outside the mappings of the image they are counted in", n-inside, n)
	}
}
