package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// frame is one function in a call path; tree nodes with the same parent and
// frame are one node.
type frame struct {
	name, file, binary string
	// group marks the synthetic first frame of a grouped tree: a label's
	// value, not a function (see FlameOptions.GroupBy).
	group bool
}

// function is what the function table sums by: a name in one binary, so
// that main of every program is a row of its own.
type function struct{ name, binary string }

// callTree is the unpruned merged call tree, node 0 the root. Nodes are
// numbered in pre-order, parents before children.
type callTree struct {
	frames    []frame    // by frame ID, interned: the root's is 0
	frameFunc []int32    // function ID of each frame, -1 for group frames
	functions []function // by function ID
	frameOf   []int32    // by node
	parent    []int32
	// total is each node's value and its descendants'; a node's self
	// value is its total less its children's (selfValue), not kept: a
	// day's tree has a million nodes.
	total []int64
	// end[i] is the end of node i's subtree, which is [i, end[i]): its
	// first child is i+1 (if end[i] > i+1) and a child c's next sibling is
	// end[c].
	end []int32
	// The sorted stacks the tree was built from, and each frame's source
	// line beside its frame ID in arena, for hottestLines.
	arena, lines []int32
	stacks       []stack
	// samples is how many samples were merged; hotLine, when set, each
	// node's line (see hottestLines), found as the tree was built
	// without stacks.
	samples int
	hotLine []int32
	density []float32 // by node, for keep: see selfDensity
}

// stack is one sample's root-first path: frame IDs arena[start:end].
type stack struct {
	start, end int32
	value      int64
}

// buildCallTree merges the samples of p, taking value index vi, into a tree
// rooted at node 0, each path under a frame for the sample's groupBy label
// when groupBy is not "". pprof lists locations leaf first and a location's lines
// (inlined calls) innermost first, so both are walked backwards.
//
// Rather than look every frame up in a map of children (a cache miss per
// frame once the tree is large), it sorts the samples' root-first paths
// and builds the tree in one pass, each path sharing the nodes of the
// common prefix with the one before. Nodes come out in pre-order, parents
// before children, so totals are summed bottom-up in a second pass.
func buildCallTree(ctx context.Context, p *profile.Profile, vi int, groupBy string) (*callTree, error) {
	b := newTreeBuilder(len(p.Function))
	t, frameID := b.t, b.frameID
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
		if groupBy != "" {
			t.arena = append(t.arena, b.groupID(groupValue(s, groupBy)))
			t.lines = append(t.lines, 0)
		}
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
	if err := t.grow(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// treeBuilder interns the frames and functions of a call tree being built.
type treeBuilder struct {
	t          *callTree
	frameIDs   map[frame]int32
	funcIDs    map[function]int32
	groupFrame map[string]int32 // by label value
}

// newTreeBuilder starts a tree of about frames distinct frames.
func newTreeBuilder(frames int) *treeBuilder {
	t := &callTree{frames: make([]frame, 1, frames+1), frameFunc: make([]int32, 1, frames+1), functions: []function{{name: "root"}},
		frameOf: []int32{0}, parent: []int32{-1}, total: []int64{0}}
	t.frames[0] = frame{name: "root"}
	b := &treeBuilder{t: t, frameIDs: make(map[frame]int32, frames+1), funcIDs: make(map[function]int32, frames), groupFrame: map[string]int32{}}
	b.frameIDs[t.frames[0]] = 0
	return b
}

// frameID is the ID of frame f, interned.
func (b *treeBuilder) frameID(f frame) int32 {
	t := b.t
	id, ok := b.frameIDs[f]
	if ok {
		return id
	}
	id = int32(len(t.frames))
	b.frameIDs[f] = id
	t.frames = append(t.frames, f)
	if f.group {
		t.frameFunc = append(t.frameFunc, -1)
		return id
	}
	key := function{f.name, f.binary}
	funcID, ok := b.funcIDs[key]
	if !ok {
		funcID = int32(len(t.functions))
		b.funcIDs[key] = funcID
		t.functions = append(t.functions, key)
	}
	t.frameFunc = append(t.frameFunc, funcID)
	return id
}

// groupID is the ID of the group frame of label value v.
func (b *treeBuilder) groupID(v string) int32 {
	id, ok := b.groupFrame[v]
	if !ok {
		id = b.frameID(frame{name: v, group: true})
		b.groupFrame[v] = id
	}
	return id
}

// grow builds the tree from t.stacks, the samples' root-first paths in
// t.arena.
func (t *callTree) grow(ctx context.Context) error {
	t.canonicalFrames()
	t.samples = len(t.stacks)
	arena := t.arena
	slices.SortFunc(t.stacks, func(a, b stack) int {
		return slices.Compare(arena[a.start:a.end], arena[b.start:b.end])
	})
	if err := ctx.Err(); err != nil {
		return err
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
	t.total = slices.Grow(t.total, maxNodes) // self values, then totals
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
			t.total = append(t.total, 0)
			open = append(open, child)
		}
		t.total[open[len(open)-1]] += st.value
		prev = path
	}
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
	return nil
}

// canonicalFrames numbers frames in the order of their names rather than
// the order they were first seen in, so that node numbers, which break
// ties, do not depend on the order samples came in.
func (t *callTree) canonicalFrames() {
	newID := t.canonicalIDs()
	// Only the stacks' own frames: an arena taken over from query.Stacks
	// also holds the frames of samples left out, not interned.
	for _, st := range t.stacks {
		for i := st.start; i < st.end; i++ {
			t.arena[i] = newID[t.arena[i]]
		}
	}
}

// canonicalIDs renumbers t's frames in name order and returns each old
// number's new one.
func (t *callTree) canonicalIDs() []int32 {
	order := make([]int32, len(t.frames)-1)
	for i := range order {
		order[i] = int32(i + 1) // the root stays 0
	}
	slices.SortFunc(order, func(a, b int32) int {
		fa, fb := t.frames[a], t.frames[b]
		if fa.group != fb.group {
			if fa.group {
				return -1
			}
			return 1
		}
		return compareFrames(&fa, &fb)
	})
	newID := make([]int32, len(t.frames))
	frames := make([]frame, len(t.frames))
	frameFunc := make([]int32, len(t.frames))
	frames[0], frameFunc[0] = t.frames[0], t.frameFunc[0]
	for i, old := range order {
		newID[old] = int32(i + 1)
		frames[i+1], frameFunc[i+1] = t.frames[old], t.frameFunc[old]
	}
	t.frames, t.frameFunc = frames, frameFunc
	return newID
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
		if c := cmp.Compare(t.total[b], t.total[a]); c != 0 {
			return c
		}
		return compareFrames(&t.frames[t.frameOf[a]], &t.frames[t.frameOf[b]])
	})
}

// compareFrames orders frames by name, file and binary. (cmp.Or would
// compare all three strings every time: its arguments are evaluated
// before it is called.)
func compareFrames(a, b *frame) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.file, b.file); c != 0 {
		return c
	}
	return strings.Compare(a.binary, b.binary)
}

// keep chooses the nodes to show within budget, highest selfDensity (then
// largest total) first among the children of nodes already kept. A kept
// node with unkept children costs one more node, its "(other)" child; a
// node that does not fit is pruned with its subtree and the choice goes on
// with smaller ones, which may. It stops early once the value left in
// "(other)" is at most enough (never when enough is negative). It returns,
// per node, -1 if it is not kept and the number of its children not kept
// if it is, the number of nodes kept, and the nodes the output takes
// (those and the "(other)" ones). It writes into buf when buf is as long
// as the tree (a day's tree is a million nodes).
func (t *callTree) keep(budget int, enough int64, buf []int32) (kept []int32, count, used int) {
	kept = buf
	if len(kept) != len(t.frameOf) {
		kept = make([]int32, len(t.frameOf))
	}
	for i := range kept {
		kept[i] = -1
	}
	if t.density == nil { // once for the budgets flameGraphWithin tries
		t.density = t.selfDensity()
	}
	h := nodeHeap{t: t, density: t.density}
	pruned := t.total[0] // the value in "(other)" boxes: what is kept takes its self out
	// keepNode marks n kept with all its children not (yet) kept, which
	// become candidates.
	keepNode := func(n int32) {
		kept[n] = 0
		pruned -= t.total[n]
		for c := n + 1; c < t.end[n]; c = t.end[c] {
			kept[n]++
			pruned += t.total[c]
			h.push(c)
		}
	}
	keepNode(0)
	count, used = 1, 1
	if kept[0] > 0 {
		used++
	}
	for len(h.nodes) > 0 && pruned > enough {
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
	return kept, count, used
}

// nodeHeap is a binary heap of candidate nodes, highest density first,
// then largest total, then lowest node index (creation order) for a
// stable choice among equals.
// (container/heap would box every node in an interface: an allocation each.)
type nodeHeap struct {
	t       *callTree
	density []float32 // by node: see selfDensity
	nodes   []int32
}

// selfDensity is, per node, the most self value per node that a subtree
// rooted at it can show: the node's self and, best first, each child's
// subtree that raises the ratio. Keeping nodes in this order rather than by
// total shows more of the value with names for the same budget, so that
// less is left in "(other)": a leaf's value is only shown when its whole
// path is, and a wide node whose value is spread over thousands of small
// leaves shows little per node. (On a recorded busy hour, 100,000 nodes
// left 18.6% in "(other)" by total and 11.2% by this: docs/benchmarks.md.)
//
// Float32 densities and int32 sizes: 8 bytes a node, for a day's tree of
// a million nodes.
func (t *callTree) selfDensity() []float32 {
	density := make([]float32, len(t.total))
	size := make([]int32, len(t.total)) // of the subtree density[i] is of
	var kids []int32
	for i := len(t.total) - 1; i >= 0; i-- {
		self := t.total[i]
		kids = kids[:0]
		for c := int32(i) + 1; c < t.end[i]; c = t.end[c] {
			self -= t.total[c]
			kids = append(kids, c)
		}
		slices.SortFunc(kids, func(a, b int32) int { return cmp.Compare(density[b], density[a]) })
		sum, k := float64(self), int32(1)
		for _, c := range kids {
			if float64(density[c])*float64(k) <= sum {
				break
			}
			sum, k = sum+float64(density[c])*float64(size[c]), k+size[c]
		}
		density[i], size[i] = float32(sum/float64(k)), k
	}
	return density
}

func (h *nodeHeap) less(i, j int) bool {
	a, b := h.nodes[i], h.nodes[j]
	if h.density[a] != h.density[b] {
		return h.density[a] > h.density[b]
	}
	if h.t.total[a] != h.t.total[b] {
		return h.t.total[a] > h.t.total[b]
	}
	// Ties by frame, numbered in name order (canonicalFrames), before node
	// number: the same data read another way keeps the same nodes.
	if fa, fb := h.t.frameOf[a], h.t.frameOf[b]; fa != fb {
		return fa < fb
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
