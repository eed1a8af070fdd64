package collector

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

// TestPythonQualnames: on CPython 3.8-3.10, whose code objects have no
// qualified name, a process burning 60/40 of its CPU in A.work and B.work
// (both code objects named "work") is profiled with the two told apart,
// each with its share, the names derived from the script's source. Each
// version runs it twice: by its absolute path, and as "python3.x
// samename.py" from its folder, which 3.8 keeps relative (to the
// directory the process started in).
func TestPythonQualnames(t *testing.T) {
	testenv.RequireBPF(t)
	script, _ := filepath.Abs("../testdata/python/samename.py")
	type run struct {
		name                      string
		pid                       uint32
		total, a, b, bare, rooted uint64
	}
	var runs []*run
	var started []startedPython
	for minor := 8; minor <= 10; minor++ {
		var exe string
		t.Run(fmt.Sprintf("find 3.%d", minor), func(t *testing.T) { exe = pythonBuild(t, minor) })
		if exe == "" {
			continue
		}
		abs := startedPython{minor, uint32(startFixture(t, exe, script).Process.Pid)}
		cmd := exec.Command(exe, filepath.Base(script))
		cmd.Dir = filepath.Dir(script)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", exe, err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		started = append(started, abs, startedPython{minor, uint32(cmd.Process.Pid)})
		runs = append(runs, &run{name: fmt.Sprintf("3.%d", minor), pid: abs.pid},
			&run{name: fmt.Sprintf("3.%d relative", minor), pid: uint32(cmd.Process.Pid)})
	}
	if len(started) == 0 {
		t.Skip("no CPython 3.8-3.10 build to run")
	}
	var pids []uint32
	for _, p := range started {
		testenv.WaitCPU(t, int(p.pid), 100*time.Millisecond)
		pids = append(pids, p.pid)
	}
	c := newCollector(t, Config{PIDs: pids, FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	var st model.PythonStats
	each := func(b *model.Batch) {
		st.Add(b.Stats.Python)
		for _, s := range b.Samples {
			for _, r := range runs {
				if s.PID != r.pid {
					continue
				}
				r.total += s.Count
				py := pythonOnly(s.UserFrames)
				switch {
				case indexOf(py, "A.work") >= 0:
					r.a += s.Count
				case indexOf(py, "B.work") >= 0:
					r.b += s.Count
				case indexOf(py, "work") >= 0:
					r.bare += s.Count
				}
				if len(py) > 0 && py[len(py)-1].Function == "<module>" {
					r.rooted += s.Count
				}
			}
		}
	}
	for _, r := range runs {
		drainUntilCPU(t, c, r.pid, 1200*time.Millisecond, each)
	}
	t.Logf("walker: %+v", st)
	if st.Qualified == 0 {
		t.Errorf("no frame qualified from its source; fallbacks %v", st.QualnameFallbacks)
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			t.Logf("%d samples: A.work %d, B.work %d, bare work %d, rooted %d", r.total, r.a, r.b, r.bare, r.rooted)
			if r.total == 0 {
				t.Fatal("no samples of the fixture")
			}
			share := func(n uint64) float64 { return 100 * float64(n) / float64(r.total) }
			if a, b := share(r.a), share(r.b); a < 55 || a > 65 || b < 35 || b > 45 {
				t.Errorf("A.work %.1f%%, B.work %.1f%% of samples, want 60%% and 40%% ± 5", a, b)
			}
			if r.bare > 0 {
				t.Errorf("%d samples name a bare work frame", r.bare)
			}
			if got := share(r.rooted); got < 98 {
				t.Errorf("%.1f%% of samples rooted at <module>, want ≥ 98%%", got)
			}
		})
	}
}
