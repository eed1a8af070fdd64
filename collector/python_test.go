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
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		if out, err := exec.Command("pyenv", "root").Output(); err == nil {
			root = strings.TrimSpace(string(out))
		} else {
			home, _ := os.UserHomeDir()
			root = filepath.Join(home, ".pyenv")
		}
	}
	exes, _ := filepath.Glob(filepath.Join(root, "versions", fmt.Sprintf("3.%d.*", minor), "bin", fmt.Sprintf("python3.%d", minor)))
	if len(exes) == 0 {
		if testenv.InCI() {
			t.Fatalf("no pyenv build of CPython 3.%d under %s", minor, root)
		}
		t.Skipf("no pyenv build of CPython 3.%d under %s", minor, root)
	}
	return exes[len(exes)-1]
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

func TestPythonFrames(t *testing.T) {
	for minor := 8; minor <= 13; minor++ {
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) { testPythonVersion(t, minor) })
	}
}

// testPythonVersion runs the fixture (50/30/20% of its CPU in alpha, beta
// through sorted() and a Python key, gamma on a second thread) and checks
// the shares of its functions, that its stacks reach their thread's first
// Python frame, and their lines.
func testPythonVersion(t *testing.T, minor int) {
	exe := pythonBuild(t, minor)
	testenv.RequireBPF(t)
	script, _ := filepath.Abs(pythonFixture)
	cmd := startFixture(t, exe, script)
	pid := uint32(cmd.Process.Pid)
	testenv.WaitCPU(t, int(pid), 100*time.Millisecond) // past its imports
	c := newCollector(t, Config{PIDs: []uint32{pid}, FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	marks := fixtureMarks(t, script)
	var total, withPython, rooted, alpha, beta, gamma, spliced, keyed uint64
	var badLines []string
	var st model.PythonStats
	drainUntilCPU(t, c, pid, 1500*time.Millisecond, func(b *model.Batch) {
		st.Add(b.Stats.Python)
		for _, s := range b.Samples {
			if s.PID != pid {
				continue
			}
			total += s.Count
			py := pythonOnly(s.UserFrames)
			if len(py) == 0 {
				t.Logf("no Python frames: tid %d user %d frames, end %s, kernel %d frames, lost %s", s.TID, len(s.User), s.UserEnd, len(s.Kernel), s.UserLost)
				if os.Getenv("PYDEBUG") != "" {
					p := b.Processes[s.Key()]
					for _, a := range s.User {
						if m := p.FindMapping(a); m != nil {
							t.Logf("  %#x %s+%#x", a, m.Path, a-m.Start+m.Offset)
						}
					}
				}
				continue
			}
			withPython += s.Count
			switch root := py[len(py)-1].Function; root {
			case "<module>", "_bootstrap", "Thread._bootstrap":
				rooted += s.Count
			}
			has := func(name string) bool {
				for _, f := range py {
					if f.Function == name {
						return true
					}
				}
				return false
			}
			if has("alpha") {
				alpha += s.Count
			}
			if has("beta") {
				beta += s.Count
			}
			if has("gamma") {
				gamma += s.Count
			}
			badLines = append(badLines, checkLines(py, marks)...)
			if py[0].Function == "key" {
				keyed += s.Count
				if i := indexOf(s.UserFrames, "key"); i >= 0 && i+1 < len(s.UserFrames) && s.UserFrames[i+1].Kind == model.FrameNative {
					spliced += s.Count // key <- sorted's C code <- beta
				}
			}
		}
	})
	t.Logf("3.%d: %d samples, %d with Python frames, %d rooted; alpha %d beta %d gamma %d; stats %+v",
		minor, total, withPython, rooted, alpha, beta, gamma, st)
	if total == 0 {
		t.Fatal("no samples of the fixture")
	}
	share := func(n uint64) float64 { return 100 * float64(n) / float64(total) }
	for _, f := range []struct {
		name      string
		n         uint64
		wantShare float64
	}{{"alpha", alpha, 50}, {"beta", beta, 30}, {"gamma", gamma, 20}} {
		if got := share(f.n); got < f.wantShare-3 || got > f.wantShare+3 {
			t.Errorf("%s: %.1f%% of samples, want %.0f%% ± 3", f.name, got, f.wantShare)
		}
	}
	if got := share(rooted); got < 99 {
		t.Errorf("%.1f%% of samples have Python frames down to their thread's first, want ≥ 99%%", got)
	}
	if keyed == 0 || spliced < keyed*9/10 {
		t.Errorf("%d of %d samples in key have sorted's native frames between key and beta", spliced, keyed)
	}
	if len(badLines) > 0 {
		t.Errorf("%d frames with wrong lines, e.g. %s", len(badLines), strings.Join(badLines[:min(len(badLines), 5)], "\n"))
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
