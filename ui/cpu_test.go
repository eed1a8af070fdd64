package ui_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ember-profiler/ember/internal/testenv"
)

// browserCPU is the CPU time the kernel has charged the browser and every
// process it started (renderer, GPU, utilities): what its work costs, which
// on a loaded machine the wall clock does not tell.
func (b *browser) browserCPU(t *testing.T) time.Duration {
	t.Helper()
	c := chromedp.FromContext(b.ctx)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		t.Fatal("no browser process")
	}
	root := c.Browser.Process().Pid
	parents := map[int]int{} // pid -> parent pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		var ppid int
		if i := bytes.LastIndexByte(raw, ')'); i > 0 {
			fmt.Sscanf(string(raw[i+1:]), " %*c %d", &ppid)
		}
		parents[pid] = ppid
	}
	var total time.Duration
	for pid := range parents {
		for p := pid; p > 1; p = parents[p] {
			if p == root {
				if cpu, err := testenv.ProcessCPU(pid); err == nil {
					total += cpu
				}
				break
			}
		}
	}
	return total
}
