package query

import "time"

// Stacks is what a flame graph of a range needs, as the store gives it
// without building a pprof profile: frames interned once, each sample a
// root-first run of frame IDs, summed per stack (and per group). report
// turns it into a flame graph.
type Stacks struct {
	SampleTypes       []ValueType
	DefaultSampleType string
	Frames            []Frame
	// Paths holds the frame IDs of samples not in Trie, root first, back
	// to back (samples of one stack may share theirs), and Lines each
	// frame's source line beside it (0: unknown).
	Paths, Lines []int32
	// CoveredFrom, when set, says the answer is partial: the reading
	// stopped at the query's ReadBy or MaxStacks, and only
	// [CoveredFrom, To) was read. StoppedBy says which: "time" or "stacks".
	CoveredFrom time.Time
	StoppedBy   string
	// Trie, when set, holds paths that samples end in by node (Leaf)
	// instead of listing their frames: node 0 is the empty path, every
	// node's parent comes before it, and TrieFrames are the frames its
	// nodes name, each distinct. It is read only: the store's cache of
	// named stacks shares it.
	Trie       []TrieNode
	TrieFrames []Frame
	Samples    []StackSample
	// Values holds len(SampleTypes) values per sample, in sample order.
	Values []int64
	// Groups are the values of the grouping label that samples refer to.
	Groups []string
	// Details are the sums behind each group's hover (when grouped): the
	// group's total and its values of GroupDetailLabels, without stacks.
	Details []GroupDetail
}

// ValueType is a sample type: what is counted, in which unit.
type ValueType struct{ Type, Unit string }

// Frame is one function in a call path: its name, source file and the
// binary it is in.
type Frame struct{ Name, File, Binary string }

// StackSample is one sample of Stacks: frames Paths[Start:End], or, when
// Leaf > 0, the path to Trie node Leaf; and the index of its group in
// Groups, -1 when it has no value of the label.
type StackSample struct {
	Start, End int32
	Group      int32
	Leaf       int32
}

// TrieNode is a step of a path: frame TrieFrames[Frame] at source line
// Line (0: unknown), called from node Parent (-1 for the root).
type TrieNode struct {
	Parent, Frame, Line int32
}

// GroupDetailLabels are the labels whose values a group's hover lists
// (those of the grouping label itself aside).
var GroupDetailLabels = []string{"comm", "pid", "exe", "container"}

// GroupDetailValues is how many values of each detail label a group's
// hover lists, the largest first (by sum, then by value).
const GroupDetailValues = 5

// GroupDetail is a row of a group's hover: the sum of the samples of group
// Group (-1: none) whose label GroupDetailLabels[Label] is Value, or, with
// Label -1, of all its samples; one value per sample type. A (group,
// label) with more than GroupDetailValues values has rows only for the
// largest GroupDetailValues of each sample type, and a Count row: its
// Values are, per sample type, how many values had a sum above 0.
type GroupDetail struct {
	Group, Label int32
	Value        string
	Values       []int64
	Count        bool
}
