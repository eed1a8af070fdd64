package report

import (
	"cmp"
	"context"
	"errors"
	mathbits "math/bits"
	"slices"

	"github.com/ember-profiler/ember/storage/query"
)

// stacksForest is the paths of a query.Stacks as one trie of "local"
// nodes: the Trie nodes samples reach, numbered in their order, then a
// node per step of the listed paths (Paths) that no earlier one took. Node
// 0 is the empty path; every node's parent comes before it. Frames are
// the tree builder's.
type stacksForest struct {
	parent, frame, line []int32
	leaf                []int32 // by sample: its local node, -1 when left out
}

// newStacksForest numbers the nodes of s that samples with a value
// (value(i) > 0) reach, interning their frames with b.
func newStacksForest(ctx context.Context, s *query.Stacks, b *treeBuilder, value func(i int) int64) (*stacksForest, error) {
	f := &stacksForest{leaf: make([]int32, len(s.Samples))}
	trie := s.Trie
	// Mark the trie nodes samples reach, and their callers.
	var marked []uint64
	if len(trie) > 0 {
		marked = make([]uint64, (len(trie)+63)/64)
		marked[0] |= 1
	}
	for i, smp := range s.Samples {
		if i%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		f.leaf[i] = -1
		if value(i) <= 0 || smp.Leaf <= 0 {
			continue
		}
		if int(smp.Leaf) >= len(trie) {
			return nil, errors.New("report: stacks: a sample's trie node is out of range")
		}
		for n := smp.Leaf; n > 0 && marked[n/64]&(1<<(n%64)) == 0; n = trie[n].Parent {
			marked[n/64] |= 1 << (n % 64)
			if p := trie[n].Parent; p < 0 || p >= n {
				return nil, errors.New("report: stacks: a trie node's parent does not come before it")
			}
		}
	}
	// A marked node's local number is how many marked nodes precede it.
	rank := make([]int32, len(marked))
	count := int32(0)
	for w, bits := range marked {
		rank[w] = count
		count += int32(mathbits.OnesCount64(bits))
	}
	local := func(n int32) int32 {
		return rank[n/64] + int32(mathbits.OnesCount64(marked[n/64]&(1<<(n%64)-1)))
	}
	size := max(int(count), 1)
	f.parent = make([]int32, size, size+size/8)
	f.frame = make([]int32, size, cap(f.parent))
	f.line = make([]int32, size, cap(f.parent))
	f.parent[0], f.frame[0] = -1, 0
	trieFrame := make([]int32, len(s.TrieFrames))
	for i := range trieFrame {
		trieFrame[i] = -1
	}
	next := int32(1)
	for w, bits := range marked {
		for ; bits != 0; bits &= bits - 1 {
			n := int32(w*64 + mathbits.TrailingZeros64(bits))
			if n == 0 {
				continue
			}
			node := trie[n]
			if node.Frame < 0 || int(node.Frame) >= len(trieFrame) {
				return nil, errors.New("report: stacks: a trie node's frame is out of range")
			}
			id := trieFrame[node.Frame]
			if id < 0 {
				fr := s.TrieFrames[node.Frame]
				id = b.frameID(frame{name: fr.Name, file: fr.File, binary: fr.Binary})
				trieFrame[node.Frame] = id
			}
			f.parent[next], f.frame[next], f.line[next] = local(node.Parent), id, node.Line
			next++
		}
	}
	for i, smp := range s.Samples {
		if value(i) > 0 && smp.Leaf > 0 {
			f.leaf[i] = local(smp.Leaf)
		}
	}
	// The listed paths, each step shared with an equal one before it.
	flatFrame := make([]int32, len(s.Frames))
	for i := range flatFrame {
		flatFrame[i] = -1
	}
	type step struct{ parent, frame, line int32 }
	steps := map[step]int32{}
	for i, smp := range s.Samples {
		if value(i) <= 0 || smp.Leaf > 0 {
			continue
		}
		if i%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if smp.Start < 0 || smp.End < smp.Start || int(smp.End) > len(s.Paths) {
			return nil, errors.New("report: stacks: a sample's frames are out of range")
		}
		n := int32(0)
		for k := smp.Start; k < smp.End; k++ {
			fr := s.Paths[k]
			if fr < 0 || int(fr) >= len(flatFrame) {
				return nil, errors.New("report: stacks: a frame ID is out of range")
			}
			id := flatFrame[fr]
			if id < 0 {
				sf := s.Frames[fr]
				id = b.frameID(frame{name: sf.Name, file: sf.File, binary: sf.Binary})
				flatFrame[fr] = id
			}
			key := step{n, id, s.Lines[k]}
			c, ok := steps[key]
			if !ok {
				c = int32(len(f.parent))
				f.parent = append(f.parent, n)
				f.frame = append(f.frame, id)
				f.line = append(f.line, key.line)
				steps[key] = c
			}
			n = c
		}
		f.leaf[i] = n
	}
	return f, nil
}

// buildStacksTree merges the samples of s into a call tree as grow does
// for their paths (the same nodes in the same order), from their trie:
// each group's samples' values are summed up the trie, and the tree is
// grown in pre-order, a node's children by frame, from the trie nodes
// that map to it. Frames are b's, numbered by name (canonicalFrames) on
// the way; group(i) is the group frame of sample i (called only when
// grouped). Each node's line is the one most of its value passed through.
func buildStacksTree(ctx context.Context, s *query.Stacks, b *treeBuilder, value func(i int) int64, group func(i int) int32, grouped bool) (*callTree, error) {
	t := b.t
	f, err := newStacksForest(ctx, s, b, value)
	if err != nil {
		return nil, err
	}
	newID := t.canonicalIDs()
	for i := range f.frame {
		f.frame[i] = newID[f.frame[i]]
	}
	// Samples by group, groups in frame order (the tree's first level).
	type groupSamples struct {
		frame   int32
		samples []int32
	}
	var groups []groupSamples
	if grouped {
		byFrame := map[int32]int{}
		for i := range s.Samples {
			if f.leaf[i] < 0 {
				continue
			}
			g := newID[group(i)]
			k, ok := byFrame[g]
			if !ok {
				k = len(groups)
				byFrame[g] = k
				groups = append(groups, groupSamples{frame: g})
			}
			groups[k].samples = append(groups[k].samples, int32(i))
		}
		slices.SortFunc(groups, func(a, b groupSamples) int { return cmp.Compare(a.frame, b.frame) })
	} else {
		all := groupSamples{frame: -1}
		for i := range s.Samples {
			if f.leaf[i] >= 0 {
				all.samples = append(all.samples, int32(i))
			}
		}
		groups = []groupSamples{all}
	}
	n := len(f.parent)
	val := make([]int64, n)
	stamp := make([]int32, n) // group index + 1 that last reached the node
	head := make([]int32, n)  // first child reached in this group, -1: none
	next := make([]int32, n)  // next sibling in head's list
	for i := range head {
		head[i] = -1
	}
	// A tree has about a node per local node, and more when grouped.
	size := n + n/8 + len(groups)
	t.frameOf, t.parent = slices.Grow(t.frameOf, size), slices.Grow(t.parent, size)
	t.total = slices.Grow(t.total, size)
	t.hotLine = make([]int32, 1, size)
	var reached, sets, kids []int32
	type entry struct {
		parent     int32 // tree node, -1: the entry is the root itself
		start, end int32 // its local nodes, sets[start:end]
	}
	var todo []entry
	for gi, g := range groups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		reached = reached[:0]
		for _, i := range g.samples {
			leaf := f.leaf[i]
			val[leaf] += value(int(i))
			for n := leaf; n >= 0 && stamp[n] != int32(gi+1); n = f.parent[n] {
				stamp[n] = int32(gi + 1)
				reached = append(reached, n)
			}
		}
		slices.Sort(reached)
		for k := len(reached) - 1; k > 0; k-- { // reached[0] is the root, 0
			c := reached[k]
			p := f.parent[c]
			val[p] += val[c]
			next[c], head[p] = head[p], c
		}
		t.samples += len(g.samples)
		sets = append(sets[:0], 0)
		if grouped {
			todo = append(todo, entry{parent: 0, start: 0, end: 1})
		} else {
			todo = append(todo, entry{parent: -1, start: 0, end: 1})
		}
		for len(todo) > 0 {
			e := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			set := sets[e.start:e.end]
			node := int32(0)
			if e.parent < 0 {
				t.total[0] += val[0]
			} else {
				node = int32(len(t.frameOf))
				fr := f.frame[set[0]]
				if set[0] == 0 { // a group's node
					fr = g.frame
				}
				var total int64
				for _, l := range set {
					total += val[l]
				}
				if set[0] == 0 {
					t.total[0] += total
				}
				t.frameOf = append(t.frameOf, fr)
				t.parent = append(t.parent, e.parent)
				t.total = append(t.total, total)
				t.hotLine = append(t.hotLine, hottestLine(set, f.line, val))
			}
			kids = kids[:0]
			for _, l := range set {
				for c := head[l]; c >= 0; c = next[c] {
					kids = append(kids, c)
				}
			}
			if len(kids) == 0 {
				continue
			}
			slices.SortFunc(kids, func(a, b int32) int { return cmp.Or(cmp.Compare(f.frame[a], f.frame[b]), cmp.Compare(a, b)) })
			// Runs of one frame are children; pushed last first, so
			// that they are numbered in frame order.
			first := len(todo)
			for k := 0; k < len(kids); {
				j := k + 1
				for j < len(kids) && f.frame[kids[j]] == f.frame[kids[k]] {
					j++
				}
				start := int32(len(sets))
				sets = append(sets, kids[k:j]...)
				todo = append(todo, entry{parent: node, start: start, end: int32(len(sets))})
				k = j
			}
			slices.Reverse(todo[first:])
		}
		for _, l := range reached {
			val[l], head[l] = 0, -1
		}
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

// hottestLine is the line of the local nodes set that has the most value,
// the lowest of equals, as hottestLines chooses.
func hottestLine(set, line []int32, val []int64) int32 {
	if len(set) == 1 {
		return line[set[0]]
	}
	best, bestValue := int32(0), int64(0)
	for i, l := range set {
		ln := line[l]
		if slices.ContainsFunc(set[:i], func(o int32) bool { return line[o] == ln }) {
			continue // summed with the first of its line
		}
		v := val[l]
		for _, o := range set[i+1:] {
			if line[o] == ln {
				v += val[o]
			}
		}
		if v > bestValue || v == bestValue && ln < best {
			best, bestValue = ln, v
		}
	}
	return best
}
