package symbolizer

import (
	"testing"

	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/schema"
)

// An off-CPU wait that began with a preemption has no stacks: its sample
// is the one [preempted] frame, with no loss marker, and keeps its state.
func TestPreemptedWaitIsOneFrame(t *testing.T) {
	s := newTestSymbolizer(t)
	var types []model.ValueType
	for _, vt := range schema.OffCPUSampleTypes {
		types = append(types, model.ValueType{Type: vt.Type, Unit: vt.Unit})
	}
	b := &model.Batch{PeriodNanos: 10, ValueTypes: types, Samples: []model.Sample{{
		PID: 7, TID: 8, Comm: "app", State: model.StateRunnable,
		UserLost: model.LostPreempted, Values: []int64{5_000_000, 3},
	}}}
	p, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != 1 {
		t.Fatalf("%d samples, want 1", len(p.Sample))
	}
	smp := p.Sample[0]
	var names []string
	for _, loc := range smp.Location {
		for _, line := range loc.Line {
			names = append(names, line.Function.Name)
		}
	}
	if len(names) != 1 || names[0] != markerPreempted {
		t.Errorf("frames %q, want [%s]", names, markerPreempted)
	}
	if got := smp.Label[schema.LabelThreadState]; len(got) != 1 || got[0] != model.StateRunnable.String() {
		t.Errorf("thread state %v, want %s", got, model.StateRunnable)
	}
	if n := len(smp.Value); n < 2 || smp.Value[n-2] != 5_000_000 || smp.Value[n-1] != 3 {
		t.Errorf("values %v, want the wait's 5000000 ns and 3 waits last", smp.Value)
	}
}
