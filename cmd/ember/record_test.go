package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/internal/testenv"
)

// recordFixture runs a hotspot fixture and records it with --pid until the
// fixture has had seconds of CPU time (see load_test.go).
func recordFixture(t *testing.T, fixture string, seconds int, format string, args ...string) (string, *exec.Cmd) {
	t.Helper()
	testenv.RequireBPF(t)
	hot := exec.Command(fixture, append([]string{untilKilled}, args...)...)
	if err := hot.Start(); err != nil {
		t.Fatalf("start %s: %v", fixture, err)
	}
	t.Cleanup(func() { hot.Process.Kill(); hot.Wait() })
	testenv.Stop(t, hot.Process.Pid)
	out := filepath.Join(t.TempDir(), "out")
	opts := recordOptions{
		duration:      time.Hour, // ended when the fixture has had its CPU time
		drainInterval: time.Second,
		output:        out,
		format:        format,
		collector:     collector.Config{FrequencyHz: 99, PIDs: []uint32{uint32(hot.Process.Pid)}},
	}
	var stderr bytes.Buffer
	var cpu time.Duration
	err := whileSampling(t, func(ctx context.Context) error { return record(ctx, opts, &stderr) },
		func() { cpu, _ = runFor(t, hot.Process.Pid, time.Duration(seconds)*time.Second) })
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	t.Logf("summary: %s; the kernel charged the fixture %s", stderr.String(), cpu)
	if err := testenv.SamplesAgree(int64(summaryRecorded(stderr.String())), time.Second/99, cpu); err != nil {
		t.Errorf("summary: %v", err)
	}
	// A few stack-map collisions are possible and are reported; more than a
	// few percent would mean the maps are too small for one process.
	if lost := summaryLost(stderr.String()); lost*20 > summaryRecorded(stderr.String()) {
		t.Errorf("summary reports more than 5%% lost: %s", stderr.String())
	}
	return out, hot
}

var (
	summaryRecordedPattern = regexp.MustCompile(`ember: (\d+) samples`)
	summaryLostPattern     = regexp.MustCompile(`(\d+) (?:user stacks|kernel stacks|samples) \(`)
)

func summaryRecorded(summary string) int {
	m := summaryRecordedPattern.FindStringSubmatch(summary)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func summaryLost(summary string) int {
	lost := 0
	for _, m := range summaryLostPattern.FindAllStringSubmatch(summary, -1) {
		n, _ := strconv.Atoi(m[1])
		lost += n
	}
	return lost
}

// userChain returns a sample's function names root first.
func userChain(s *profile.Sample) []string {
	var names []string
	for i := len(s.Location) - 1; i >= 0; i-- {
		lines := s.Location[i].Line
		for j := len(lines) - 1; j >= 0; j-- {
			names = append(names, lines[j].Function.Name)
		}
	}
	return names
}

func containsRun(chain, want []string) bool {
	for i := 0; i+len(want) <= len(chain); i++ {
		if slicesEqual(chain[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type leafWant struct {
	leaf  string
	share float64
	chain []string // root-first run of frames every sample of the leaf must contain
}

// checkSplit asserts each leaf's share of the samples and its full chain.
func checkSplit(t *testing.T, p *profile.Profile, wants []leafWant) {
	t.Helper()
	var total int64
	byLeaf := map[string]int64{}
	broken := map[string]int64{}
	for _, s := range p.Sample {
		total += s.Value[0]
		chain := userChain(s)
		if len(chain) == 0 {
			continue
		}
		leaf := chain[len(chain)-1]
		for _, w := range wants {
			if leaf != w.leaf {
				continue
			}
			byLeaf[leaf] += s.Value[0]
			if !containsRun(chain, w.chain) {
				broken[leaf] += s.Value[0]
				t.Logf("sample of %s lacks the chain %v: %v", leaf, w.chain, chain)
			}
		}
	}
	// A sample on the leaf's first or last instructions, before its frame
	// pointer is set up or after it is popped, skips the caller: a limit of
	// frame-pointer unwinding that hits about one sample in a few hundred.
	for _, w := range wants {
		if b := broken[w.leaf]; b*100 > byLeaf[w.leaf]*2 {
			t.Errorf("%d of %d samples of %s lack the chain %v", b, byLeaf[w.leaf], w.leaf, w.chain)
		}
	}
	// The callers wait for enough CPU time for about 500 samples; the
	// tolerance below widens with fewer.
	if total < 60 {
		t.Fatalf("only %d samples of the busy process, too few to check its split", total)
	}
	// Binomial spread at ~500 samples is about 2 points; allow 3.5 sigma plus
	// a point for the fixture's own timing.
	for _, w := range wants {
		got := float64(byLeaf[w.leaf]) / float64(total)
		tol := 3.5*math.Sqrt(w.share*(1-w.share)/float64(total)) + 0.01
		if math.Abs(got-w.share) > tol {
			t.Errorf("%s: %.1f%% of %d samples, want %.0f%% ± %.1f", w.leaf, 100*got, total, 100*w.share, 100*tol)
		} else {
			t.Logf("%s: %.1f%% of %d samples (want %.0f%%)", w.leaf, 100*got, total, 100*w.share)
		}
	}
}

func TestRecordC(t *testing.T) {
	out, hot := recordFixture(t, "../../testdata/hotspot/hotspot", 5, "pprof")
	p := profiletest.Read(t, out)
	checkSplit(t, p, []leafWant{
		{"alpha", 0.5, []string{"main", "run", "alpha"}},
		{"beta", 0.3, []string{"main", "run", "work_b", "beta"}},
		{"gamma", 0.2, []string{"main", "run", "gamma"}},
	})
	checkContract(t, p, hot.Process.Pid, "hotspot")
}

func TestRecordGo(t *testing.T) {
	out, hot := recordFixture(t, "../../testdata/hotspot/hotspot-go", 5, "pprof")
	p := profiletest.Read(t, out)
	checkSplit(t, p, []leafWant{
		{"main.alpha", 0.5, []string{"runtime.main", "main.main", "main.run", "main.alpha"}},
		{"main.beta", 0.3, []string{"runtime.main", "main.main", "main.run", "main.workB", "main.beta"}},
		{"main.gamma", 0.2, []string{"runtime.main", "main.main", "main.run", "main.gamma"}},
	})
	checkContract(t, p, hot.Process.Pid, "hotspot-go")
}

// checkContract checks what the pprof output promises its readers.
func checkContract(t *testing.T, p *profile.Profile, pid int, comm string) {
	t.Helper()
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if len(p.SampleType) != 2 || p.SampleType[0].Type != "samples" || p.SampleType[0].Unit != "count" ||
		p.SampleType[1].Type != "cpu" || p.SampleType[1].Unit != "nanoseconds" {
		t.Errorf("sample types %v", p.SampleType)
	}
	if p.PeriodType == nil || p.PeriodType.Type != "cpu" || p.PeriodType.Unit != "nanoseconds" || p.Period != int64(time.Second)/99 {
		t.Errorf("period %v %d", p.PeriodType, p.Period)
	}
	if p.DurationNanos < int64(4*time.Second) || p.TimeNanos == 0 {
		t.Errorf("time %d duration %d", p.TimeNanos, p.DurationNanos)
	}
	for _, s := range p.Sample {
		if s.Value[1] != s.Value[0]*p.Period {
			t.Fatalf("cpu value %d != %d samples × period", s.Value[1], s.Value[0])
		}
		if got := s.Label["comm"]; len(got) != 1 || got[0] != comm {
			t.Fatalf("comm label %v, want %s", got, comm)
		}
		if got := s.NumLabel["pid"]; len(got) != 1 || got[0] != int64(pid) {
			t.Fatalf("pid label %v, want %d", got, pid)
		}
		if len(s.NumLabel["tid"]) != 1 {
			t.Fatalf("no tid label: %v", s.NumLabel)
		}
	}
	exe, _ := filepath.Abs("../../testdata/hotspot/" + comm)
	found := false
	for _, m := range p.Mapping {
		if m.File == exe {
			found = true
			if m.BuildID == "" {
				t.Errorf("mapping of %s has no build ID", exe)
			}
			if m.Start == 0 || m.Limit <= m.Start {
				t.Errorf("mapping range %#x-%#x", m.Start, m.Limit)
			}
		}
	}
	if !found {
		t.Errorf("no mapping for %s", exe)
	}
}

func TestRecordFolded(t *testing.T) {
	out, _ := recordFixture(t, "../../testdata/hotspot/hotspot", 2, "folded")
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var alpha, all int
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		// Frame names may hold spaces: the count follows the last one.
		i := strings.LastIndexByte(line, ' ')
		stack, count, ok := line[:max(i, 0)], line[i+1:], i > 0
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n <= 0 {
			t.Fatalf("not a folded line: %q", line)
		}
		if strings.HasPrefix(stack, "hotspot;") {
			all += n
			if strings.HasSuffix(stack, ";main;run;alpha") {
				alpha += n
			}
		}
	}
	// alpha has half the fixture's time.
	if all < 20 || alpha*10 < all*3 || alpha*10 > all*7 {
		t.Errorf("%d of %d samples of hotspot in hotspot;...;main;run;alpha, want about half:\n%s", alpha, all, raw)
	}
}

// Ctrl-C ends a recording early and still writes the file.
func TestRecordInterrupted(t *testing.T) {
	testenv.RequireBPF(t)
	out := filepath.Join(t.TempDir(), "out.pb.gz")
	const duration = 2 * time.Minute
	start := time.Now()
	var interrupted time.Time
	// Interrupted once sampling has started, however long that took.
	err := whileSampling(t, func(ctx context.Context) error {
		return record(ctx, recordOptions{duration: duration, drainInterval: time.Second, output: out, format: "pprof",
			collector: collector.Config{FrequencyHz: 99}}, new(bytes.Buffer))
	}, func() { interrupted = time.Now() })
	if err != nil {
		t.Fatal(err)
	}
	// The last drain, naming and writing remain: far less than the rest
	// of the recording, even on a loaded machine.
	if after := time.Since(interrupted); after > duration/2 {
		t.Errorf("an interrupted recording of %s ended %s after the interrupt", duration, after)
	}
	p := profiletest.Read(t, out)
	if d := time.Duration(p.DurationNanos); d <= 0 || d > time.Since(start) {
		t.Errorf("duration %s of a recording that ran %s in all", d, time.Since(start))
	}
}

// runEmber runs this test binary as the ember command.
func runEmber(t *testing.T, cred *syscall.Credential, args ...string) (string, int) {
	t.Helper()
	var attr *syscall.SysProcAttr
	if cred != nil {
		attr = &syscall.SysProcAttr{Credential: cred}
	}
	return runEmberWith(t, attr, args...)
}

// runEmberWith runs this test binary as the ember command with attr; with
// a Credential, from a copy another user can run.
func runEmberWith(t *testing.T, attr *syscall.SysProcAttr, args ...string) (string, int) {
	t.Helper()
	var cred *syscall.Credential
	if attr != nil {
		cred = attr.Credential
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		// The test binary sits in a private build directory: copy it where
		// an unprivileged user can run it.
		dir, err := os.MkdirTemp("", "ember-test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		raw, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		self = filepath.Join(dir, "ember")
		if err := os.WriteFile(self, raw, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "EMBER_TEST_RUN_MAIN=1")
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestClearErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"record", "--format", "svg"}, 2, "--format must be pprof or folded"},
		{[]string{"record", "--duration", "-1s"}, 2, "--duration must be positive"},
		{[]string{"record", "--pid", "abc"}, 2, "invalid argument"},
		{[]string{"record", "--frequency", "0"}, 2, "--frequency must be positive"},
		{[]string{"record", "--frequency", "20000", "-d", "1s", "-o", "/dev/null"}, 2, "--frequency: 20000 Hz is out of range"},
		{[]string{"record", "-o", "/nonexistent/dir/x.pb.gz"}, 2, "--output: cannot create a file in /nonexistent/dir"},
	}
	for _, tt := range tests {
		out, code := runEmber(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) || strings.Contains(out, "goroutine ") {
			t.Errorf("ember %v: exit %d, output %q; want exit %d and %q", tt.args, code, out, tt.code, tt.want)
		}
	}
}

func TestClearErrorsPrivileged(t *testing.T) {
	testenv.RequireRoot(t)
	out, code := runEmber(t, nil, "record", "--pid", "4000000", "-d", "1s", "-o", "/dev/null")
	if code != 2 || !strings.Contains(out, "--pid 4000000: no such process") {
		t.Errorf("missing pid: exit %d, %q", code, out)
	}
	out, code = runEmber(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "record", "-d", "1s", "-o", "/dev/null")
	if code != 1 || !strings.Contains(out, "permission denied: sampling needs root, or CAP_BPF and CAP_PERFMON") {
		t.Errorf("unprivileged: exit %d, %q", code, out)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("EMBER_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Processes that live 100 ms and exit long before the drain are attributed
// and named from what was captured at their first sample.
func TestRecordShortLived(t *testing.T) {
	testenv.RequireBPF(t)
	out := filepath.Join(t.TempDir(), "out.pb.gz")
	pids := map[int64]bool{}
	var cpu time.Duration // what the kernel charged the ten
	err := whileSampling(t, func(ctx context.Context) error {
		return record(ctx, recordOptions{duration: time.Hour, drainInterval: time.Second,
			output: out, format: "pprof", collector: collector.Config{FrequencyHz: 99}}, new(bytes.Buffer))
	}, func() {
		for range 10 {
			// Each ends after 100 ms of CPU, as one 100 ms cycle of the
			// fixture does on an idle machine.
			cmd := exec.Command("../../testdata/hotspot/hotspot", untilKilled)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			testenv.WaitCPU(t, cmd.Process.Pid, 100*time.Millisecond)
			cmd.Process.Kill()
			cmd.Wait()
			pids[int64(cmd.Process.Pid)] = true
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	p := profiletest.Read(t, out)
	var n, named int64
	for _, s := range p.Sample {
		if !pids[s.NumLabel["pid"][0]] {
			continue
		}
		chain := strings.Join(userChain(s), ";")
		// Before its execve the child runs this test binary's code: those
		// samples must be read against that image, never the hotspot's.
		if strings.Contains(chain, "[unknown: address in no mapping]") {
			t.Errorf("sample resolved against the wrong program image: %s", chain)
		}
		if s.Label["comm"][0] != "hotspot" {
			continue
		}
		n += s.Value[0]
		if strings.Contains(chain, "main;run;") {
			named += s.Value[0]
		} else {
			t.Logf("not in main: %s", chain)
		}
	}
	// About 99 samples: as many as the CPU time the kernel charged them.
	if err := testenv.SamplesAgree(n, time.Second/99, cpu); err != nil {
		t.Fatalf("ten short-lived processes: %v", err)
	}
	// The rest are the dynamic loader starting the process.
	if named < n*85/100 {
		t.Errorf("%d of %d samples of short-lived processes have main;run; in their stacks", named, n)
	}
	t.Logf("%d samples of ten short-lived processes (%s of CPU), %d in main;run;", n, cpu, named)
}

// A recursion of 200 levels comes out whole, beyond the kernel's 127
// frames; one of 500 is cut at the unwinder's 378 and marked [truncated].
func TestRecordTruncatedMarker(t *testing.T) {
	for _, levels := range []int{200, 500} {
		t.Run(strconv.Itoa(levels), func(t *testing.T) {
			out, _ := recordFixture(t, "../../testdata/hotspot/deep", 2, "pprof", strconv.Itoa(levels))
			p := profiletest.Read(t, out)
			var n, marked, whole int64
			for _, s := range p.Sample {
				chain := userChain(s)
				if len(chain) == 0 || strings.HasPrefix(chain[0], "[user stack lost") {
					continue
				}
				n += s.Value[0]
				if chain[0] == "[truncated]" {
					marked += s.Value[0]
				}
				if slices.Contains(chain, "main") && strings.Count(strings.Join(chain, ";"), "descend") == levels+1 {
					whole += s.Value[0]
				}
			}
			t.Logf("%d levels: %d samples, %d whole, %d marked [truncated]", levels, n, whole, marked)
			if levels < 300 && (n < 10 || whole < n*9/10 || marked > n/10) {
				t.Errorf("%d of %d samples of a %d-deep recursion whole, %d marked [truncated]", whole, n, levels, marked)
			}
			if levels > 300 && (n < 10 || marked < n*9/10) {
				t.Errorf("%d of %d samples of a %d-deep recursion end in [truncated]", marked, n, levels)
			}
		})
	}
}

func TestSummaryParsing(t *testing.T) {
	s := "ember: 159 samples in 1.9s at 99 Hz (382 taken; left out: 1 idle); lost: 3 user stacks (stack map collision), 2 kernel stacks (stack map full), 1 samples (count map full); 1 processes"
	if summaryRecorded(s) != 159 || summaryLost(s) != 6 {
		t.Errorf("recorded %d lost %d", summaryRecorded(s), summaryLost(s))
	}
}
