package testenv

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sampler tests run on shared, loaded machines (CI runners, build hosts),
// where a busy process may get a tenth of a CPU or less. So they wait for
// CPU time the kernel charged a process, never for wall-clock time, and
// compare the samples with that charge rather than with a rate per second.

// CPUTimeout bounds every wait for CPU time: long enough for a few seconds
// of CPU at a load average of 50 on two CPUs.
const CPUTimeout = 5 * time.Minute

// ProcessCPU is the user plus system time the kernel has charged process pid
// (all its threads), from /proc/PID/stat, at its 10 ms resolution.
func ProcessCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields follow the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// CPU is ProcessCPU that fails the test on error.
func CPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	d, err := ProcessCPU(pid)
	if err != nil {
		t.Fatalf("CPU time of pid %d: %v", pid, err)
	}
	return d
}

// WaitCPU waits until the kernel has charged process pid at least until of
// CPU time in all (compare with an earlier CPU reading), and returns the
// charge it saw. A process that stops running, or gets too little CPU
// within CPUTimeout, fails the test.
func WaitCPU(t testing.TB, pid int, until time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(CPUTimeout)
	for {
		got, err := ProcessCPU(pid)
		if err != nil {
			t.Fatalf("waiting for pid %d to get %s of CPU: %v", pid, until, err)
		}
		if got >= until {
			return got
		}
		if exited(pid) {
			t.Fatalf("pid %d exited with %s of CPU, before it got %s", pid, got, until)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d got %s of CPU in %s, want %s", pid, got, CPUTimeout, until)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exited reports whether pid is a zombie or gone: a child the test has not
// waited for yet keeps its /proc entry, frozen.
func exited(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(raw, ')')
	return i < 0 || i+2 >= len(raw) || raw[i+2] == 'Z' || raw[i+2] == 'X'
}

// Stop freezes process pid (SIGSTOP) so that its CPU time stops growing: a
// test can then read it and know the samples' window holds all of it.
func Stop(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop pid %d: %v", pid, err)
	}
	// The signal is delivered asynchronously: wait until the state says so.
	deadline := time.Now().Add(CPUTimeout)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not stop", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

func stopped(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(raw, ')')
	return i < 0 || i+2 >= len(raw) || raw[i+2] == 'T' || raw[i+2] == 'Z' || raw[i+2] == 'X'
}

// Continue resumes a process frozen by Stop.
func Continue(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("continue pid %d: %v", pid, err)
	}
}

// SamplesAgree checks n samples of period each against cpu, the CPU time the
// kernel charged the sampled process over the same window. On a loaded
// machine the process runs in slices shorter than the period, so which
// timer tick finds it running is close to chance: the count spreads like a
// Poisson count, and 4.5 standard deviations (one false alarm in ~100,000)
// plus a sample at each end of the window, on each of two CPUs, plus the
// kernel's 10 ms accounting at both readings, bound the honest difference.
func SamplesAgree(n int64, period, cpu time.Duration) error {
	if period <= 0 {
		return fmt.Errorf("sample period %s", period)
	}
	want := float64(cpu) / float64(period)
	tol := 4.5*math.Sqrt(want) + 4 + float64(20*time.Millisecond)/float64(period)
	if math.Abs(float64(n)-want) > tol {
		return fmt.Errorf("%d samples of %s = %s of CPU, but the kernel charged %s (%.0f ± %.0f samples)",
			n, period, time.Duration(n)*period, cpu, want, tol)
	}
	return nil
}
