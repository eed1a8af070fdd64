package web

import (
	"cmp"
	"container/heap"
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

// FlameGraph is the JSON of /api/v1/flamegraph: the merged call tree,
// root first, as parallel arrays over a string table.
//
// Node i has parent Nodes.Parent[i] (-1 for the root, node 0), function name
// Strings[Nodes.Name[i]], source file Strings[Nodes.File[i]] and binary
// Strings[Nodes.Binary[i]] ("" when unknown), and values Nodes.Self[i]
// (samples whose innermost frame is this node) and Nodes.Total[i] (self plus
// all descendants). Nodes are in depth-first pre-order: a node's children
// follow it, each child's subtree before the next child; siblings come by
// total, largest first, and a parent always precedes its children, so
// Parent[i] < i. For every node, Total = Self + the sum of its children's
// Total.
//
// Pruning keeps the largest nodes (by Total) within MaxNodes. Every parent
// that lost children gets one last child named "(other)", with file and
// binary "", whose Self and Total are the sum of what was pruned there; so
// totals still add up. Pruned.Nodes counts the call-tree nodes left out and
// Pruned.Value the value they held (the sum over "(other)" nodes).
type FlameGraph struct {
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	SampleType string     `json:"sample_type"` // e.g. "cpu"
	Unit       string     `json:"unit"`        // e.g. "nanoseconds"
	Total      int64      `json:"total"`       // the root's total: all samples' value
	Samples    int        `json:"samples"`     // pprof samples (distinct stacks and labels) merged
	MaxNodes   int        `json:"max_nodes"`   // the node budget applied
	Pruned     Pruned     `json:"pruned"`
	Strings    []string   `json:"strings"` // Strings[0] is ""
	Nodes      FlameNodes `json:"nodes"`
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
	Binary []int32 `json:"binary"`
	Self   []int64 `json:"self"`
	Total  []int64 `json:"total"`
}

// frame is one function in a call path; tree nodes with the same parent and
// frame are one node.
type frame struct {
	name, file, binary string
}

// callTree is the unpruned merged call tree, node 0 the root.
type callTree struct {
	frames  []frame // by frame ID, interned: the root's is 0
	frameOf []int32 // by node
	parent  []int32
	self    []int64
	total   []int64
	// children of a node, filled by link after the tree is built.
	children [][]int32
	samples  int
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
	t := &callTree{frames: []frame{{name: "root"}}, frameOf: []int32{0}, parent: []int32{-1}, self: []int64{0}}
	frameIDs := map[frame]int32{t.frames[0]: 0}
	// Root-first frame IDs of each location, found by location ID: IDs are
	// dense from 1 in the profiles pprof and the store make, so a slice
	// serves; a map takes any other.
	pathByID := make([][]int32, len(p.Location)+1)
	var pathOf map[*profile.Location][]int32
	var locFrames []int32 // backs the paths of all locations
	path := func(loc *profile.Location) []int32 {
		dense := loc.ID > 0 && loc.ID < uint64(len(pathByID))
		if dense && pathByID[loc.ID] != nil {
			return pathByID[loc.ID]
		}
		if ids, ok := pathOf[loc]; ok {
			return ids
		}
		start := len(locFrames)
		for _, f := range locationFrames(loc) {
			id, ok := frameIDs[f]
			if !ok {
				id = int32(len(t.frames))
				frameIDs[f] = id
				t.frames = append(t.frames, f)
			}
			locFrames = append(locFrames, id)
		}
		ids := locFrames[start:len(locFrames):len(locFrames)]
		if dense {
			pathByID[loc.ID] = ids
		} else {
			if pathOf == nil {
				pathOf = make(map[*profile.Location][]int32)
			}
			pathOf[loc] = ids
		}
		return ids
	}
	type stack struct {
		start, end int // in arena
		value      int64
	}
	frames := 0
	for _, s := range p.Sample {
		frames += len(s.Location)
	}
	arena := make([]int32, 0, frames+frames/8) // every sample's root-first path, back to back (inlined frames add some)
	stacks := make([]stack, 0, len(p.Sample))
	for si, s := range p.Sample {
		if si%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if vi >= len(s.Value) || s.Value[vi] <= 0 {
			continue
		}
		start := len(arena)
		for li := len(s.Location) - 1; li >= 0; li-- {
			arena = append(arena, path(s.Location[li])...)
		}
		stacks = append(stacks, stack{start, len(arena), s.Value[vi]})
	}
	t.samples = len(stacks)
	slices.SortFunc(stacks, func(a, b stack) int {
		return slices.Compare(arena[a.start:a.end], arena[b.start:b.end])
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Count the nodes first (each path adds those past its common prefix
	// with the one before), so the node arrays are allocated once, exactly.
	maxNodes := 1
	for i, st := range stacks {
		path := arena[st.start:st.end]
		common := 0
		if i > 0 {
			prev := arena[stacks[i-1].start:stacks[i-1].end]
			for common < len(path) && common < len(prev) && path[common] == prev[common] {
				common++
			}
		}
		maxNodes += len(path) - common
	}
	t.frameOf = slices.Grow(t.frameOf, maxNodes)
	t.parent = slices.Grow(t.parent, maxNodes)
	t.self = slices.Grow(t.self, maxNodes)
	var prev []int32
	open := []int32{0} // open[d] is the node at depth d of the previous path
	for _, st := range stacks {
		path := arena[st.start:st.end]
		common := 0
		for common < len(path) && common < len(prev) && path[common] == prev[common] {
			common++
		}
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
	t.link()
	return t, nil
}

// locationFrames are a location's frames, outermost (caller) first.
func locationFrames(loc *profile.Location) []frame {
	binary := ""
	if loc.Mapping != nil {
		binary = loc.Mapping.File
	}
	if len(loc.Line) == 0 {
		return []frame{{name: fmt.Sprintf("0x%x", loc.Address), binary: binary}}
	}
	out := make([]frame, 0, len(loc.Line))
	for i := len(loc.Line) - 1; i >= 0; i-- {
		f := frame{name: "?", binary: binary}
		if fn := loc.Line[i].Function; fn != nil {
			f.name, f.file = cmp.Or(fn.Name, fn.SystemName, "?"), fn.Filename
		}
		out = append(out, f)
	}
	return out
}

// link fills children, each list sorted by total (largest first), then by
// name, file and binary, so that output does not depend on sample order.
func (t *callTree) link() {
	// One flat array of children, grouped by parent, instead of a slice
	// allocated per node.
	n := len(t.frameOf)
	first := make([]int32, n+1) // children of node i are flat[first[i]:first[i+1]]
	for c := 1; c < n; c++ {
		first[t.parent[c]+1]++
	}
	for i := 1; i <= n; i++ {
		first[i] += first[i-1]
	}
	flat := make([]int32, max(n-1, 0))
	fill := slices.Clone(first[:n])
	for c := 1; c < n; c++ {
		p := t.parent[c]
		flat[fill[p]] = int32(c)
		fill[p]++
	}
	t.children = make([][]int32, n)
	for i := range n {
		ch := flat[first[i]:first[i+1]:first[i+1]]
		if len(ch) > 1 {
			sortNodes(t, ch)
		}
		t.children[i] = ch
	}
}

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
// its subtree and the choice goes on with smaller ones, which may.
func (t *callTree) keep(budget int) []bool {
	kept := make([]bool, len(t.frameOf))
	unkept := make([]int, len(t.frameOf)) // children not (yet) kept, per node
	for n, ch := range t.children {
		unkept[n] = len(ch)
	}
	kept[0] = true
	used := 1
	if unkept[0] > 0 {
		used++
	}
	h := &nodeHeap{t: t}
	for _, c := range t.children[0] {
		heap.Push(h, c)
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(int32)
		cost := 1
		if unkept[t.parent[c]] == 1 { // the parent's "(other)" goes away
			cost--
		}
		if len(t.children[c]) > 0 { // c gets an "(other)" until its children are in
			cost++
		}
		if used+cost > budget {
			continue
		}
		used += cost
		kept[c] = true
		unkept[t.parent[c]]--
		for _, gc := range t.children[c] {
			heap.Push(h, gc)
		}
	}
	return kept
}

// nodeHeap orders candidate nodes by total, largest first, then by node
// index (creation order) for a stable choice among equals.
type nodeHeap struct {
	t     *callTree
	nodes []int32
}

func (h *nodeHeap) Len() int { return len(h.nodes) }
func (h *nodeHeap) Less(i, j int) bool {
	a, b := h.nodes[i], h.nodes[j]
	if h.t.total[a] != h.t.total[b] {
		return h.t.total[a] > h.t.total[b]
	}
	return a < b
}
func (h *nodeHeap) Swap(i, j int) { h.nodes[i], h.nodes[j] = h.nodes[j], h.nodes[i] }
func (h *nodeHeap) Push(x any)    { h.nodes = append(h.nodes, x.(int32)) }
func (h *nodeHeap) Pop() any {
	n := h.nodes[len(h.nodes)-1]
	h.nodes = h.nodes[:len(h.nodes)-1]
	return n
}

// subtreeSize counts n and its descendants.
func (t *callTree) subtreeSize(n int32) int {
	size, stack := 0, []int32{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		size++
		stack = append(stack, t.children[n]...)
	}
	return size
}

// flameGraph emits the kept nodes in pre-order, with an "(other)" child
// after the kept children of every node that lost some.
func (t *callTree) flameGraph(kept []bool) *FlameGraph {
	fg := &FlameGraph{Strings: []string{""}}
	strIndex := map[string]int32{"": 0}
	intern := func(s string) int32 {
		i, ok := strIndex[s]
		if !ok {
			i = int32(len(fg.Strings))
			strIndex[s] = i
			fg.Strings = append(fg.Strings, s)
		}
		return i
	}
	nodes := &fg.Nodes
	emit := func(parent int32, f frame, self, total int64) int32 {
		i := int32(len(nodes.Parent))
		nodes.Parent = append(nodes.Parent, parent)
		nodes.Name = append(nodes.Name, intern(f.name))
		nodes.File = append(nodes.File, intern(f.file))
		nodes.Binary = append(nodes.Binary, intern(f.binary))
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
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e.node < 0 {
			emit(e.parent, frame{name: otherName}, e.other, e.other)
			continue
		}
		out := emit(e.parent, t.frames[t.frameOf[e.node]], t.self[e.node], t.total[e.node])
		var other int64
		var keptChildren []int32
		for _, c := range t.children[e.node] {
			if kept[c] {
				keptChildren = append(keptChildren, c)
			} else {
				other += t.total[c]
				fg.Pruned.Nodes += t.subtreeSize(c)
			}
		}
		if other > 0 {
			fg.Pruned.Value += other
			stack = append(stack, entry{node: -1, parent: out, other: other})
		}
		for i := len(keptChildren) - 1; i >= 0; i-- {
			stack = append(stack, entry{node: keptChildren[i], parent: out})
		}
	}
	fg.Total = t.total[0]
	fg.Samples = t.samples
	return fg
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
