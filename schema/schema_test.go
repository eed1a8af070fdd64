package schema

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/pprof/profile"
)

func TestKnownOrderIsStable(t *testing.T) {
	// The store records types by these positions: moving one would make
	// stored values change meaning.
	want := []SampleType{{"samples", "count"}, {"cpu", "nanoseconds"}, {"offcpu", "nanoseconds"}, {"wall", "nanoseconds"}, {"waits", "count"}}
	if len(Known) != len(want) {
		t.Fatalf("Known has %d types, want %d", len(Known), len(want))
	}
	for i, w := range want {
		if Known[i] != w || Index(w) != i {
			t.Errorf("Known[%d] = %v (Index %d), want %v", i, Known[i], Index(w), w)
		}
	}
	if Index(SampleType{"cpu", "count"}) != -1 {
		t.Error("an unknown type has an index")
	}
}

func TestCheckSampleTypes(t *testing.T) {
	vt := func(typ, unit string) *profile.ValueType { return &profile.ValueType{Type: typ, Unit: unit} }
	for _, tc := range []struct {
		name string
		vts  []*profile.ValueType
		ok   bool
	}{
		{"cpu", CPUSampleTypes(), true},
		{"count only", ValueTypes(Samples), true},
		{"wall and cpu", ValueTypes(Samples, CPU, Wall), true},
		{"off-cpu only", ValueTypes(OffCPU), true},
		{"none", nil, false},
		{"unknown", []*profile.ValueType{vt("samples", "count"), vt("alloc_space", "bytes")}, false},
		{"twice", ValueTypes(CPU, CPU), false},
	} {
		if err := CheckSampleTypes(tc.vts); (err == nil) != tc.ok {
			t.Errorf("%s: CheckSampleTypes = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestCheckHostLabel(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"host", nil},
		{"_zone2", nil},
		{"", ErrLabelName},
		{"2x", ErrLabelName},
		{"a-b", ErrLabelName},
		{"a.b", ErrLabelName},
		{"comm", ErrReservedLabel},
		{"pid", ErrReservedLabel},
		{"tid", ErrReservedLabel},
		{"exe", ErrReservedLabel},
		{"cgroup", ErrReservedLabel},
		{"container", ErrReservedLabel},
	} {
		if err := CheckHostLabel(tc.name); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("CheckHostLabel(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, name := range StoredStringLabels {
		if !Reserved(name) {
			t.Errorf("stored label %q is not reserved: a host label could hide it", name)
		}
	}
}

// Profiles with different sample types merge into one with every type in
// the schema's order; the profiles given stay as they were.
func TestMergeWidensSampleTypes(t *testing.T) {
	fn := &profile.Function{ID: 1, Name: "f"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	part := func(types []*profile.ValueType, values ...int64) *profile.Profile {
		return &profile.Profile{
			SampleType: types, PeriodType: PeriodType.ValueType(), Period: 10,
			Sample:   []*profile.Sample{{Location: []*profile.Location{loc}, Value: values}},
			Location: []*profile.Location{loc}, Function: []*profile.Function{fn},
		}
	}
	cpuOnly := part(CPUSampleTypes(), 2, 20)
	withWall := part(ValueTypes(Samples, Wall, CPU), 1, 50, 10) // out of the usual order
	merged, err := Merge([]*profile.Profile{cpuOnly, withWall})
	if err != nil {
		t.Fatal(err)
	}
	if got := typeList(merged.SampleType); got != "samples/count, cpu/nanoseconds, wall/nanoseconds" {
		t.Fatalf("merged sample types %s", got)
	}
	if len(merged.Sample) != 1 || fmt.Sprint(merged.Sample[0].Value) != "[3 30 50]" {
		t.Errorf("merged values %v, want [3 30 50]", merged.Sample[0].Value)
	}
	if len(cpuOnly.SampleType) != 2 || fmt.Sprint(withWall.Sample[0].Value) != "[1 50 10]" {
		t.Error("Merge changed a profile it was given")
	}
	if err := Widen(withWall.Copy(), CPUSampleTypes()); err == nil {
		t.Error("widening to fewer types than a profile has: no error")
	}
}
