package storage

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ember-profiler/ember/storage/query"
)

// pathCache keeps stacks named across flame graph queries, within a byte
// budget. Naming an hour of a churning host read about 120,000 stacks and
// their locations and functions out of Badger for every request (a quarter
// of the request), though a stack's frames never change once it is stored
// and the next request asks for nearly the same stacks.
//
// Named paths are kept as a trie of (frame, line) steps, a stack being its
// deepest node: the stacks of one host share most of their callers, so a
// node each is far smaller than a frame list each. When the budget is
// spent the whole cache is dropped and fills again: queries hold a
// snapshot of what they read, which never changes under them, as nodes and
// frames are only ever appended. Stack ids are safe keys: a stored stack's
// id is never given to another (ids rolled back after a failed append were
// never in a block a query could read).
type pathCache struct {
	mu     sync.Mutex
	budget int64
	bytes  int64
	gen    uint64 // counts drops: a query's lookup is good for one generation

	frames   []query.Frame
	frameIDs map[query.Frame]int32
	// files holds each file and binary name, and label value, once:
	// frames of one binary or source file, and processes of one program,
	// share it.
	files map[string]string
	// nodes[0] is the root, the empty path.
	nodes []pathNode
	// children is an open-addressing table of node+1 by (parent, frame,
	// line), 0 for free; a map of structs cost three times as much.
	children []int32
	stacks   map[uint32]int32 // stack id -> node
	// labelSets are label sets' values of query.GroupDetailLabels: a
	// grouped hour reads tens of thousands of label sets on a churning
	// host, a fifth of the request when parsed from the dictionary.
	labelSets map[uint32][numDetailLabels]string

	hits, misses, drops uint64
	// published is stats as of the last change, for /metrics, which must
	// not wait for a query's additions.
	published atomic.Pointer[PathCacheStats]
}

const defaultPathCacheBytes = 32 << 20

// numDetailLabels is len(query.GroupDetailLabels).
const numDetailLabels = 4

// labelSetDetails is a label set's values of query.GroupDetailLabels.
type labelSetDetails struct {
	id     uint32
	values [numDetailLabels]string
}

// labelSet returns the detail values of label set id, if cached.
func (c *pathCache) labelSet(id uint32) (labelSetDetails, bool) {
	if c == nil {
		return labelSetDetails{}, false
	}
	c.mu.Lock()
	v, ok := c.labelSets[id]
	c.mu.Unlock()
	return labelSetDetails{id: id, values: v}, ok
}

// addLabelSets keeps label sets read by a query, while the budget lasts;
// values repeated across label sets (comm, exe, container) are kept once.
func (c *pathCache) addLabelSets(sets []labelSetDetails) {
	if c == nil || len(sets) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range sets {
		if c.bytes > c.budget {
			break
		}
		if _, ok := c.labelSets[d.id]; ok {
			continue
		}
		for i, v := range d.values {
			d.values[i] = c.fileLocked(v)
		}
		c.labelSets[d.id] = d.values
		c.bytes += pathLabelSetBytes
	}
	c.publishLocked()
}

// pathNode is a step of a named path; queries hand the cache's nodes to
// report as they are.
type pathNode = query.TrieNode

// Rough costs of an entry, for the budget: a node (the open-addressing
// table is counted by its size), a stack's map entry, and a frame's
// (besides its strings) with its map entry.
const (
	pathNodeBytes     = 12
	pathStackBytes    = 16
	pathFrameBytes    = 3*16 + 3*16 + 8
	pathFileBytes     = 2*16 + 8
	pathLabelSetBytes = numDetailLabels*16 + 8
)

func newPathCache(budget int64) *pathCache {
	c := &pathCache{budget: budget}
	c.clearLocked()
	c.publishLocked()
	return c
}

func (c *pathCache) clearLocked() {
	c.frames, c.frameIDs, c.files = nil, make(map[query.Frame]int32), make(map[string]string)
	c.nodes = []pathNode{{Parent: -1, Frame: -1}}
	c.children = make([]int32, 1024)
	c.stacks = make(map[uint32]int32)
	c.labelSets = make(map[uint32][numDetailLabels]string)
	c.bytes = int64(len(c.children)) * 4
}

// drop forgets everything, e.g. when ids may be given out again.
func (c *pathCache) drop() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	c.gen++
	c.drops++
	c.publishLocked()
}

// pathSnapshot is what a query read of the cache: nodes and frames as they
// were, safe to read without the lock.
type pathSnapshot struct {
	gen    uint64
	nodes  []pathNode
	frames []query.Frame
}

// lookup sets leaves[i] to the node of stack ids[i], -1 when it is not
// cached, and returns how many were not.
func (c *pathCache) lookup(ids []uint32, leaves []int32) (pathSnapshot, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	missing := 0
	for i, id := range ids {
		n, ok := c.stacks[id]
		if !ok {
			n = -1
			missing++
		}
		leaves[i] = n
	}
	c.hits += uint64(len(ids) - missing)
	c.misses += uint64(missing)
	c.publishLocked()
	return c.snapshotLocked(), missing
}

func (c *pathCache) snapshotLocked() pathSnapshot {
	return pathSnapshot{gen: c.gen, nodes: c.nodes, frames: c.frames}
}

// namedStack is a stack named outside the cache: its frames root first, as
// ids into frames, and their lines.
type namedStack struct {
	id            uint32
	frames, lines []int32
}

// cachedStack is a stack a query found in the cache: its node in the
// query's snapshot.
type cachedStack struct {
	id   uint32
	leaf int32
}

// add puts the stacks of one query's answer into the cache, those it does
// not hold yet, while its budget lasts: named, named by the query with
// frames, and, when the budget was spent before and everything is
// dropped first, cached, read back from the query's snapshot (snap), so
// that the cache then holds what was asked last. It adds nothing when
// another query dropped the cache since this one's lookup: the cache
// holds that query's stacks.
//
// Unless it dropped the cache (or added nothing), it returns a snapshot
// that extends snap, with the node of each of named (-1: not added), so
// that the query can hand those stacks on as nodes too.
func (c *pathCache) add(snap pathSnapshot, frames []query.Frame, named []namedStack, cached []cachedStack) (pathSnapshot, []int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap.gen != c.gen {
		return pathSnapshot{}, nil, false
	}
	dropped := false
	if c.bytes > c.budget {
		c.clearLocked()
		c.gen++
		c.drops++
		dropped = true
		// The snapshot's nodes stay as they were: the cache starts new
		// slices.
		global := unnumbered(len(snap.frames))
		var ids, lines []int32
		for _, st := range cached {
			if c.bytes > c.budget {
				break
			}
			ids, lines = ids[:0], lines[:0]
			for n := st.leaf; n > 0; n = snap.nodes[n].Parent {
				ids, lines = append(ids, snap.nodes[n].Frame), append(lines, snap.nodes[n].Line)
			}
			slices.Reverse(ids)
			slices.Reverse(lines)
			c.addStackLocked(st.id, ids, lines, snap.frames, global)
		}
	}
	global := unnumbered(len(frames))
	leaves := make([]int32, len(named))
	for i, st := range named {
		leaves[i] = -1
		if c.bytes > c.budget {
			continue
		}
		if n, ok := c.stacks[st.id]; ok {
			leaves[i] = n // added by another query since the lookup
			continue
		}
		leaves[i] = c.addStackLocked(st.id, st.frames, st.lines, frames, global)
	}
	c.publishLocked()
	if dropped {
		return pathSnapshot{}, nil, false
	}
	return c.snapshotLocked(), leaves, true
}

// addStackLocked adds stack id, frames[ids[j]] at lines[j] root first,
// and returns its node; global numbers frames in the cache as they are
// met (-1: not yet).
func (c *pathCache) addStackLocked(id uint32, ids, lines []int32, frames []query.Frame, global []int32) int32 {
	node := int32(0)
	for j, f := range ids {
		g := global[f]
		if g < 0 {
			g = c.internFrameLocked(frames[f])
			global[f] = g
		}
		node = c.childLocked(node, g, lines[j])
	}
	c.stacks[id] = node
	c.bytes += pathStackBytes
	return node
}

// unnumbered is n frame numbers, none given yet.
func unnumbered(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = -1
	}
	return out
}

func (c *pathCache) internFrameLocked(f query.Frame) int32 {
	if id, ok := c.frameIDs[f]; ok {
		return id
	}
	id := int32(len(c.frames))
	f.File, f.Binary = c.fileLocked(f.File), c.fileLocked(f.Binary)
	c.frames = append(c.frames, f)
	c.frameIDs[f] = id
	c.bytes += pathFrameBytes + int64(len(f.Name))
	return id
}

func (c *pathCache) fileLocked(name string) string {
	if kept, ok := c.files[name]; ok {
		return kept
	}
	c.files[name] = name
	c.bytes += pathFileBytes + int64(len(name))
	return name
}

// childLocked returns the node for (parent, frame, line), adding it.
func (c *pathCache) childLocked(parent, frame, line int32) int32 {
	mask := uint64(len(c.children) - 1)
	for h := pathHash(parent, frame, line) & mask; ; h = (h + 1) & mask {
		slot := c.children[h]
		if slot == 0 {
			break
		}
		n := &c.nodes[slot-1]
		if n.Parent == parent && n.Frame == frame && n.Line == line {
			return slot - 1
		}
	}
	id := int32(len(c.nodes))
	c.nodes = append(c.nodes, pathNode{Parent: parent, Frame: frame, Line: line})
	c.bytes += pathNodeBytes
	if 4*len(c.nodes) > 3*len(c.children) {
		c.growLocked()
	} else {
		c.placeLocked(id)
	}
	return id
}

func (c *pathCache) placeLocked(id int32) {
	n := c.nodes[id]
	mask := uint64(len(c.children) - 1)
	h := pathHash(n.Parent, n.Frame, n.Line) & mask
	for c.children[h] != 0 {
		h = (h + 1) & mask
	}
	c.children[h] = id + 1
}

func (c *pathCache) growLocked() {
	c.bytes -= int64(len(c.children)) * 4
	c.children = make([]int32, 2*len(c.children))
	c.bytes += int64(len(c.children)) * 4
	for id := 1; id < len(c.nodes); id++ {
		c.placeLocked(int32(id))
	}
}

func pathHash(parent, frame, line int32) uint64 {
	h := uint64(uint32(parent))*0x9e3779b97f4a7c15 ^ uint64(uint32(frame))*0xc2b2ae3d27d4eb4f ^ uint64(uint32(line))*0x165667b19e3779f9
	return h ^ h>>29
}

// PathCacheStats are the named-path cache's size and counters since Open:
// stacks looked up and found (Hits) or named from the dictionary
// (Misses), and the times it was dropped to stay within Budget.
type PathCacheStats struct {
	Bytes, Budget       int64
	Stacks, Nodes       int
	Hits, Misses, Drops uint64
}

func (c *pathCache) publishLocked() {
	c.published.Store(&PathCacheStats{Bytes: c.bytes, Budget: c.budget, Stacks: len(c.stacks), Nodes: len(c.nodes),
		Hits: c.hits, Misses: c.misses, Drops: c.drops})
}

// stats returns the figures as of the last change, without waiting.
func (c *pathCache) stats() PathCacheStats {
	if c == nil {
		return PathCacheStats{}
	}
	return *c.published.Load()
}
