package collector

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

const pythonFixture = "../testdata/python/burn.py"

// pythonBuild returns the pyenv build of CPython 3.minor. It skips the
// test when there is none, unless in CI, where every version must be.
func pythonBuild(t *testing.T, minor int) string {
	t.Helper()
	exe, root := testenv.PyenvPython(minor)
	if exe == "" {
		if testenv.InCI() {
			t.Fatalf("no pyenv build of CPython 3.%d under %s", minor, root)
		}
		t.Skipf("no pyenv build of CPython 3.%d under %s", minor, root)
	}
	return exe
}

// debianPython returns Debian's /usr/bin/python3 when it is a CPython
// without a libpython, or "" (skipped outside CI, failed in it).
func debianPython(t *testing.T) string {
	const exe = "/usr/bin/python3"
	out, err := exec.Command("ldd", exe).Output()
	switch {
	case err == nil && !strings.Contains(string(out), "libpython"):
		return exe
	case err == nil:
		t.Logf("%s links libpython: not a static build", exe)
	case testenv.InCI():
		t.Errorf("no %s to test a static CPython with: %v", exe, err)
	default:
		t.Logf("no %s to test a static CPython with: %v", exe, err)
	}
	return ""
}

// fixtureMarks maps each "# mark: NAME" of the fixture to its line.
func fixtureMarks(t *testing.T, path string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marks := make(map[string]int64)
	sc := bufio.NewScanner(f)
	for n := int64(1); sc.Scan(); n++ {
		if _, mark, ok := strings.Cut(sc.Text(), "# mark: "); ok {
			marks[mark] = n
		}
	}
	return marks
}

// pythonOnly is the Python frames of a stack, leaf first.
func pythonOnly(frames []model.Frame) []model.Frame {
	var out []model.Frame
	for _, f := range frames {
		if f.Kind == model.FramePython {
			out = append(out, f)
		}
	}
	return out
}

// pythonRun is what one version's fixture process gave.
type pythonRun struct {
	name                                                          string
	pid                                                           uint32
	total, withPython, rooted, alpha, beta, gamma, keyed, spliced uint64
	badLines                                                      []string
}

// TestPythonFrames runs the fixture (50/30/20% of its CPU in alpha, beta
// through sorted() and a Python key, gamma on a second thread) on every
// CPython 3.8-3.13 at once, under one collector, and checks for each the
// shares of its functions, that its stacks reach their thread's first
// Python frame, and their lines. (At once: on a loaded host six processes
// get their CPU time six times sooner than one after the other.)
func TestPythonFrames(t *testing.T) {
	testenv.RequireBPF(t)
	script, _ := filepath.Abs(pythonFixture)
	marks := fixtureMarks(t, script)
	byPID := make(map[uint32]*pythonRun)
	var runs []*pythonRun
	var pids []uint32
	for minor := 8; minor <= 13; minor++ {
		var exe string
		t.Run(fmt.Sprintf("find 3.%d", minor), func(t *testing.T) { exe = pythonBuild(t, minor) })
		if exe == "" {
			continue
		}
		cmd := startFixture(t, exe, script)
		r := &pythonRun{name: fmt.Sprintf("3.%d", minor), pid: uint32(cmd.Process.Pid)}
		runs, pids, byPID[r.pid] = append(runs, r), append(pids, r.pid), r
	}
	// Debian's python3 is a static build: the runtime is in the
	// executable, with no libpython (.ci/run installs it).
	if exe := debianPython(t); exe != "" {
		cmd := startFixture(t, exe, script)
		r := &pythonRun{name: "debian-static", pid: uint32(cmd.Process.Pid)}
		runs, pids, byPID[r.pid] = append(runs, r), append(pids, r.pid), r
	}
	if len(runs) == 0 {
		t.Skip("no CPython build to run")
	}
	for _, r := range runs {
		testenv.WaitCPU(t, int(r.pid), 100*time.Millisecond) // past its imports
	}
	c := newCollector(t, Config{PIDs: pids, FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	var st model.PythonStats
	each := func(b *model.Batch) {
		st.Add(b.Stats.Python)
		for _, s := range b.Samples {
			if r := byPID[s.PID]; r != nil {
				r.add(&s, marks)
			}
		}
	}
	// Until each has had 1.5 s of CPU: about 1,500 samples.
	before := make(map[uint32]time.Duration)
	for _, r := range runs {
		before[r.pid] = testenv.CPU(t, int(r.pid))
	}
	deadline := time.Now().Add(testenv.CPUTimeout)
	for done := false; !done; {
		time.Sleep(250 * time.Millisecond)
		b, err := c.Drain()
		if err != nil {
			t.Fatal(err)
		}
		each(b)
		done = true
		for _, r := range runs {
			if testenv.CPU(t, int(r.pid))-before[r.pid] < 1500*time.Millisecond {
				done = false
			}
		}
		if !done && time.Now().After(deadline) {
			t.Fatalf("the fixtures did not get 1.5 s of CPU each in %s", testenv.CPUTimeout)
		}
	}
	t.Logf("walker: %+v", st)
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) { r.check(t) })
	}
}

func (r *pythonRun) add(s *model.Sample, marks map[string]int64) {
	r.total += s.Count
	py := pythonOnly(s.UserFrames)
	if len(py) == 0 {
		return
	}
	r.withPython += s.Count
	switch root := py[len(py)-1].Function; root {
	case "<module>", "_bootstrap", "Thread._bootstrap":
		r.rooted += s.Count
	}
	has := func(name string) bool { return indexOf(py, name) >= 0 }
	if has("alpha") {
		r.alpha += s.Count
	}
	if has("beta") {
		r.beta += s.Count
	}
	if has("gamma") {
		r.gamma += s.Count
	}
	r.badLines = append(r.badLines, checkLines(py, marks)...)
	if py[0].Function == "key" {
		r.keyed += s.Count
		if i := indexOf(s.UserFrames, "key"); i >= 0 && i+1 < len(s.UserFrames) && s.UserFrames[i+1].Kind == model.FrameNative {
			r.spliced += s.Count // key <- sorted's C code <- beta
		}
	}
}

func (r *pythonRun) check(t *testing.T) {
	t.Logf("%d samples, %d with Python frames, %d rooted; alpha %d beta %d gamma %d",
		r.total, r.withPython, r.rooted, r.alpha, r.beta, r.gamma)
	if r.total == 0 {
		t.Fatal("no samples of the fixture")
	}
	share := func(n uint64) float64 { return 100 * float64(n) / float64(r.total) }
	for _, f := range []struct {
		name      string
		n         uint64
		wantShare float64
	}{{"alpha", r.alpha, 50}, {"beta", r.beta, 30}, {"gamma", r.gamma, 20}} {
		if got := share(f.n); got < f.wantShare-3 || got > f.wantShare+3 {
			t.Errorf("%s: %.1f%% of samples, want %.0f%% ± 3", f.name, got, f.wantShare)
		}
	}
	if got := share(r.rooted); got < 99 {
		t.Errorf("%.1f%% of samples have Python frames down to their thread's first, want ≥ 99%%", got)
	}
	if r.keyed == 0 || r.spliced < r.keyed*9/10 {
		t.Errorf("%d of %d samples in key have sorted's native frames between key and beta", r.spliced, r.keyed)
	}
	if len(r.badLines) > 0 {
		t.Errorf("%d frames with wrong lines, e.g. %s", len(r.badLines), strings.Join(r.badLines[:min(len(r.badLines), 5)], "\n"))
	}
}

func indexOf(frames []model.Frame, fn string) int {
	for i, f := range frames {
		if f.Kind == model.FramePython && f.Function == fn {
			return i
		}
	}
	return -1
}

// checkLines returns what is wrong with the lines of a Python stack:
// each caller must be at its call, each leaf in its loop.
func checkLines(py []model.Frame, marks map[string]int64) []string {
	var bad []string
	for i, f := range py {
		var callee string
		if i > 0 {
			callee = py[i-1].Function
		}
		want := map[string]int64{}
		switch {
		case f.Function == "main" && callee == "alpha":
			want["alpha-call"] = marks["alpha-call"]
		case f.Function == "main" && callee == "beta":
			want["beta-call"] = marks["beta-call"]
		case f.Function == "beta" && callee == "key":
			want["beta-sorted"] = marks["beta-sorted"]
		case f.Function == "gamma_thread" && callee == "gamma":
			want["gamma-call"] = marks["gamma-call"]
		case f.Function == "<module>" && callee == "main":
			want["main-call"] = marks["main-call"]
		case f.Function == "key" && f.Line != marks["key"]-1: // or at its entry
			want["key"] = marks["key"]
		}
		for mark, line := range want {
			if f.Line != line {
				bad = append(bad, fmt.Sprintf("%s at line %d, want %d (%s) in %v", f.Function, f.Line, line, mark, py))
			}
		}
		if f.File == "" || !strings.HasSuffix(f.File, ".py") {
			bad = append(bad, fmt.Sprintf("%s in file %q", f.Function, f.File))
		}
	}
	// The leaf of alpha or gamma is in its loop: the loop's lines, up to its mark.
	if leaf := py[0]; leaf.Function == "alpha" || leaf.Function == "gamma" {
		end := marks[leaf.Function+"-loop"]
		if leaf.Line < end-4 || leaf.Line > end {
			bad = append(bad, fmt.Sprintf("%s's leaf at line %d, not in its loop (lines %d-%d)", leaf.Function, leaf.Line, end-4, end))
		}
	}
	return bad
}

// startedPython is a script running under CPython 3.minor.
type startedPython struct {
	minor int
	pid   uint32
}

// startPythons starts script under each CPython 3.from to 3.to found, and
// returns them once each has run a moment.
func startPythons(t *testing.T, from, to int, script string) []startedPython {
	var started []startedPython
	for minor := from; minor <= to; minor++ {
		var exe string
		t.Run(fmt.Sprintf("find 3.%d", minor), func(t *testing.T) { exe = pythonBuild(t, minor) })
		if exe != "" {
			started = append(started, startedPython{minor, uint32(startFixture(t, exe, script).Process.Pid)})
		}
	}
	for _, p := range started {
		testenv.WaitCPU(t, int(p.pid), 100*time.Millisecond)
	}
	return started
}

// TestPythonSubinterpreters: a thread that runs Python in the main
// interpreter and in a sub-interpreter has a thread state in each; its
// samples must show the one it runs, half and half.
func TestPythonSubinterpreters(t *testing.T) {
	testenv.RequireBPF(t)
	script, _ := filepath.Abs("../testdata/python/subinterp.py")
	type run struct {
		minor                    int
		pid                      uint32
		total, main, sub, rooted uint64
	}
	var runs []*run
	started := startPythons(t, 11, 13, script)
	if len(started) == 0 {
		t.Skip("no CPython build with sub-interpreters to run")
	}
	var pids []uint32
	for _, p := range started {
		runs, pids = append(runs, &run{minor: p.minor, pid: p.pid}), append(pids, p.pid)
	}
	c := newCollector(t, Config{PIDs: pids, FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		drainUntilCPU(t, c, r.pid, 600*time.Millisecond, func(b *model.Batch) {
			for _, s := range b.Samples {
				for _, r := range runs {
					if s.PID != r.pid {
						continue
					}
					r.total += s.Count
					py := pythonOnly(s.UserFrames)
					if indexOf(py, "in_main") >= 0 {
						r.main += s.Count
					}
					if indexOf(py, "in_sub") >= 0 {
						r.sub += s.Count
					}
					if len(py) > 0 && py[len(py)-1].Function == "<module>" {
						r.rooted += s.Count
					} else if os.Getenv("PYDEBUG") != "" {
						t.Logf("3.%d not rooted: %v", r.minor, py)
					}
				}
			}
		})
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("3.%d", r.minor), func(t *testing.T) {
			t.Logf("%d samples: in_main %d, in_sub %d, rooted %d", r.total, r.main, r.sub, r.rooted)
			share := func(n uint64) float64 { return 100 * float64(n) / float64(max(r.total, 1)) }
			if m, s := share(r.main), share(r.sub); m < 44 || m > 56 || s < 44 || s > 56 {
				t.Errorf("in_main %.1f%%, in_sub %.1f%%, want 50%% ± 6 each", m, s)
			}
			if got := share(r.rooted); got < 98 {
				t.Errorf("%.1f%% of samples rooted at <module>, want ≥ 98%%", got)
			}
		})
	}
}
