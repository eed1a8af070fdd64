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

	"github.com/ember-profiler/ember/model"
)

// shortLivedRun is what TestShortLivedUnwound measured.
type shortLivedRun struct {
	started          int
	latencies        []time.Duration // exec to ranges installed, of those installed
	samples, unwound uint64          // by Ember's unwinder, complete
	kernelFP, cut    uint64          // walked by the kernel (tables not in); unwound but cut
	beforeExec       uint64          // of the child before its execve, left out
	unread           uint64          // whose process was never read from /proc
	flooded          int             // /bin/true started beside them
	bySampler        uint64          // images the sampler gave ranges itself
	pids             map[uint32]bool // of the programs started
	openFile         uint64          // samples whose leaf is in a mapping with its file open
}

// Programs that live 300 ms must be unwound from their first samples: their
// tables are ready by then. Five start a second; EMBER_SHORTLIVED_SECONDS
// sets how many seconds (default 6) for a longer measurement.
func TestShortLivedUnwound(t *testing.T) {
	burst, _ := filepath.Abs("../testdata/unwind/burst")
	secs := 6
	if s, err := strconv.Atoi(os.Getenv("EMBER_SHORTLIVED_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	c := newCollector(t, Config{})
	// The interpreter itself, not a launcher script (pyenv's shims exec
	// through several shells).
	python := "python3"
	if out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output(); err == nil {
		python = strings.TrimSpace(string(out))
	}
	programs := []struct {
		name string
		argv func(ms int) []string
	}{
		{"c", func(ms int) []string { return []string{burst, strconv.Itoa(ms)} }},
		{"python", func(ms int) []string {
			return []string{python, "-c", "import time\ne = time.process_time() + " + strconv.Itoa(ms) + "/1000\nwhile time.process_time() < e: pass"}
		}},
	}
	for _, prog := range programs {
		t.Run(prog.name, func(t *testing.T) {
			if _, err := exec.LookPath(prog.argv(0)[0]); err != nil {
				t.Skip(err)
			}
			warmUp(t, c, prog.argv(60000))
			run := measureShortLived(t, c, prog.argv(300), secs, 0)
			reportShortLived(t, run, true)
		})
	}
	// A host starting many programs that exit at once (a shell loop, a
	// build): reading each of those must not delay the reads of the
	// programs that live long enough to be sampled.
	t.Run("c-among-true", func(t *testing.T) {
		run := measureShortLived(t, c, programs[0].argv(300), secs, 50)
		reportShortLived(t, run, true)
	})
	// Programs that are never sampled (sleep) cost no /proc read once the
	// sampler gave them their ranges from files already known as plain.
	t.Run("never-sampled", func(t *testing.T) {
		sleep, err := exec.LookPath("sleep")
		if err != nil {
			t.Skip(err)
		}
		warmUp(t, c, []string{sleep, "60"})
		before := c.images.total()
		var cmds []*exec.Cmd
		for range 20 {
			cmd := exec.Command(sleep, "0.5")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
			time.Sleep(50 * time.Millisecond)
		}
		for _, cmd := range cmds {
			cmd.Wait()
		}
		got := c.images.total().Minus(before)
		t.Logf("20 sleeps: %d read, %d skipped, %d cancelled", got.Read, got.Skipped, got.Cancelled)
		// A sleep sampled while starting is read, as it must be.
		if got.Skipped < 12 {
			t.Errorf("%d of 20 images that were never sampled were left unread (want 12)", got.Skipped)
		}
	})
	// A shell's subshells fork and never exec: they walk with their
	// parent's ranges, which the sampler installed, and nothing is read.
	t.Run("forked-unread", func(t *testing.T) {
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Skip(err)
		}
		warmUp(t, c, []string{bash, "-c", "sleep 60"})
		c.images.pause(true)
		defer c.images.pause(false)
		script := `spin() { local i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; }
for n in 1 2 3 4; do spin & echo $!; done; wait`
		cmd := exec.Command(bash, "-c", script)
		var out strings.Builder
		cmd.Stdout = &out
		var samples []model.Sample
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		drain := func() {
			b, err := c.Drain()
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, b.Samples...)
		}
	wait:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				break wait
			case <-time.After(time.Second):
				drain()
			}
		}
		time.Sleep(1500 * time.Millisecond) // the last samples reach a drain
		drain()
		children := map[uint32]bool{}
		for _, f := range strings.Fields(out.String()) {
			if pid, err := strconv.Atoi(f); err == nil {
				children[uint32(pid)] = true
			}
		}
		var all, unwound uint64
		for _, s := range samples {
			if !children[s.PID] || s.UserLost != model.LostNone {
				continue
			}
			all += s.Count
			if s.UserSource == model.SourceUnwinder && !s.UserTruncated {
				unwound += s.Count
			}
		}
		t.Logf("%d subshells: %d samples, %d unwound complete", len(children), all, unwound)
		if all < 20 {
			t.Skipf("only %d samples of the subshells: the machine starved them", all)
		}
		if unwound*10 < all*9 {
			t.Errorf("%d of %d samples of forked subshells unwound complete with no /proc read (want 90%%)", unwound, all)
		}
	})
	// A host too loaded for /proc reads to keep up: the sampler gives each
	// image its ranges itself, from the tables of the files it has seen.
	t.Run("c-unread", func(t *testing.T) {
		warmUp(t, c, programs[0].argv(60000))
		c.images.pause(true)
		defer c.images.pause(false)
		run := measureShortLived(t, c, programs[0].argv(300), secs, 0)
		reportShortLived(t, run, true)
		// Those that exited before a drain read them are named from the
		// sampler's record: their files are found as other processes held them.
		if run.openFile*10 < run.samples*9 {
			t.Errorf("%d of %d samples have their leaf's file to name it with (want 90%%)", run.openFile, run.samples)
		}
		if run.bySampler*10 < uint64(run.started)*9 {
			t.Errorf("the sampler installed %d of %d images by itself (want 90%%)", run.bySampler, run.started)
		}
		if run.unwound*10 < run.samples*9 {
			t.Errorf("%d of %d samples unwound complete with no /proc read (want 90%%)", run.unwound, run.samples)
		}
		// All have exited: what the sampler installed for them is gone.
		for _, pid := range c.unwind.maps.imagePIDs() {
			if run.pids[pid] {
				t.Errorf("process %d exited, but what the sampler installed for it is still there", pid)
			}
		}
	})
}

// warmUp starts argv once and waits until its ranges are in, from its
// tables: the first start builds the tables of the program and its
// libraries, which later starts share (the daemon keeps them on disk); the
// measure is of the starts after that. (Once its files are known, the
// sampler installs it, and this side may never read it.)
func warmUp(t *testing.T, c *Collector, argv []string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pid := uint32(cmd.Process.Pid)
	for {
		c.unwind.mu.Lock()
		in := c.unwind.installs[pid]
		c.unwind.mu.Unlock()
		if in != nil {
			break
		}
		if rec, ok := c.unwind.maps.image(pid); ok && rec.Ranges > 0 && rec.Unknown == 0 {
			break
		}
		select {
		case <-exited:
			t.Fatal("the warm-up process exited before its tables were in")
		case <-time.After(time.Millisecond):
		}
	}
	cmd.Process.Kill()
	<-exited
}

// reportShortLived logs a run and checks its shares; processes never read
// from /proc are counted against it when wantRead.
func reportShortLived(t *testing.T, run shortLivedRun, wantRead bool) {
	t.Helper()
	slices.Sort(run.latencies)
	pct := func(q float64) time.Duration {
		if len(run.latencies) == 0 {
			return 0
		}
		return run.latencies[int(q*float64(len(run.latencies)-1))]
	}
	share := func(n uint64) float64 { return 100 * float64(n) / float64(max(run.samples, 1)) }
	t.Logf("%d starts (and %d of /bin/true), %d installed (%d by the sampler); exec to ranges installed: p50 %v, p90 %v, max %v", run.started, run.flooded, len(run.latencies), run.bySampler, pct(0.5), pct(0.9), pct(1))
	t.Logf("%d samples: %.2f%% unwound complete, %.2f%% walked by the kernel (truncated), %.2f%% unwound but cut (and %d before the execve, left out)",
		run.samples, share(run.unwound), share(run.kernelFP), share(run.cut), run.beforeExec)
	if run.samples < 50 {
		t.Skipf("only %d samples of the short-lived programs: the machine starved them", run.samples)
	}
	t.Logf("%.2f%% of the samples belong to processes with no mappings to name them (never read from /proc, nothing recorded)", share(run.unread))
	if run.kernelFP*10 > run.samples {
		t.Errorf("%.2f%% of the samples were taken before the tables were in (want at most 10%%)", share(run.kernelFP))
	}
	if wantRead && run.unread*50 > run.samples {
		t.Errorf("%.2f%% of the samples belong to processes never read from /proc (want at most 2%%)", share(run.unread))
	}
}

// measureShortLived starts argv five times a second for secs seconds, and
// /bin/true flood times a second beside it.
func measureShortLived(t *testing.T, c *Collector, argv []string, secs, flood int) shortLivedRun {
	var (
		mu      sync.Mutex
		run     shortLivedRun
		pids    = map[uint32]bool{}
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		drained = make(chan struct{})
	)
	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // comm's length
	}
	tally := func(b *model.Batch) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range b.Samples {
			if !pids[s.PID] || s.UserLost != model.LostNone {
				continue
			}
			if s.Comm == self {
				// The forked test binary before its execve: not the program.
				run.beforeExec += s.Count
				continue
			}
			run.samples += s.Count
			p := b.Processes[s.Key()]
			if p == nil || p.SnapshotErr != nil {
				run.unread += s.Count
			} else if len(s.User) > 0 {
				if m := p.FindMapping(s.User[0]); m != nil && m.File != nil {
					run.openFile += s.Count
				}
			}
			switch {
			case s.UserSource != model.SourceUnwinder:
				run.kernelFP += s.Count
			case s.UserTruncated:
				run.cut += s.Count
			default:
				run.unwound += s.Count
			}
		}
	}
	go func() {
		defer close(drained)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			b, err := c.Drain()
			if err != nil {
				t.Error(err)
				return
			}
			tally(b)
		}
	}()
	if flood > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(flood))
			defer tick.Stop()
			for range secs * flood {
				<-tick.C
				if err := exec.Command("/bin/true").Start(); err == nil {
					mu.Lock()
					run.flooded++
					mu.Unlock()
				}
			}
		}()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	for range secs * 5 {
		<-tick.C
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		execed := time.Now()
		pid := uint32(cmd.Process.Pid)
		mu.Lock()
		pids[pid] = true
		run.started++
		mu.Unlock()
		wg.Add(2)
		exited := make(chan struct{})
		go func() { defer wg.Done(); cmd.Wait(); close(exited) }()
		go func() {
			defer wg.Done()
			d, ok, bySampler := timeToInstall(c, pid, execed, exited)
			mu.Lock()
			if ok {
				run.latencies = append(run.latencies, d)
			}
			if bySampler {
				run.bySampler++
			}
			mu.Unlock()
		}()
	}
	tick.Stop()
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // the last samples reach a drain
	close(stop)
	<-drained
	b, err := c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	tally(b)
	run.pids = pids
	return run
}

// timeToInstall polls until pid has ranges, from this side or the
// sampler, and says how long after execed, or gives up when it exits
// first; bySampler says whether the sampler installed them.
func timeToInstall(c *Collector, pid uint32, execed time.Time, exited <-chan struct{}) (d time.Duration, ok, bySampler bool) {
	for {
		c.unwind.mu.Lock()
		in := c.unwind.installs[pid]
		c.unwind.mu.Unlock()
		if rec, found := c.unwind.maps.image(pid); found && rec.Ranges > rec.Unknown {
			return time.Since(execed), true, true
		}
		if in != nil {
			return time.Since(execed), true, false
		}
		select {
		case <-exited:
			return 0, false, false
		case <-time.After(200 * time.Microsecond):
		}
	}
}
