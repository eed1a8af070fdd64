package report

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// MinNodes is the smallest node budget: the root and one "(other)" child.
const MinNodes = 2

// OtherName is the name of the synthetic node that stands, under a parent,
// for every child pruned from it.
const OtherName = "(other)"

// topFunctions bounds a FlameGraph's function table: the functions largest
// by self and those largest by total, this many each. A UI shows a few
// hundred rows; the rest are smaller than every row shown.
const topFunctions = 1000

// FlameGraph is a profile's merged call tree, root first, as parallel
// arrays over a string table, and a table of functions computed before
// pruning. Its JSON is the body of the web API's /api/v1/flamegraph.
//
// Node i has parent Nodes.Parent[i] (-1 for the root, node 0), function name
// Strings[Nodes.Name[i]], source file Strings[Nodes.File[i]] and binary
// Strings[Nodes.Binary[i]] ("" when unknown), source line Nodes.Line[i] (the
// line of the function that most of the node's value passed through: where
// it spent its own time or made its heaviest calls; 0 when unknown), and
// values Nodes.Self[i] (samples whose innermost frame is this node) and
// Nodes.Total[i] (self plus all descendants). Nodes are in depth-first
// pre-order: a node's children follow it, each child's subtree before the
// next child; siblings come by total, largest first, and a parent always
// precedes its children, so Parent[i] < i. For every node,
// Total = Self + the sum of its children's Total.
//
// Pruning keeps within MaxNodes the nodes that show the most value per
// node (see callTree.selfDensity), then the largest. Every parent
// that lost children gets one last child named "(other)", with file and
// binary "" and line 0, whose Self and Total are the sum of what was pruned
// there; so totals still add up. Pruned.Nodes counts the call-tree nodes
// left out and Pruned.Value the value they held (the sum over "(other)"
// nodes).
//
// Functions is exact whatever the budget: self and total per function name
// over the whole profile (see FlameFunctions).
type FlameGraph struct {
	SampleType string         `json:"sample_type"` // e.g. "cpu"
	Unit       string         `json:"unit"`        // e.g. "nanoseconds"
	Total      int64          `json:"total"`       // the root's total: all samples' value
	Samples    int            `json:"samples"`     // samples merged: distinct (stack, label set) of a profile, (stack, group) of the store's stacks
	MaxNodes   int            `json:"max_nodes"`   // the node budget applied
	Pruned     Pruned         `json:"pruned"`
	Strings    []string       `json:"strings"` // Strings[0] is ""
	Nodes      FlameNodes     `json:"nodes"`
	Functions  FlameFunctions `json:"functions"`
	// GroupBy is the label whose values are the first level under the
	// root ("" when not grouped); Groups describe those values.
	GroupBy string       `json:"group_by,omitempty"`
	Groups  []FlameGroup `json:"groups,omitempty"`
}

// Pruned accounts for what a node budget left out of a FlameGraph.
type Pruned struct {
	Nodes int   `json:"nodes"`
	Value int64 `json:"value"`
}

// FlameNodes are a FlameGraph's nodes as parallel arrays (see FlameGraph).
type FlameNodes struct {
	Parent []int32 `json:"parent"`
	Name   []int32 `json:"name"`
	File   []int32 `json:"file"`
	Line   []int32 `json:"line"`
	Binary []int32 `json:"binary"`
	Self   []int64 `json:"self"`
	Total  []int64 `json:"total"`
}

// FlameFunctions is the top table of a FlameGraph, as parallel arrays:
// function Strings[Name[i]] has Self[i] (samples whose innermost frame it
// is) and Total[i] (samples it appears in at all, once however deep the
// recursion), summed by function over every sample, before pruning. A
// function is a name in a binary (Strings[Binary[i]]): main of two programs
// is two rows. Rows come
// by self, largest first, then by name. Count is the number of distinct
// functions in the profile; when it is larger than the table, the table
// holds the topFunctions largest by self and the topFunctions largest by
// total.
type FlameFunctions struct {
	Count  int     `json:"count"`
	Name   []int32 `json:"name"`
	Binary []int32 `json:"binary"`
	Self   []int64 `json:"self"`
	Total  []int64 `json:"total"`
}

// stringTable interns a FlameGraph's strings.
type stringTable struct {
	strings []string
	index   map[string]int32
}

func newStringTable() *stringTable {
	return &stringTable{strings: []string{""}, index: map[string]int32{"": 0}}
}

func (st *stringTable) intern(s string) int32 {
	i, ok := st.index[s]
	if !ok {
		i = int32(len(st.strings))
		st.index[s] = i
		st.strings = append(st.strings, s)
	}
	return i
}

// flameGraph emits the kept nodes in pre-order, with an "(other)" child
// after the kept children of every node that lost some, and the function
// table. keptCount is the number of kept nodes.
func (t *callTree) flameGraph(kept []int32, keptCount int) *FlameGraph {
	fg := &FlameGraph{}
	strs := newStringTable()
	nodes := &fg.Nodes
	size := keptCount + keptCount/8
	nodes.Parent = make([]int32, 0, size)
	nodes.Name = make([]int32, 0, size)
	nodes.File = make([]int32, 0, size)
	nodes.Binary = make([]int32, 0, size)
	nodes.Self = make([]int64, 0, size)
	nodes.Total = make([]int64, 0, size)
	outOf := make([]int32, len(t.frameOf)) // output index of each tree node, -1 if not shown
	for i := range outOf {
		outOf[i] = -1
	}
	// Each frame's strings, interned when first emitted (in the order
	// they were before): a frame recurs in many nodes, and three map
	// lookups per node were a tenth of this function. The last is "(other)"'s.
	otherID := int32(len(t.frames))
	frameStrs := make([][3]int32, len(t.frames)+1)
	interned := make([]bool, len(frameStrs))
	emit := func(parent, id int32, self, total int64) int32 {
		if !interned[id] {
			f := frame{name: OtherName}
			if id != otherID {
				f = t.frames[id]
			}
			frameStrs[id] = [3]int32{strs.intern(f.name), strs.intern(f.file), strs.intern(f.binary)}
			interned[id] = true
		}
		fs := frameStrs[id]
		i := int32(len(nodes.Parent))
		nodes.Parent = append(nodes.Parent, parent)
		nodes.Name = append(nodes.Name, fs[0])
		nodes.File = append(nodes.File, fs[1])
		nodes.Binary = append(nodes.Binary, fs[2])
		nodes.Self = append(nodes.Self, self)
		nodes.Total = append(nodes.Total, total)
		return i
	}
	// A stack entry is a tree node to emit under out parent, or (node -1)
	// an "(other)" node of value other.
	type entry struct {
		node   int32
		parent int32
		other  int64
	}
	stack := []entry{{node: 0, parent: -1}}
	var keptChildren []int32
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e.node < 0 {
			emit(e.parent, otherID, e.other, e.other)
			continue
		}
		out := emit(e.parent, t.frameOf[e.node], t.selfValue(e.node), t.total[e.node])
		outOf[e.node] = out
		var other int64
		keptChildren = keptChildren[:0]
		for c := e.node + 1; c < t.end[e.node]; c = t.end[c] {
			if kept[c] >= 0 {
				keptChildren = append(keptChildren, c)
			} else {
				other += t.total[c]
			}
		}
		if other > 0 {
			fg.Pruned.Value += other
			stack = append(stack, entry{node: -1, parent: out, other: other})
		}
		sortNodes(t, keptChildren)
		for i := len(keptChildren) - 1; i >= 0; i-- {
			stack = append(stack, entry{node: keptChildren[i], parent: out})
		}
	}
	// Every node not kept is under a kept one's pruned child: left out.
	fg.Pruned.Nodes = len(t.frameOf) - keptCount
	if t.hotLine != nil {
		nodes.Line = make([]int32, len(nodes.Parent))
		for n, out := range outOf {
			if out >= 0 {
				nodes.Line[out] = t.hotLine[n]
			}
		}
	} else {
		nodes.Line = t.hottestLines(outOf, len(nodes.Parent))
	}
	fg.Functions = t.functionTable(strs)
	fg.Strings = strs.strings
	fg.Total = t.total[0]
	fg.Samples = t.samples
	return fg
}

// selfValue is node n's own value: its total less its children's.
func (t *callTree) selfValue(n int32) int64 {
	v := t.total[n]
	for c := n + 1; c < t.end[n]; c = t.end[c] {
		v -= t.total[c]
	}
	return v
}

// prunedValue is the value a keep choice leaves out: the totals of the
// children not kept of every kept node.
func (t *callTree) prunedValue(kept []int32) int64 {
	var v int64
	for n := int32(1); n < int32(len(kept)); n++ {
		if kept[n] < 0 && kept[t.parent[n]] >= 0 {
			v += t.total[n]
		}
	}
	return v
}

// hottestLines finds, for each shown node, the source line of its function
// that most of the node's value passed through: the sum, per line, of the
// stacks through the node that had that line in the node's frame. It walks
// the sorted stacks again as buildCallTree did, which numbers the nodes
// alike, and sums runs of equal lines (consecutive stacks mostly share
// them) before it looks a line up in a map. outOf maps tree nodes to the
// n output nodes (-1 for those not shown).
func (t *callTree) hottestLines(outOf []int32, n int) []int32 {
	type lineValue struct {
		line  int32
		value int64
	}
	run := make([]lineValue, n)   // the run of one line being summed, per output node
	first := make([]lineValue, n) // the sum of the first line seen
	more := map[[2]int32]int64{}  // sums of other lines, by output node and line
	flush := func(k int32) {
		r := run[k]
		switch {
		case first[k].value == 0 || r.line == first[k].line:
			first[k].line = r.line
			first[k].value += r.value
		default:
			more[[2]int32{k, r.line}] += r.value
		}
	}
	var prev []int32
	open := []int32{0}
	next := int32(1)
	for _, st := range t.stacks {
		path := t.arena[st.start:st.end]
		common := commonPrefix(path, prev)
		open = open[:common+1]
		for range path[common:] {
			open = append(open, next)
			next++
		}
		prev = path
		for d := range path {
			k := outOf[open[d+1]]
			if k < 0 {
				break // nor any node below it
			}
			line := t.lines[int(st.start)+d]
			if run[k].value > 0 && run[k].line != line {
				flush(k)
				run[k].value = 0
			}
			run[k].line = line
			run[k].value += st.value
		}
	}
	lines := make([]int32, n)
	for k := range run {
		if run[k].value > 0 {
			flush(int32(k))
		}
		lines[k] = first[k].line
	}
	for key, v := range more {
		k, line := key[0], key[1]
		if v > first[k].value || v == first[k].value && line < first[k].line {
			first[k] = lineValue{line, v}
			lines[k] = line
		}
	}
	return lines
}

// functionTable sums self and total per function (name and binary) over
// the whole tree, a function's total counting only its outermost frames on
// each path, and keeps the largest (see FlameFunctions). Group frames are
// not functions.
func (t *callTree) functionTable(strs *stringTable) FlameFunctions {
	self := make([]int64, len(t.functions))
	total := make([]int64, len(t.functions))
	onStack := make([]int32, len(t.functions)) // frames of each function on the path to the current node
	var path []int32                           // the current node's ancestors and itself
	for n := int32(1); n < int32(len(t.frameOf)); n++ {
		p := t.parent[n]
		for len(path) > 0 && path[len(path)-1] != p {
			if id := t.frameFunc[t.frameOf[path[len(path)-1]]]; id >= 0 {
				onStack[id]--
			}
			path = path[:len(path)-1]
		}
		path = append(path, n)
		id := t.frameFunc[t.frameOf[n]]
		if id < 0 {
			continue
		}
		self[id] += t.total[n]
		if p > 0 {
			if pid := t.frameFunc[t.frameOf[p]]; pid >= 0 {
				self[pid] -= t.total[n] // a parent's self is its total less its children's
			}
		}
		if onStack[id] == 0 {
			total[id] += t.total[n]
		}
		onStack[id]++
	}
	var ids []int32
	for id := range t.functions {
		if total[id] > 0 {
			ids = append(ids, int32(id))
		}
	}
	// Ties are broken by name: rank the names once, so that the sorts
	// below compare numbers (a day has tens of thousands of functions,
	// most of them tied at a sample or two).
	slices.SortFunc(ids, func(a, b int32) int {
		fa, fb := &t.functions[a], &t.functions[b]
		if c := strings.Compare(fa.name, fb.name); c != 0 {
			return c
		}
		return strings.Compare(fa.binary, fb.binary)
	})
	rank := make([]int32, len(t.functions))
	for i, id := range ids {
		rank[id] = int32(i)
	}
	byName := func(a, b int32) int { return cmp.Compare(rank[a], rank[b]) }
	bySelf := func(a, b int32) int { return cmp.Or(cmp.Compare(self[b], self[a]), byName(a, b)) }
	fns := FlameFunctions{Count: len(ids)}
	if len(ids) > topFunctions {
		slices.SortFunc(ids, func(a, b int32) int { return cmp.Or(cmp.Compare(total[b], total[a]), byName(a, b)) })
		chosen := make([]bool, len(t.functions))
		for _, id := range ids[:topFunctions] {
			chosen[id] = true
		}
		slices.SortFunc(ids, bySelf)
		for _, id := range ids[:topFunctions] {
			chosen[id] = true
		}
		ids = slices.DeleteFunc(ids, func(id int32) bool { return !chosen[id] })
	} else {
		slices.SortFunc(ids, bySelf)
	}
	for _, id := range ids {
		fns.Name = append(fns.Name, strs.intern(t.functions[id].name))
		fns.Binary = append(fns.Binary, strs.intern(t.functions[id].binary))
		fns.Self = append(fns.Self, self[id])
		fns.Total = append(fns.Total, total[id])
	}
	return fns
}

// flameGraphWithin is the flame graph of t within o's node budget, grown
// as o allows, up to o.NodeCap, to the nodes it takes for "(other)" to
// hold at most its share (all of the cap when even that is not enough).
func (t *callTree) flameGraphWithin(o FlameOptions) *FlameGraph {
	maxNodes := max(o.MaxNodes, MinNodes)
	kept, count, _ := t.keep(maxNodes, -1, nil)
	enough := int64(o.MaxOtherShare * float64(t.total[0]))
	if o.MaxOtherShare > 0 && maxNodes < o.NodeCap && t.prunedValue(kept) > enough {
		// One choice up to the cap, stopped when enough is shown: the
		// same order as a smaller budget's, without trying budgets in
		// turn (each try was a fifth of a flat hour's flame graph).
		kept, count, maxNodes = t.keep(o.NodeCap, enough, kept)
	}
	fg := t.flameGraph(kept, count)
	fg.MaxNodes = maxNodes
	return fg
}

// NewFlameGraph is the flame graph of p for sampleType ("" for the
// profile's default) within a budget of maxNodes nodes (at least MinNodes).
// A nil p is an empty profile. It reads p without changing it, and stops
// with ctx's error when ctx ends.
func NewFlameGraph(ctx context.Context, p *profile.Profile, sampleType string, maxNodes int) (*FlameGraph, error) {
	return NewFlameGraphWith(ctx, p, FlameOptions{SampleType: sampleType, MaxNodes: maxNodes})
}

// NewFlameGraphWith is NewFlameGraph with every option.
func NewFlameGraphWith(ctx context.Context, p *profile.Profile, o FlameOptions) (*FlameGraph, error) {
	p = orEmpty(p)
	vi, err := sampleIndex(p, o.SampleType)
	if err != nil {
		return nil, err
	}
	t, err := buildCallTree(ctx, p, vi, o.GroupBy)
	if err != nil {
		return nil, err
	}
	fg := t.flameGraphWithin(o)
	fg.SampleType, fg.Unit = p.SampleType[vi].Type, p.SampleType[vi].Unit
	if o.GroupBy != "" {
		fg.GroupBy = o.GroupBy
		fg.Groups = groups(p, vi, o.GroupBy)
	}
	return fg, nil
}
