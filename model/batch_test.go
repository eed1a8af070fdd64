package model

import (
	"testing"
	"time"
)

type releaseCount struct{ n *int }

func (r releaseCount) Release() { *r.n++ }

// A batch that absorbs a later one spans both, and releasing it releases
// what both held, once.
func TestAbsorbSpansBothBatches(t *testing.T) {
	t0 := time.Unix(100, 0)
	var released int
	a := &Batch{Start: t0, End: t0.Add(time.Second), Samples: []Sample{{PID: 1, Count: 2}},
		Processes: map[ProcessKey]*Process{{PID: 1}: {PID: 1}}}
	b := &Batch{Start: t0.Add(time.Second), End: t0.Add(2 * time.Second), Samples: []Sample{{PID: 2, Count: 3}},
		Processes: map[ProcessKey]*Process{{PID: 2}: {PID: 2}}}
	a.HoldUntilRelease(releaseCount{&released})
	b.HoldUntilRelease(releaseCount{&released})
	a.Absorb(b)
	if !a.Start.Equal(t0) || !a.End.Equal(t0.Add(2*time.Second)) {
		t.Errorf("absorbed batch spans %v..%v", a.Start, a.End)
	}
	if len(a.Samples) != 2 || len(a.Processes) != 2 {
		t.Errorf("absorbed batch has %d samples and %d processes, want 2 and 2", len(a.Samples), len(a.Processes))
	}
	b.Release() // b gave its hold to a
	a.Release()
	if released != 2 {
		t.Errorf("%d holds released, want both", released)
	}
}
