package model

import (
	"fmt"
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

// Batches with different value types absorb into one whose samples hold
// every type, each value at its type's place and zero where it had none.
func TestAbsorbAlignsValueTypes(t *testing.T) {
	wall, offCPU := ValueType{"wall", "nanoseconds"}, ValueType{"offcpu", "nanoseconds"}
	a := &Batch{Samples: []Sample{{PID: 1, Count: 1}}}
	b := &Batch{ValueTypes: []ValueType{offCPU, wall}, Samples: []Sample{{PID: 2, Values: []int64{5, 7}}}}
	c := &Batch{ValueTypes: []ValueType{wall}, Samples: []Sample{{PID: 3, Values: []int64{9}}}}
	a.Absorb(b)
	a.Absorb(c)
	if len(a.ValueTypes) != 2 || a.ValueTypes[0] != offCPU || a.ValueTypes[1] != wall {
		t.Fatalf("value types %v", a.ValueTypes)
	}
	want := map[uint32][]int64{1: nil, 2: {5, 7}, 3: {0, 9}}
	for _, s := range a.Samples {
		if fmt.Sprint(s.Values) != fmt.Sprint(want[s.PID]) {
			t.Errorf("pid %d: values %v, want %v", s.PID, s.Values, want[s.PID])
		}
	}
}
