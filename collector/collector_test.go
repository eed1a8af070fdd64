package collector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
)

const hotspotC = "../testdata/hotspot/hotspot"

// startHotspot runs the C fixture for seconds and returns it running.
func startHotspot(t *testing.T, seconds string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(hotspotC, seconds)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", hotspotC, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
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
func checkAccounting(t *testing.T, b *Batch) {
	t.Helper()
	st := b.Stats
	if got := st.Idle + st.Filtered + st.Recorded + st.CountMapFull; got != st.Taken {
		t.Errorf("taken %d != idle %d + filtered %d + recorded %d + count map full %d", st.Taken, st.Idle, st.Filtered, st.Recorded, st.CountMapFull)
	}
	var sum uint64
	userLost := map[LossReason]uint64{}
	for _, s := range b.Samples {
		sum += s.Count
		userLost[s.UserLost] += s.Count
	}
	if sum != st.Recorded {
		t.Errorf("samples add up to %d, stats say %d recorded", sum, st.Recorded)
	}
	for _, r := range []LossReason{LostCollision, LostMapFull, LostKernelThread, LostExiting, LostOther} {
		if userLost[r] != st.UserLost[r] {
			t.Errorf("user stacks lost to %s: samples say %d, stats say %d", r, userLost[r], st.UserLost[r])
		}
	}
}

func TestSamplesOneProcess(t *testing.T) {
	hot := startHotspot(t, "4")
	pid := uint32(hot.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}})

	exe, _ := filepath.Abs(hotspotC)
	var total uint64
	var inExe uint64
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	cpuBefore := cpuTime(t, pid)
	var periodNanos int64
	for range 3 {
		time.Sleep(time.Second)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
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
	}
	// The samples must tell the truth: as much CPU time as the kernel charged
	// the process over the same window, within a few samples (the window
	// edges) and the 10 ms resolution of the kernel's accounting.
	cpu := cpuTime(t, pid) - cpuBefore
	sampled := time.Duration(int64(total) * periodNanos)
	if diff := (sampled - cpu).Abs(); diff > cpu/10+50*time.Millisecond {
		t.Errorf("%d samples = %s of CPU, but the kernel charged %s", total, sampled, cpu)
	} else {
		t.Logf("%d samples = %s of CPU; the kernel charged %s", total, sampled, cpu)
	}
	// The comparison above is what matters; under a loaded CI runner the
	// process may get a third of a CPU, so only ask for enough samples.
	if total < 30 {
		t.Errorf("only %d samples of a CPU-bound process over 3 s", total)
	}
	if inExe < total*9/10 {
		t.Errorf("only %d of %d samples have their leaf in %s", inExe, total, exe)
	}
}

// A process that lives 150 ms and exits before the drain must still be
// attributed, with its mappings and files captured at first sight.
func TestShortLivedProcess(t *testing.T) {
	c := newCollector(t, Config{})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hotspotC, "0.15")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run %s: %v", hotspotC, err)
	}
	pid := uint32(cmd.Process.Pid)
	time.Sleep(200 * time.Millisecond)
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
	if n < 5 {
		t.Fatalf("%d samples of the 150 ms process, want about 15", n)
	}
	// The samples after the execve belong to the hotspot's own image.
	exe, _ := filepath.Abs(hotspotC)
	var p *Process
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
	if held < 2 {
		t.Errorf("%d mapped files held for the exited process, want the executable and libc at least", held)
	}
}

// With tiny stack maps, stacks must be lost and reported (the map full, or
// a hash collision), never silently mis-attributed.
func TestStackLossIsCounted(t *testing.T) {
	startHotspot(t, "3")
	go func() { exec.Command("../testdata/hotspot/hotspot-go", "2").Run() }()
	// Hundreds of distinct stacks a second: recursion of varying depth
	// through libc's qsort, with the leaf anywhere in the comparator.
	qs := exec.Command("../testdata/unwind/qsort-nofp", "3")
	if err := qs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qs.Process.Kill(); qs.Wait() })
	c := newCollector(t, Config{StackMapEntries: 64, FrequencyHz: 499})
	var lost uint64
	for range 2 {
		time.Sleep(time.Second)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, b)
		for _, r := range []LossReason{LostCollision, LostMapFull} {
			lost += b.Stats.UserLost[r] + b.Stats.KernelLost[r]
		}
	}
	if lost == 0 {
		t.Error("no losses reported with a 64-entry stack map under load; losses are not being counted")
	}
}

// The sampler skips storing a stack it already stored in the current
// generation's map (a per-CPU record); every drain must still find the
// stacks of its samples, including the ones seen in earlier generations of
// the same buffer.
func TestStacksFoundAfterEveryDrain(t *testing.T) {
	hot := startHotspot(t, "4")
	c := newCollector(t, Config{PIDs: []uint32{uint32(hot.Process.Pid)}, FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	var withStack uint64
	for i := range 8 {
		time.Sleep(250 * time.Millisecond)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, b)
		var n uint64
		for _, s := range b.Samples {
			if s.UserLost == LostDrained || s.KernelLost == LostDrained {
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

// cpuTime is the user+system time of a process from /proc/PID/stat.
func cpuTime(t *testing.T, pid uint32) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
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
	cmd := exec.Command("../testdata/hotspot/deep", "4")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := uint32(cmd.Process.Pid)
	c := newCollector(t, Config{PIDs: []uint32{pid}, Unwind: UnwindFP})
	time.Sleep(1500 * time.Millisecond)
	b, err := c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	var n, truncated uint64
	for _, s := range b.Samples {
		n += s.Count
		if s.UserTruncated {
			truncated += s.Count
			if len(s.User) != c.maxDepth {
				t.Errorf("truncated stack has %d frames, limit is %d", len(s.User), c.maxDepth)
			}
		}
	}
	if n < 20 || truncated < n*9/10 {
		t.Errorf("%d of %d samples of a 200-deep recursion marked truncated", truncated, n)
	}
	if b.Stats.Truncated != truncated {
		t.Errorf("stats say %d truncated, samples %d", b.Stats.Truncated, truncated)
	}
}

// Samples after an execve belong to the new image, at once: each CPU keeps
// the image it last saw for a process, and an exec anywhere must make it
// look again. A sample read against the wrong image would have its leaf
// outside that image's mappings.
func TestExecKeepsImagesApart(t *testing.T) {
	c := newCollector(t, Config{FrequencyHz: 499})
	hot, _ := filepath.Abs(hotspotC)
	// A shell busy in its own code, then the same process as the hotspot.
	cmd := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; exec "$0" 0.5`, hot)
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	pid := uint32(cmd.Process.Pid)
	time.Sleep(200 * time.Millisecond)
	b, err := c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	perImage := map[string]uint64{}
	var n, inside uint64
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
