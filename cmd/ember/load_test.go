package main

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
)

// The sampling tests here run on loaded machines too (CI runners are
// shared). A fixed wall-clock run gives a busy fixture anything from a whole
// CPU to next to nothing, and starting the sampler can take seconds: so the
// fixture waits, frozen, until the sampler is attached, then runs until the
// kernel has charged it a set amount of CPU time, and the samples are
// checked against that charge (see internal/testenv).

// untilKilled is the run time, in seconds, given to fixtures the test stops
// itself: longer than any test waits, short enough that a leaked one ends.
const untilKilled = "600"

// whileSampling runs sample (a recording or a daemon in this process, ended
// by its context) and, once its sampler is attached, body; then it ends
// sample and returns its error.
func whileSampling(t *testing.T, sample func(ctx context.Context) error, body func()) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	samplerGone, gone := context.WithCancelCause(context.Background())
	go func() {
		err := sample(ctx)
		gone(errors.New("the sampler returned early"))
		done <- err
	}()
	if err := testenv.WaitSampling(samplerGone, os.Getpid()); err != nil {
		cancel()
		if serr := <-done; serr != nil {
			return serr
		}
		t.Fatal(err)
	}
	body()
	cancel()
	return <-done
}

// runFor lets process pid, frozen with testenv.Stop, run until the kernel
// has charged it cpu more, freezes it again, and returns what it got and
// its share of a CPU meanwhile.
func runFor(t *testing.T, pid int, cpu time.Duration) (got time.Duration, share float64) {
	t.Helper()
	before := testenv.CPU(t, pid)
	start := time.Now()
	testenv.Continue(t, pid)
	testenv.WaitCPU(t, pid, before+cpu)
	testenv.Stop(t, pid)
	got = testenv.CPU(t, pid) - before
	return got, float64(got) / float64(time.Since(start))
}

// secondsFor is how many wall-clock seconds a process with share of a CPU
// needs to get cpu, at least floor: for requests timed by the wall clock.
func secondsFor(cpu time.Duration, share float64, floor int) int {
	if share <= 0 {
		return 60
	}
	return max(floor, int(math.Ceil(cpu.Seconds()/share)))
}

// waitIntervals waits until the daemon at base has stored n more intervals
// than when called, as its /metrics count them.
func waitIntervals(t *testing.T, base string, n int) {
	t.Helper()
	stored := func() int {
		for _, line := range strings.Split(string(httpGet(t, base+"/metrics")), "\n") {
			if v, ok := strings.CutPrefix(line, `ember_intervals_total{outcome="stored"} `); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("/metrics: %q", line)
				}
				return int(f)
			}
		}
		return 0
	}
	want := stored() + n
	deadline := time.Now().Add(testenv.CPUTimeout)
	for got := stored(); got < want; got = stored() {
		if time.Now().After(deadline) {
			t.Fatalf("%d intervals stored after %s, want %d", got, testenv.CPUTimeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
