package schema

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// A SampleType is one value a sample carries: pprof's (type, unit) pair.
type SampleType struct {
	Type, Unit string
}

// The sample types Ember knows. A CPU profile carries Samples and CPU,
// an off-CPU one OffCPU and Waits besides; wall time is declared so that a
// later collector fits the store without a new format.
var (
	// Samples is how many times a stack was seen.
	Samples = SampleType{Type: "samples", Unit: "count"}
	// CPU is the CPU time a stack spent: its samples times the period.
	CPU = SampleType{Type: "cpu", Unit: "nanoseconds"}
	// OffCPU is time a stack spent off the CPU: blocked, asleep or
	// waiting for a CPU (`go tool pprof -sample_index=offcpu`).
	OffCPU = SampleType{Type: "offcpu", Unit: "nanoseconds"}
	// Wall is wall-clock time, on or off the CPU.
	Wall = SampleType{Type: "wall", Unit: "nanoseconds"}
	// Waits is how many times a stack left the CPU.
	Waits = SampleType{Type: "waits", Unit: "count"}
)

// Positions in Known.
const (
	SamplesIndex = iota
	CPUIndex
	OffCPUIndex
	WallIndex
	WaitsIndex
)

// Known lists the sample types a stored profile may carry, in the order
// the store keeps their values. The store records a type by its position
// here, so the list only grows at its end. It is an array so that its
// length is a constant.
var Known = [...]SampleType{SamplesIndex: Samples, CPUIndex: CPU, OffCPUIndex: OffCPU, WallIndex: Wall, WaitsIndex: Waits}

// OffCPUSampleTypes are the values of a sample of time off the CPU, after
// the CPU pair.
var OffCPUSampleTypes = []SampleType{OffCPU, Waits}

// Index returns t's position in Known, or -1 if it is not known.
func Index(t SampleType) int {
	for i, k := range Known {
		if k == t {
			return i
		}
	}
	return -1
}

// CheckSampleTypes checks a profile's sample types: at least one, each
// known, none twice.
func CheckSampleTypes(vts []*profile.ValueType) error {
	if len(vts) == 0 {
		return errors.New("profile has no sample types")
	}
	var seen [len(Known)]bool
	for _, vt := range vts {
		i := Index(Of(vt))
		if i < 0 {
			return fmt.Errorf("sample type %s is not one Ember knows (%s)", Of(vt), knownList())
		}
		if seen[i] {
			return fmt.Errorf("sample type %s given twice", Of(vt))
		}
		seen[i] = true
	}
	return nil
}

func knownList() string {
	names := make([]string, len(Known))
	for i, k := range Known {
		names[i] = k.String()
	}
	return strings.Join(names, ", ")
}

// PeriodType is what a profile's period counts: CPU time between samples.
var PeriodType = CPU

// Of returns a pprof value type's sample type.
func Of(vt *profile.ValueType) SampleType {
	if vt == nil {
		return SampleType{}
	}
	return SampleType{Type: vt.Type, Unit: vt.Unit}
}

// ValueType returns t as a new pprof value type.
func (t SampleType) ValueType() *profile.ValueType {
	return &profile.ValueType{Type: t.Type, Unit: t.Unit}
}

func (t SampleType) String() string { return t.Type + "/" + t.Unit }

// ValueTypes returns the pprof value types of ts, newly allocated.
func ValueTypes(ts ...SampleType) []*profile.ValueType {
	out := make([]*profile.ValueType, len(ts))
	for i, t := range ts {
		out[i] = t.ValueType()
	}
	return out
}

// CPUSampleTypes returns the sample types of a CPU profile, as the
// symbolizer writes them and a query of CPU samples returns them.
func CPUSampleTypes() []*profile.ValueType { return ValueTypes(Samples, CPU) }

// Union returns the sample types of a and b, each once: the known ones in
// the schema's order (Known), others after them as first seen. Profiles
// of one interval are widened to it before they are merged.
func Union(a, b []*profile.ValueType) []*profile.ValueType {
	var known [len(Known)]bool
	var out, other []*profile.ValueType
	for _, vt := range slices.Concat(a, b) {
		if i := Index(Of(vt)); i >= 0 {
			known[i] = true
		} else if !slices.ContainsFunc(other, func(o *profile.ValueType) bool { return Of(o) == Of(vt) }) {
			other = append(other, vt)
		}
	}
	for i, seen := range known {
		if seen {
			out = append(out, Known[i].ValueType())
		}
	}
	for _, vt := range other {
		out = append(out, &profile.ValueType{Type: vt.Type, Unit: vt.Unit})
	}
	return out
}

// SameSampleTypes reports whether a and b list the same types in the same order.
func SameSampleTypes(a, b []*profile.ValueType) bool {
	return slices.EqualFunc(a, b, func(x, y *profile.ValueType) bool { return Of(x) == Of(y) })
}

// Widen gives p the sample types to, which must hold all of p's: each
// sample's values move to their type's place, the types p lacked are zero.
func Widen(p *profile.Profile, to []*profile.ValueType) error {
	if SameSampleTypes(p.SampleType, to) {
		return nil
	}
	place := make([]int, len(p.SampleType))
	for i, vt := range p.SampleType {
		place[i] = slices.IndexFunc(to, func(t *profile.ValueType) bool { return Of(t) == Of(vt) })
		if place[i] < 0 {
			return fmt.Errorf("sample type %s missing from %s", Of(vt), typeList(to))
		}
	}
	for _, s := range p.Sample {
		values := make([]int64, len(to))
		for j, v := range s.Value[:min(len(s.Value), len(place))] {
			values[place[j]] = v
		}
		s.Value = values
	}
	p.SampleType = make([]*profile.ValueType, len(to))
	for i, vt := range to {
		p.SampleType[i] = &profile.ValueType{Type: vt.Type, Unit: vt.Unit}
	}
	return nil
}

func typeList(vts []*profile.ValueType) string {
	names := make([]string, len(vts))
	for i, vt := range vts {
		names[i] = Of(vt).String()
	}
	return strings.Join(names, ", ")
}

// Merge merges profiles as pprof's Merge does, after widening those with
// fewer sample types to the union of all (a drain from before a source began
// measuring time off the CPU beside one from after). The profiles given are
// not changed: those widened are copied first.
func Merge(parts []*profile.Profile) (*profile.Profile, error) {
	if len(parts) == 0 {
		return profile.Merge(parts)
	}
	to := parts[0].SampleType
	for _, p := range parts[1:] {
		if !SameSampleTypes(p.SampleType, to) {
			to = Union(to, p.SampleType)
		}
	}
	widened := parts
	for i, p := range parts {
		if SameSampleTypes(p.SampleType, to) {
			continue
		}
		if &widened[0] == &parts[0] {
			widened = slices.Clone(parts)
		}
		c := p.Copy()
		if err := Widen(c, to); err != nil {
			return nil, err
		}
		widened[i] = c
	}
	return profile.Merge(widened)
}
