package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/mainmapping"
	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/internal/testenv"
)

// --duration is the time sampled: loading the sampler, which takes a
// while on a busy host, does not come out of it, and the profile's
// duration is the time its samples cover.
func TestRecordDurationCountsFromSampling(t *testing.T) {
	testenv.RequireBPF(t)
	out := filepath.Join(t.TempDir(), "out.pb.gz")
	const want = 2 * time.Second
	start := time.Now()
	var stderr bytes.Buffer
	err := record(context.Background(), recordOptions{duration: want, drainInterval: time.Second, output: out,
		format: "pprof", collector: collector.Config{FrequencyHz: 99}}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	got := time.Duration(profiletest.Read(t, out).DurationNanos)
	t.Logf("--duration %s: profile covers %s, the run took %s; %s", want, got, took, stderr.String())
	// A drain ends a few milliseconds after the deadline, never before it;
	// on a starved host (CI's loaded run) it may run seconds late, but far
	// less late than loading the sampler took, which must not count.
	late, loading := got-want, took-got
	if got < want || (late > 500*time.Millisecond && late > loading/2) {
		t.Errorf("profile covers %s for --duration %s (the run took %s)", got, want, took)
	}
	if !strings.Contains(stderr.String(), " samples in 2.") {
		t.Errorf("summary: %s", stderr.String())
	}
	// Whole host: pprof's title names the host, not some process's file.
	if first := profiletest.Read(t, out).Mapping[0].File; first != mainmapping.HostFile {
		t.Errorf("first mapping of a whole-host profile: %q", first)
	}
}

// `record -- CMD` profiles CMD and the processes it forks (here a child
// and a grandchild that never exec), and nothing else.
func TestRecordCommand(t *testing.T) {
	testenv.RequireBPF(t)
	// A busy process outside the tree, which must not be in the profile.
	other := exec.Command("../../testdata/hotspot/hotspot", "8")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })

	dir := t.TempDir()
	out, pidfile := filepath.Join(dir, "out.pb.gz"), filepath.Join(dir, "pids")
	forker, _ := filepath.Abs("../../testdata/hotspot/forker")
	var stderr bytes.Buffer
	start := time.Now()
	err := record(context.Background(), recordOptions{duration: time.Minute, untilExit: true, drainInterval: time.Second,
		output: out, format: "pprof", command: []string{forker, "2", pidfile},
		collector: collector.Config{FrequencyHz: 99}}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", stderr.String())
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("recording a 2 s command took %s", took)
	}
	if !strings.Contains(stderr.String(), "forker exited with status 3") {
		t.Errorf("the command's status is not reported: %s", stderr.String())
	}
	// The tree, as its processes wrote it: role -> pid.
	raw, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[int64]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		role, pid, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(pid, 10, 64)
		roles[n] = role
	}
	p := profiletest.Read(t, out)
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	leafOf := map[string]string{"parent": "parent_burn", "child": "child_burn", "grandchild": "grandchild_burn"}
	byRole := map[string]int64{}
	for _, s := range p.Sample {
		pid := s.NumLabel["pid"][0]
		role, ok := roles[pid]
		if !ok {
			t.Fatalf("a sample of pid %d (%v), outside the command's tree %v", pid, s.Label["comm"], roles)
		}
		chain := userChain(s)
		if len(chain) > 0 && strings.HasSuffix(chain[len(chain)-1], "_burn") && chain[len(chain)-1] != leafOf[role] {
			t.Errorf("the %s (pid %d) ran %s", role, pid, chain[len(chain)-1])
		}
		byRole[role] += s.Value[0]
	}
	t.Logf("samples by process: %v", byRole)
	// Two thirds of the tree's CPU time is in processes that never exec:
	// without following forks they would have no samples.
	if byRole["parent"] == 0 || byRole["child"]+byRole["grandchild"] == 0 {
		t.Errorf("samples by process %v: the forked processes were not followed", byRole)
	}
	// Titled by the command's executable, unless a sample fell between the
	// fork and the exec (then Ember's own code ran there).
	var programs mainmapping.Programs
	for _, s := range p.Sample {
		programs.Add(strings.Join(s.Label["exe"], ""))
	}
	want := mainmapping.HostFile
	if exe, ok := programs.Single(); ok && exe == forker {
		want = forker
	}
	if p.Mapping[0].File != want {
		t.Errorf("first mapping %q, want %s", p.Mapping[0].File, want)
	}
}

// Signals sent to Ember reach the command; Ember still writes the profile,
// exits 0 and says how the command ended.
func TestRecordCommandForwardsSignals(t *testing.T) {
	testenv.RequireBPF(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.pb.gz")
	cmd := exec.Command(self, "record", "-o", out, "--", "sleep", "60")
	cmd.Env = append(os.Environ(), "EMBER_TEST_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Its own process group: not a terminal's foreground group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait until sleep runs as Ember's child.
	deadline := time.Now().Add(60 * time.Second)
	for !hasChild(cmd.Process.Pid, "sleep") {
		if time.Now().After(deadline) {
			t.Fatalf("sleep never started: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ember: %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("ember did not end after SIGTERM: %s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "sleep was killed by signal 15") {
		t.Errorf("output: %s", stderr.String())
	}
	profiletest.Read(t, out)
}

// hasChild reports whether pid has a child process named comm. Children
// are listed by the thread that forked them.
func hasChild(pid int, comm string) bool {
	lists, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, list := range lists {
		raw, _ := os.ReadFile(list)
		for _, child := range strings.Fields(string(raw)) {
			name, err := os.ReadFile("/proc/" + child + "/comm")
			if err == nil && strings.TrimSpace(string(name)) == comm {
				return true
			}
		}
	}
	return false
}
