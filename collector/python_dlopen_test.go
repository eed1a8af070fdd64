package collector

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

// TestPythonSubinterpretersLateImport: a host-wide collector reads a new
// Python process when its libraries are loaded; the sub-interpreter module
// is dlopen'ed later. The sampler gave that library a range without a table,
// which walks by frame pointer and so never ended at an address in no
// mapping, the one end that asked for the mappings again: 46% of the
// program's samples (every sub-interpreter one) stopped at the module's
// first frame, in no mapping user space knew. They must be complete, each
// native frame in a mapping of the snapshot, but for the moment between
// the import and the re-read it asks for (measured: 94-100%).
func TestPythonSubinterpretersLateImport(t *testing.T) {
	testenv.RequireBPF(t)
	script, _ := filepath.Abs("../testdata/python/subinterp.py")
	var exes []string
	var minors []int
	for minor := 11; minor <= 13; minor++ {
		var exe string
		t.Run(fmt.Sprintf("find 3.%d", minor), func(t *testing.T) { exe = pythonBuild(t, minor) })
		if exe != "" {
			exes, minors = append(exes, exe), append(minors, minor)
		}
	}
	if len(exes) == 0 {
		t.Skip("no CPython build with sub-interpreters to run")
	}
	// Host-wide, and started first: the process is read as the loader
	// tells of it, before its script imports the module.
	c := newCollector(t, Config{FrequencyHz: 999})
	if _, err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	// Warm: a first run of each interpreter has its tables built (a host-
	// wide collector reads every process at start, which takes seconds
	// under load); the fixtures' own late library is what is tested.
	for _, exe := range exes {
		cmd := startFixture(t, exe, "-c", "import time; time.sleep(2)")
		testenv.WaitCPU(t, cmd.Process.Pid, 10*time.Millisecond)
	}
	for range 8 {
		time.Sleep(250 * time.Millisecond)
		if _, err := c.Drain(); err != nil {
			t.Fatal(err)
		}
	}
	var runs []*lateRun
	for i, exe := range exes {
		cmd := startFixture(t, exe, script, "late")
		runs = append(runs, &lateRun{minor: minors[i], pid: uint32(cmd.Process.Pid)})
	}
	for _, r := range runs {
		// 0.3 s before the import, then about 0.6 s of sub-interpreter
		// work; only samples of it count, whenever the import happened.
		drainUntilCPU(t, c, r.pid, 1500*time.Millisecond, func(b *model.Batch) {
			for _, s := range b.Samples {
				for _, r := range runs {
					if s.PID == r.pid {
						r.add(b, &s)
					}
				}
			}
		})
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("3.%d", r.minor), func(t *testing.T) {
			t.Logf("%d samples in in_sub: %d walked to the end, %d with every native frame in a known mapping; ends %v",
				r.sub, r.subComplete, r.subMapped, r.ends)
			if r.sub < 50 {
				t.Fatalf("%d samples in in_sub, too few to judge", r.sub)
			}
			share := func(n uint64) float64 { return 100 * float64(n) / float64(r.sub) }
			if got := share(r.subComplete); got < 90 {
				t.Errorf("%.1f%% of in_sub's samples walked to the end, want ≥ 90%%", got)
			}
			if got := share(r.subMapped); got < 90 {
				t.Errorf("%.1f%% of in_sub's samples have every native frame in a mapping read, want ≥ 90%%", got)
			}
		})
	}
}

// lateRun counts one fixture's samples in its sub-interpreter.
type lateRun struct {
	minor                       int
	pid                         uint32
	sub, subComplete, subMapped uint64
	ends                        map[model.UnwindEnd]uint64 // of in_sub's samples
}

func (r *lateRun) add(b *model.Batch, s *model.Sample) {
	if indexOf(pythonOnly(s.UserFrames), "in_sub") < 0 {
		return
	}
	r.sub += s.Count
	if r.ends == nil {
		r.ends = make(map[model.UnwindEnd]uint64)
	}
	r.ends[s.UserEnd] += s.Count
	if s.UserEnd == model.UnwindComplete && !s.UserTruncated {
		r.subComplete += s.Count
	}
	p := b.Processes[model.ProcessKey{PID: s.PID, ExecSeq: s.ExecSeq}]
	if p == nil {
		return
	}
	for _, f := range s.UserFrames {
		if f.Kind == model.FrameNative && p.FindMapping(f.Addr) == nil {
			return
		}
	}
	r.subMapped += s.Count
}
