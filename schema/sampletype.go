package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/pprof/profile"
)

// A SampleType is one value a sample carries: pprof's (type, unit) pair.
type SampleType struct {
	Type, Unit string
}

// The sample types Ember knows. A CPU profile carries Samples and CPU;
// off-CPU and wall time are declared so that a later collector fits the
// store without a new format.
var (
	// Samples is how many times a stack was seen.
	Samples = SampleType{Type: "samples", Unit: "count"}
	// CPU is the CPU time a stack spent: its samples times the period.
	CPU = SampleType{Type: "cpu", Unit: "nanoseconds"}
	// OffCPU is time a stack spent blocked, off the CPU.
	OffCPU = SampleType{Type: "off_cpu", Unit: "nanoseconds"}
	// Wall is wall-clock time, on or off the CPU.
	Wall = SampleType{Type: "wall", Unit: "nanoseconds"}
)

// Positions in Known.
const (
	SamplesIndex = iota
	CPUIndex
	OffCPUIndex
	WallIndex
)

// Known lists the sample types a stored profile may carry, in the order
// the store keeps their values. The store records a type by its position
// here, so the list only grows at its end. It is an array so that its
// length is a constant.
var Known = [...]SampleType{SamplesIndex: Samples, CPUIndex: CPU, OffCPUIndex: OffCPU, WallIndex: Wall}

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
