package schema

import (
	"errors"
	"testing"

	"github.com/google/pprof/profile"
)

func TestKnownOrderIsStable(t *testing.T) {
	// The store records types by these positions: moving one would make
	// stored values change meaning.
	want := []SampleType{{"samples", "count"}, {"cpu", "nanoseconds"}, {"off_cpu", "nanoseconds"}, {"wall", "nanoseconds"}}
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
