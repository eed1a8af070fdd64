package collector

import (
	"os"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/testenv"
)

// After Stop nothing more is sampled, and the drain that follows, however
// late, ends at the stop.
func TestStopEndsSampling(t *testing.T) {
	hot := startHotspot(t)
	c := newCollector(t, Config{PIDs: []uint32{uint32(hot.Process.Pid)}})
	// Some CPU while sampled, however long a loaded machine takes to give it.
	testenv.WaitCPU(t, hot.Process.Pid, testenv.CPU(t, hot.Process.Pid)+200*time.Millisecond)
	before := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	time.Sleep(700 * time.Millisecond) // a slow drain
	b, err := c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	if b.End.Before(before) || b.End.After(after) {
		t.Errorf("the drain after Stop ends at %s, Stop ran from %s to %s", b.End, before, after)
	}
	if b.Stats.Recorded == 0 {
		t.Errorf("nothing recorded before Stop: %+v", b.Stats)
	}
	time.Sleep(300 * time.Millisecond)
	b, err = c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	if b.Stats.Taken != 0 || len(b.Samples) != 0 {
		t.Errorf("sampled after Stop: %+v", b.Stats)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}

// With ForkParent set, only the processes it forks are sampled, not
// itself: here, this test process.
func TestForkParentIsNotSampled(t *testing.T) {
	c := newCollector(t, Config{ForkParent: uint32(os.Getpid())})
	hot := startHotspot(t)
	// Burn in this process too, until the child has had some CPU: it must not show.
	until := testenv.CPU(t, hot.Process.Pid) + 200*time.Millisecond
	for x := uint64(1); testenv.CPU(t, hot.Process.Pid) < until; x = x*6364136223846793005 + 1 {
		for range 1 << 16 {
			x = x*6364136223846793005 + 1
		}
	}
	b, err := c.Drain()
	if err != nil {
		t.Fatal(err)
	}
	var child uint64
	for _, s := range b.Samples {
		if s.PID != uint32(hot.Process.Pid) {
			t.Fatalf("a sample of pid %d (%s), not of the child %d", s.PID, s.Comm, hot.Process.Pid)
		}
		child += s.Count
	}
	if child == 0 {
		t.Errorf("no samples of the child: %+v", b.Stats)
	}
}
