package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WaitSampling waits until process pid (the test binary itself, or a daemon
// it started) holds a perf event on every online CPU: the sampler is
// attached, and a workload frozen with Stop can be let go knowing that all
// of its CPU time will be sampled. Starting the sampler on a loaded machine
// can take many seconds; nothing else tells a test when it is done. It
// gives up when ctx ends (the sampler failed) or after CPUTimeout.
func WaitSampling(ctx context.Context, pid int) error {
	raw, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return fmt.Errorf("list online CPUs: %w", err)
	}
	cpus, err := countCPUs(strings.TrimSpace(string(raw)))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(CPUTimeout)
	for {
		n, err := perfEvents(pid)
		if err != nil {
			return fmt.Errorf("waiting for pid %d to start sampling: %w", pid, err)
		}
		if n >= cpus {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d holds %d perf events after %s, want one on each of %d CPUs", pid, n, CPUTimeout, cpus)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for pid %d to start sampling: %w", pid, context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// perfEvents counts the perf event file descriptors process pid holds.
func perfEvents(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		// An fd closed since the listing is simply not counted.
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == "anon_inode:[perf_event]" {
			n++
		}
	}
	return n, nil
}

// countCPUs counts the CPUs in a kernel CPU list such as "0-3,5,7-8".
func countCPUs(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("CPU list %q: %w", list, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return 0, fmt.Errorf("CPU list %q: bad range %q", list, part)
			}
		}
		n += last - first + 1
	}
	return n, nil
}
