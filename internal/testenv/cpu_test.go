package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// busyChild starts a shell spinning in its own code and returns its pid.
func busyChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestWaitCPUStopContinue(t *testing.T) {
	pid := busyChild(t)
	start := CPU(t, pid)
	got := WaitCPU(t, pid, start+50*time.Millisecond)
	if got < start+50*time.Millisecond {
		t.Fatalf("WaitCPU returned %s, want at least %s", got, start+50*time.Millisecond)
	}
	Stop(t, pid)
	frozen := CPU(t, pid)
	time.Sleep(100 * time.Millisecond)
	if after := CPU(t, pid); after != frozen {
		t.Errorf("a stopped process went from %s to %s of CPU", frozen, after)
	}
	Continue(t, pid)
	WaitCPU(t, pid, frozen+20*time.Millisecond)
}

func TestProcessCPUOfAGoneProcess(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := ProcessCPU(cmd.Process.Pid); err == nil {
		t.Error("no error for a reaped process")
	}
	if !exited(cmd.Process.Pid) {
		t.Error("a reaped process is not reported as exited")
	}
}

func TestSamplesAgree(t *testing.T) {
	period := time.Second / 99
	for _, tc := range []struct {
		n   int64
		cpu time.Duration
		ok  bool
	}{
		{n: 495, cpu: 5 * time.Second, ok: true},
		{n: 400, cpu: 5 * time.Second, ok: true}, // 4.3 sigma below
		{n: 350, cpu: 5 * time.Second},           // 30% lost
		{n: 990, cpu: 5 * time.Second},           // counted twice
		{n: 0, cpu: 0, ok: true},
		{n: 3, cpu: 0, ok: true}, // window edges
		{n: 20, cpu: 0},
		{n: 0, cpu: time.Second},
	} {
		err := SamplesAgree(tc.n, period, tc.cpu)
		if (err == nil) != tc.ok {
			t.Errorf("%d samples against %s: %v, want ok=%v", tc.n, tc.cpu, err, tc.ok)
		}
	}
	if err := SamplesAgree(10, 0, time.Second); err == nil {
		t.Error("no error for a zero period")
	}
}

func TestCountCPUs(t *testing.T) {
	for list, want := range map[string]int{"0": 1, "0-1": 2, "0-3,5,7-8": 7} {
		if got, err := countCPUs(list); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", list, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "1-x"} {
		if _, err := countCPUs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPerfEventsNoneHeld(t *testing.T) {
	n, err := perfEvents(os.Getpid())
	if err != nil || n != 0 {
		t.Errorf("this test holds %d perf events (%v), want none", n, err)
	}
	if _, err := perfEvents(1 << 30); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing pid: %v", err)
	}
}

func TestWaitSamplingGivesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitSampling(ctx, os.Getpid()); err == nil {
		t.Error("no error with nothing sampling and the context ended")
	}
}
