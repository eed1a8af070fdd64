package web

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// minNodes is the smallest node budget: the root and one "(other)" child.
const minNodes = 2

// otherName is the name of the synthetic node that stands, under a parent,
// for every child pruned from it.
const otherName = "(other)"

// topFunctions bounds a FlameGraph's function table: the functions largest
// by self and those largest by total, this many each. A UI shows a few
// hundred rows; the rest are smaller than every row shown.
const topFunctions = 1000

// FlameGraph is the JSON of /api/v1/flamegraph: the merged call tree,
// root first, as parallel arrays over a string table, and a table of
// functions computed before pruning.
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
// Pruning keeps the largest nodes (by Total) within MaxNodes. Every parent
// that lost children gets one last child named "(other)", with file and
// binary "" and line 0, whose Self and Total are the sum of what was pruned
// there; so totals still add up. Pruned.Nodes counts the call-tree nodes
// left out and Pruned.Value the value they held (the sum over "(other)"
// nodes).
//
// Functions is exact whatever the budget: self and total per function name
// over the whole profile (see FlameFunctions).
type FlameGraph struct {
	From       time.Time      `json:"from"`
	To         time.Time      `json:"to"`
	SampleType string         `json:"sample_type"` // e.g. "cpu"
	Unit       string         `json:"unit"`        // e.g. "nanoseconds"
	Total      int64          `json:"total"`       // the root's total: all samples' value
	Samples    int            `json:"samples"`     // pprof samples (distinct stacks and labels) merged
	MaxNodes   int            `json:"max_nodes"`   // the node budget applied
	Pruned     Pruned         `json:"pruned"`
	Strings    []string       `json:"strings"` // Strings[0] is ""
	Nodes      FlameNodes     `json:"nodes"`
	Functions  FlameFunctions `json:"functions"`
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
// recursion), summed by name over every sample, before pruning. Rows come
// by self, largest first, then by name. Count is the number of distinct
// functions in the profile; when it is larger than the table, the table
// holds the topFunctions largest by self and the topFunctions largest by
// total.
type FlameFunctions struct {
	Count int     `json:"count"`
	Name  []int32 `json:"name"`
	Self  []int64 `json:"self"`
	Total []int64 `json:"total"`
}

// frame is one function in a call path; tree nodes with the same parent and
// frame are one node.
type frame struct {
	name, file, binary string
}

// callTree is the unpruned merged call tree, node 0 the root. Nodes are
// numbered in pre-order, parents before children.
type callTree struct {
	frames    []frame  // by frame ID, interned: the root's is 0
	frameName []int32  // function-name ID of each frame
	names     []string // by function-name ID
	frameOf   []int32  // by node
	parent    []int32
	self      []int64
	total     []int64
	// end[i] is the end of node i's subtree, which is [i, end[i]): its
	// first child is i+1 (if end[i] > i+1) and a child c's next sibling is
	// end[c].
	end []int32
	// The sorted stacks the tree was built from, and each frame's source
	// line beside its frame ID in arena, for hottestLines.
	arena, lines []int32
	stacks       []stack
}

// stack is one sample's root-first path: frame IDs arena[start:end].
type stack struct {
	start, end int32
	value      int64
}

// buildCallTree merges the samples of p, taking value index vi, into a tree
// rooted at node 0. pprof lists locations leaf first and a location's lines
// (inlined calls) innermost first, so both are walked backwards.
//
// Rather than look every frame up in a map of children (a cache miss per
// frame once the tree is large), it sorts the samples' root-first paths
// and builds the tree in one pass, each path sharing the nodes of the
// common prefix with the one before. Nodes come out in pre-order, parents
// before children, so totals are summed bottom-up in a second pass.
func buildCallTree(ctx context.Context, p *profile.Profile, vi int) (*callTree, error) {
	t := &callTree{frames: []frame{{name: "root"}}, frameName: []int32{0}, names: []string{"root"},
		frameOf: []int32{0}, parent: []int32{-1}, self: []int64{0}}
	frameIDs := map[frame]int32{t.frames[0]: 0}
	nameIDs := map[string]int32{}
	frameID := func(f frame) int32 {
		id, ok := frameIDs[f]
		if !ok {
			id = int32(len(t.frames))
			frameIDs[f] = id
			t.frames = append(t.frames, f)
			nameID, ok := nameIDs[f.name]
			if !ok {
				nameID = int32(len(t.names))
				nameIDs[f.name] = nameID
				t.names = append(t.names, f.name)
			}
			t.frameName = append(t.frameName, nameID)
		}
		return id
	}
	// Frames by function and mapping first: hashing two pointers is much
	// cheaper than hashing a frame's three strings.
	type functionKey struct {
		function *profile.Function
		mapping  *profile.Mapping
	}
	frameOfFunction := map[functionKey]int32{}
	// Each location's root-first frame IDs and lines, as a range of
	// locFrames and locLines, found by location ID: IDs are dense from 1 in
	// the profiles pprof and the store make, so a slice serves; a map takes
	// any other.
	type span struct{ start, end int32 }
	spanByID := make([]span, len(p.Location)+1)
	var spanOf map[*profile.Location]span
	var locFrames, locLines []int32
	path := func(loc *profile.Location) span {
		dense := loc.ID > 0 && loc.ID < uint64(len(spanByID))
		if dense && spanByID[loc.ID].end > 0 {
			return spanByID[loc.ID]
		}
		if sp, ok := spanOf[loc]; ok {
			return sp
		}
		start := int32(len(locFrames))
		if len(loc.Line) == 0 {
			locFrames = append(locFrames, frameID(locationFrames(loc)[0]))
			locLines = append(locLines, 0)
		}
		for i := len(loc.Line) - 1; i >= 0; i-- {
			key := functionKey{loc.Line[i].Function, loc.Mapping}
			id, ok := frameOfFunction[key]
			if !ok {
				id = frameID(lineFrame(loc, i))
				frameOfFunction[key] = id
			}
			locFrames = append(locFrames, id)
			locLines = append(locLines, int32(min(max(loc.Line[i].Line, 0), 1<<31-1)))
		}
		sp := span{start, int32(len(locFrames))}
		if dense {
			spanByID[loc.ID] = sp
		} else {
			if spanOf == nil {
				spanOf = make(map[*profile.Location]span)
			}
			spanOf[loc] = sp
		}
		return sp
	}
	frames := 0
	for _, s := range p.Sample {
		frames += len(s.Location)
	}
	// Every sample's root-first path, back to back (inlined frames add some).
	t.arena = make([]int32, 0, frames+frames/8)
	t.lines = make([]int32, 0, cap(t.arena))
	t.stacks = make([]stack, 0, len(p.Sample))
	for si, s := range p.Sample {
		if si%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if vi >= len(s.Value) || s.Value[vi] <= 0 {
			continue
		}
		start := int32(len(t.arena))
		for li := len(s.Location) - 1; li >= 0; li-- {
			loc := s.Location[li]
			var sp span
			if loc.ID > 0 && loc.ID < uint64(len(spanByID)) && spanByID[loc.ID].end > 0 {
				sp = spanByID[loc.ID] // seen before: path's first step, inlined
			} else {
				sp = path(loc)
			}
			if sp.end-sp.start == 1 { // the usual case, without inlined calls
				t.arena = append(t.arena, locFrames[sp.start])
				t.lines = append(t.lines, locLines[sp.start])
				continue
			}
			t.arena = append(t.arena, locFrames[sp.start:sp.end]...)
			t.lines = append(t.lines, locLines[sp.start:sp.end]...)
		}
		t.stacks = append(t.stacks, stack{start, int32(len(t.arena)), s.Value[vi]})
	}
	arena := t.arena
	slices.SortFunc(t.stacks, func(a, b stack) int {
		return slices.Compare(arena[a.start:a.end], arena[b.start:b.end])
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Count the nodes first (each path adds those past its common prefix
	// with the one before), so the node arrays are allocated once, exactly.
	maxNodes := 1
	var prev []int32
	for _, st := range t.stacks {
		path := arena[st.start:st.end]
		maxNodes += len(path) - commonPrefix(path, prev)
		prev = path
	}
	t.frameOf = slices.Grow(t.frameOf, maxNodes)
	t.parent = slices.Grow(t.parent, maxNodes)
	t.self = slices.Grow(t.self, maxNodes)
	prev = nil
	open := []int32{0} // open[d] is the node at depth d of the previous path
	for _, st := range t.stacks {
		path := arena[st.start:st.end]
		common := commonPrefix(path, prev)
		open = open[:common+1]
		for _, id := range path[common:] {
			child := int32(len(t.frameOf))
			t.frameOf = append(t.frameOf, id)
			t.parent = append(t.parent, open[len(open)-1])
			t.self = append(t.self, 0)
			open = append(open, child)
		}
		t.self[open[len(open)-1]] += st.value
		prev = path
	}
	t.total = slices.Clone(t.self)
	for n := len(t.total) - 1; n > 0; n-- {
		t.total[t.parent[n]] += t.total[n]
	}
	t.end = make([]int32, len(t.frameOf))
	for n := range t.end {
		t.end[n] = int32(n + 1)
	}
	for n := len(t.end) - 1; n > 0; n-- {
		t.end[t.parent[n]] = max(t.end[t.parent[n]], t.end[n])
	}
	return t, nil
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []int32) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// locationFrames are a location's frames, outermost (caller) first.
func locationFrames(loc *profile.Location) []frame {
	if len(loc.Line) == 0 {
		binary := ""
		if loc.Mapping != nil {
			binary = loc.Mapping.File
		}
		return []frame{{name: fmt.Sprintf("0x%x", loc.Address), binary: binary}}
	}
	out := make([]frame, 0, len(loc.Line))
	for i := len(loc.Line) - 1; i >= 0; i-- {
		out = append(out, lineFrame(loc, i))
	}
	return out
}

// lineFrame is the frame of loc's line i.
func lineFrame(loc *profile.Location, i int) frame {
	f := frame{name: "?"}
	if loc.Mapping != nil {
		f.binary = loc.Mapping.File
	}
	if fn := loc.Line[i].Function; fn != nil {
		f.name, f.file = cmp.Or(fn.Name, fn.SystemName, "?"), fn.Filename
	}
	return f
}

// sortNodes sorts nodes by total, largest first, then by name, file and
// binary, so that output does not depend on sample order.
func sortNodes(t *callTree, nodes []int32) {
	slices.SortFunc(nodes, func(a, b int32) int {
		fa, fb := t.frames[t.frameOf[a]], t.frames[t.frameOf[b]]
		return cmp.Or(cmp.Compare(t.total[b], t.total[a]),
			strings.Compare(fa.name, fb.name), strings.Compare(fa.file, fb.file), strings.Compare(fa.binary, fb.binary))
	})
}

// keep chooses the nodes to show within budget, largest total first among
// the children of nodes already kept. A kept node with unkept children costs
// one more node, its "(other)" child; a node that does not fit is pruned with
// its subtree and the choice goes on with smaller ones, which may. It
// returns, per node, -1 if it is not kept and the number of its children
// not kept if it is, and the number of nodes kept.
func (t *callTree) keep(budget int) ([]int32, int) {
	kept := make([]int32, len(t.frameOf))
	for i := range kept {
		kept[i] = -1
	}
	h := nodeHeap{t: t}
	// keepNode marks n kept with all its children not (yet) kept, which
	// become candidates.
	keepNode := func(n int32) {
		kept[n] = 0
		for c := n + 1; c < t.end[n]; c = t.end[c] {
			kept[n]++
			h.push(c)
		}
	}
	keepNode(0)
	count, used := 1, 1
	if kept[0] > 0 {
		used++
	}
	for len(h.nodes) > 0 {
		c := h.pop()
		cost := 1
		if kept[t.parent[c]] == 1 { // the parent's "(other)" goes away
			cost--
		}
		if t.end[c] > c+1 { // c gets an "(other)" until its children are in
			cost++
		}
		if used+cost > budget {
			continue
		}
		used += cost
		count++
		kept[t.parent[c]]--
		keepNode(c)
	}
	return kept, count
}

// nodeHeap is a binary heap of candidate nodes, largest total first, then
// lowest node index (creation order) for a stable choice among equals.
// (container/heap would box every node in an interface: an allocation each.)
type nodeHeap struct {
	t     *callTree
	nodes []int32
}

func (h *nodeHeap) less(i, j int) bool {
	a, b := h.nodes[i], h.nodes[j]
	if h.t.total[a] != h.t.total[b] {
		return h.t.total[a] > h.t.total[b]
	}
	return a < b
}

func (h *nodeHeap) push(n int32) {
	h.nodes = append(h.nodes, n)
	for i := len(h.nodes) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.nodes[i], h.nodes[p] = h.nodes[p], h.nodes[i]
		i = p
	}
}

func (h *nodeHeap) pop() int32 {
	top := h.nodes[0]
	last := len(h.nodes) - 1
	h.nodes[0] = h.nodes[last]
	h.nodes = h.nodes[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(l, m) {
			m = l
		}
		if r < last && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.nodes[i], h.nodes[m] = h.nodes[m], h.nodes[i]
		i = m
	}
	return top
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
	emit := func(parent int32, f frame, self, total int64) int32 {
		i := int32(len(nodes.Parent))
		nodes.Parent = append(nodes.Parent, parent)
		nodes.Name = append(nodes.Name, strs.intern(f.name))
		nodes.File = append(nodes.File, strs.intern(f.file))
		nodes.Binary = append(nodes.Binary, strs.intern(f.binary))
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
			emit(e.parent, frame{name: otherName}, e.other, e.other)
			continue
		}
		out := emit(e.parent, t.frames[t.frameOf[e.node]], t.self[e.node], t.total[e.node])
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
	nodes.Line = t.hottestLines(outOf, len(nodes.Parent))
	fg.Functions = t.functionTable(strs)
	fg.Strings = strs.strings
	fg.Total = t.total[0]
	fg.Samples = len(t.stacks)
	return fg
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

// functionTable sums self and total per function name over the whole
// tree, a function's total counting only its outermost frames on each
// path, and keeps the largest (see FlameFunctions).
func (t *callTree) functionTable(strs *stringTable) FlameFunctions {
	self := make([]int64, len(t.names))
	total := make([]int64, len(t.names))
	onStack := make([]int32, len(t.names)) // frames of each name on the path to the current node
	var path []int32                       // the current node's ancestors and itself
	for n := int32(1); n < int32(len(t.frameOf)); n++ {
		p := t.parent[n]
		for len(path) > 0 && path[len(path)-1] != p {
			onStack[t.frameName[t.frameOf[path[len(path)-1]]]]--
			path = path[:len(path)-1]
		}
		id := t.frameName[t.frameOf[n]]
		self[id] += t.self[n]
		if onStack[id] == 0 {
			total[id] += t.total[n]
		}
		onStack[id]++
		path = append(path, n)
	}
	var ids []int32
	for id := range t.names {
		if total[id] > 0 {
			ids = append(ids, int32(id))
		}
	}
	byName := func(a, b int32) int { return strings.Compare(t.names[a], t.names[b]) }
	bySelf := func(a, b int32) int { return cmp.Or(cmp.Compare(self[b], self[a]), byName(a, b)) }
	fns := FlameFunctions{Count: len(ids)}
	if len(ids) > topFunctions {
		slices.SortFunc(ids, func(a, b int32) int { return cmp.Or(cmp.Compare(total[b], total[a]), byName(a, b)) })
		chosen := make([]bool, len(t.names))
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
		fns.Name = append(fns.Name, strs.intern(t.names[id]))
		fns.Self = append(fns.Self, self[id])
		fns.Total = append(fns.Total, total[id])
	}
	return fns
}

// buildFlameGraph is the flame graph of p for sampleType ("" for the
// profile's default) within a budget of maxNodes nodes.
func buildFlameGraph(ctx context.Context, p *profile.Profile, sampleType string, maxNodes int) (*FlameGraph, error) {
	p = orEmpty(p)
	vi, err := sampleIndex(p, sampleType)
	if err != nil {
		return nil, err
	}
	t, err := buildCallTree(ctx, p, vi)
	if err != nil {
		return nil, err
	}
	fg := t.flameGraph(t.keep(maxNodes))
	fg.SampleType, fg.Unit = p.SampleType[vi].Type, p.SampleType[vi].Unit
	fg.MaxNodes = maxNodes
	return fg, nil
}

// sampleIndex finds the value index of sampleType in p; "" picks the
// profile's default, which pprof takes to be the last when unset (for
// Ember's profiles, cpu nanoseconds).
func sampleIndex(p *profile.Profile, sampleType string) (int, error) {
	want := sampleType
	if want == "" {
		want = p.DefaultSampleType
	}
	for i, st := range p.SampleType {
		if st.Type == want {
			return i, nil
		}
	}
	if sampleType == "" {
		return len(p.SampleType) - 1, nil
	}
	types := make([]string, len(p.SampleType))
	for i, st := range p.SampleType {
		types[i] = st.Type
	}
	return 0, badParam("sample_type", "sample_type: %q is not in the profile, which has %s", sampleType, strings.Join(types, ", "))
}

// orEmpty is p, or an empty profile with Ember's sample types when p is nil
// or has none, as a store may return for a range without samples.
func orEmpty(p *profile.Profile) *profile.Profile {
	if p == nil || len(p.SampleType) == 0 {
		return emptyProfile(time.Time{}, time.Time{})
	}
	return p
}
