package query

// Stacks is what a flame graph of a range needs, as the store gives it
// without building a pprof profile: frames interned once, each sample a
// root-first run of frame IDs, summed per stack (and per group). report
// turns it into a flame graph.
type Stacks struct {
	SampleTypes       []ValueType
	DefaultSampleType string
	Frames            []Frame
	// Paths holds every sample's frame IDs root first, back to back, and
	// Lines each frame's source line beside it (0: unknown).
	Paths, Lines []int32
	// GroupSlots says that each sample's Paths[Start-1] is free, for the
	// frame of its group: the flame graph's paths are then these ones.
	GroupSlots bool
	Samples    []StackSample
	// Values holds len(SampleTypes) values per sample, in sample order.
	Values []int64
	// Groups are the values of the grouping label that samples refer to.
	Groups []string
	// Details are the value sums of each label set (when grouped), for the
	// hover of its group: what its samples add up to, without their stacks.
	Details []GroupDetail
}

// ValueType is a sample type: what is counted, in which unit.
type ValueType struct{ Type, Unit string }

// Frame is one function in a call path: its name, source file and the
// binary it is in.
type Frame struct{ Name, File, Binary string }

// StackSample is one sample of Stacks: frames Paths[Start:End] and the
// index of its group in Groups, -1 when it has no value of the label.
type StackSample struct {
	Start, End int32
	Group      int32
}

// GroupDetailLabels are the labels whose values a group's hover lists
// (those of the grouping label itself aside).
var GroupDetailLabels = []string{"comm", "pid", "exe", "container"}

// GroupDetail is what one label set adds to its group's hover: its group
// (-1: none), its values of GroupDetailLabels ("" for none) and its values,
// one per sample type.
type GroupDetail struct {
	Group  int32
	Labels []string
	Values []int64
}
