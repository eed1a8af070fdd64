package storage

import (
	"cmp"
	"fmt"
	mathbits "math/bits"
	"slices"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ember-profiler/ember/storage/query"
)

// flameDict is what naming a flame graph's stacks needs: each table in
// slices beside its sorted ids. Maps of decoded entries (queryDict) were
// most of a day's flame graph's live memory on a churning host's store,
// and a slice of every stack's location ids, repeats and all, most of
// what it allocated.
type flameDict struct {
	stackIDs []uint32
	stacks   []string // encoded; by index in stackIDs
	hasStack []bool

	locIDs []uint32
	locs   []flameLocation // by index in locIDs
	lines  []locationLine  // of locs, each a span

	funcIDs []uint32
	funcs   []function
	hasFunc []bool

	mappings map[uint32]mapping
}

type flameLocation struct {
	mappingID  uint32
	address    uint64
	start, end int32 // lines[start:end]
	valid      bool
}

// loadFlameDict reads the given stacks and the entries they refer to.
func (s *Store) loadFlameDict(txn *badger.Txn, stackIDs []uint32) (*flameDict, error) {
	d := s.dict
	fd := &flameDict{stackIDs: stackIDs, stacks: make([]string, len(stackIDs)), hasStack: make([]bool, len(stackIDs)), mappings: map[uint32]mapping{}}
	locSet := growableIDSet{set: newIDSet(d.locations.last)}
	var ids []uint32
	err := d.fetch(txn, kindStack, stackIDs, func(id uint32, enc string) {
		i, ok := slices.BinarySearch(stackIDs, id)
		if !ok {
			return
		}
		fd.stacks[i], fd.hasStack[i] = enc, true
		ids, _ = decodeStack(ids[:0], enc) // a corrupt stack is reported when it is named
		for _, l := range ids {
			locSet.add(l)
		}
	})
	if err != nil {
		return nil, err
	}
	fd.locIDs = locSet.members()
	locSet = growableIDSet{}
	fd.locs = make([]flameLocation, len(fd.locIDs))
	funcSet := growableIDSet{set: newIDSet(d.functions.last)}
	var mapIDs []uint32
	err = d.fetch(txn, kindLocation, fd.locIDs, func(id uint32, enc string) {
		i, ok := slices.BinarySearch(fd.locIDs, id)
		if !ok {
			return
		}
		fl := &fd.locs[i]
		l, err := decodeLocation(enc)
		if err != nil {
			return // reported as unknown
		}
		fl.valid, fl.mappingID, fl.address = true, l.mappingID, l.address
		fl.start = int32(len(fd.lines))
		fd.lines = append(fd.lines, l.lines...)
		fl.end = int32(len(fd.lines))
		if l.mappingID != 0 {
			mapIDs = append(mapIDs, l.mappingID)
		}
		for _, ln := range l.lines {
			if ln.functionID != 0 {
				funcSet.add(ln.functionID)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	fd.funcIDs = funcSet.members()
	fd.funcs = make([]function, len(fd.funcIDs))
	fd.hasFunc = make([]bool, len(fd.funcIDs))
	err = d.fetch(txn, kindFunction, fd.funcIDs, func(id uint32, enc string) {
		i, ok := slices.BinarySearch(fd.funcIDs, id)
		if !ok {
			return
		}
		if f, err := decodeFunction([]byte(enc)); err == nil {
			// Only what a frame shows: the system name is kept only when
			// there is no name, as the frame falls back to it.
			fd.funcs[i] = function{name: cmp.Or(f.name, f.systemName), filename: f.filename}
			fd.hasFunc[i] = true
		}
	})
	if err != nil {
		return nil, err
	}
	err = d.fetch(txn, kindMapping, sortedIDs(mapIDs), func(id uint32, enc string) {
		if m, err := decodeMapping([]byte(enc)); err == nil {
			fd.mappings[id] = m
		}
	})
	return fd, err
}

// growableIDSet is an idSet sized by a table's last id that grows when an
// id past it turns up (an entry added since the size was read).
type growableIDSet struct {
	set idSet
	n   int
}

func (g *growableIDSet) add(id uint32) {
	if int(id/64) >= len(g.set) {
		g.set = append(g.set, make(idSet, int(id/64)+1-len(g.set))...)
	}
	if !g.set.has(id) {
		g.set.add(id)
		g.n++
	}
}

// members returns the ids in order.
func (g *growableIDSet) members() []uint32 {
	out := make([]uint32, 0, g.n)
	for w, bits := range g.set {
		for ; bits != 0; bits &= bits - 1 {
			out = append(out, uint32(w*64+mathbits.TrailingZeros64(bits)))
		}
	}
	return out
}

// namePaths gives each sample its path as a node of the path cache's
// trie, which out shares read only (a day's paths listed frame by frame
// were millions of frames, a third of a flame graph's memory): stacks an
// earlier query named are found there, the others are read from the
// dictionary and added. Only stacks the cache has no room for are listed
// in out.Paths, frame by frame, each distinct frame once.
func (s *Store) namePaths(txn *badger.Txn, sums *stackSums, out *query.Stacks) error {
	ids := make([]uint32, len(sums.recs))
	for i := range sums.recs {
		ids[i] = sums.recs[i].stack
	}
	ids = sortedIDs(ids)
	leaves := make([]int32, len(ids))
	missing := len(ids)
	var snap pathSnapshot
	if s.paths != nil {
		snap, missing = s.paths.lookup(ids, leaves)
	} else {
		for i := range leaves {
			leaves[i] = -1
		}
	}
	out.Trie, out.TrieFrames = snap.nodes, snap.frames
	missIDs := make([]uint32, 0, missing)
	for i, id := range ids {
		if leaves[i] < 0 {
			missIDs = append(missIDs, id)
		}
	}
	// Nothing to read when the cache named every stack.
	fd, names := &flameDict{}, &locationNames{}
	var err error
	if len(missIDs) > 0 {
		if fd, err = s.loadFlameDict(txn, missIDs); err != nil {
			return fmt.Errorf("storage: read dictionary: %w", err)
		}
		if names, err = nameLocations(fd, out); err != nil {
			return err
		}
	}
	fd.locs, fd.lines, fd.funcs, fd.funcIDs, fd.hasFunc = nil, nil, nil, nil, nil
	// Room for every listed frame, counted, not guessed.
	total := 0
	var stackLocs []uint32
	for _, id := range missIDs {
		j, ok := slices.BinarySearch(fd.stackIDs, id)
		if !ok || !fd.hasStack[j] {
			return fmt.Errorf("storage: unknown stack %d", id)
		}
		total += stackLen(fd.stacks[j])
	}
	total += total / 8
	out.Paths = make([]int32, 0, total)
	out.Lines = make([]int32, 0, total)
	// Each missed stack's frames, listed once.
	spans := make([]frameSpan, len(missIDs))
	for m, id := range missIDs {
		start := int32(len(out.Paths))
		j, _ := slices.BinarySearch(fd.stackIDs, id)
		if stackLocs, err = decodeStack(stackLocs[:0], fd.stacks[j]); err != nil {
			return fmt.Errorf("storage: stack %d: %w", id, err)
		}
		for l := len(stackLocs) - 1; l >= 0; l-- {
			k, _ := slices.BinarySearch(fd.locIDs, stackLocs[l]) // every stack's locations were read
			sp := names.spans[k]
			out.Paths = append(out.Paths, names.frames[sp.start:sp.end]...)
			out.Lines = append(out.Lines, names.lines[sp.start:sp.end]...)
		}
		spans[m] = frameSpan{start, int32(len(out.Paths))}
	}
	fd = nil
	// Into the cache, and from it as nodes too, while its budget lasts.
	missLeaves := make([]int32, len(missIDs))
	for m := range missLeaves {
		missLeaves[m] = -1
	}
	if s.paths != nil && len(missIDs) > 0 {
		named := make([]namedStack, len(missIDs))
		for m, id := range missIDs {
			sp := spans[m]
			named[m] = namedStack{id: id, frames: out.Paths[sp.start:sp.end], lines: out.Lines[sp.start:sp.end]}
		}
		// The stacks the cache named too: if it is full, it starts again
		// with this answer's, these read back from the snapshot.
		var cached []cachedStack
		for k, leaf := range leaves {
			if leaf >= 0 {
				cached = append(cached, cachedStack{id: ids[k], leaf: leaf})
			}
		}
		if grown, added, ok := s.paths.add(snap, out.Frames, named, cached); ok {
			out.Trie, out.TrieFrames = grown.nodes, grown.frames
			missLeaves = added
			if !slices.Contains(added, -1) {
				out.Paths, out.Lines = nil, nil // every stack is a node
			}
		}
	}
	out.Samples = make([]query.StackSample, 0, len(sums.recs))
	for i := range sums.recs {
		r := &sums.recs[i]
		k, _ := slices.BinarySearch(ids, r.stack)
		if leaf := leaves[k]; leaf >= 0 {
			out.Samples = append(out.Samples, query.StackSample{Group: sums.recGroup[i], Leaf: leaf})
			continue
		}
		m, _ := slices.BinarySearch(missIDs, r.stack)
		if leaf := missLeaves[m]; leaf >= 0 {
			out.Samples = append(out.Samples, query.StackSample{Group: sums.recGroup[i], Leaf: leaf})
			continue
		}
		sp := spans[m]
		out.Samples = append(out.Samples, query.StackSample{Start: sp.start, End: sp.end, Group: sums.recGroup[i]})
	}
	return nil
}

// locationNames are each location's frames, caller first, and their
// lines: spans of frames and lines by index in flameDict.locIDs.
type locationNames struct {
	spans         []frameSpan
	frames, lines []int32
}

type frameSpan struct{ start, end int32 }

// nameLocations names every location of fd as report names a profile's:
// a frame per line (inlined calls), by function and mapping, or the
// address when a location has no lines; the frames go to out.Frames.
func nameLocations(fd *flameDict, out *query.Stacks) (*locationNames, error) {
	n := &locationNames{spans: make([]frameSpan, len(fd.locIDs)), frames: make([]int32, 0, len(fd.lines)+len(fd.locIDs)/8)}
	n.lines = make([]int32, 0, cap(n.frames))
	out.Frames = make([]query.Frame, 0, len(fd.funcIDs)+len(fd.locIDs)/8)
	byFunction := make(map[[2]uint32]int32, len(fd.funcIDs)) // (function, mapping) -> frame
	// Frames equal in what they show are one frame, as the path cache has
	// them: otherwise a box could split in two on a cold query only.
	byValue := make(map[query.Frame]int32, len(fd.funcIDs))
	frame := func(f query.Frame) int32 {
		if id, ok := byValue[f]; ok {
			return id
		}
		out.Frames = append(out.Frames, f)
		byValue[f] = int32(len(out.Frames) - 1)
		return int32(len(out.Frames) - 1)
	}
	for k, id := range fd.locIDs {
		l := &fd.locs[k]
		if !l.valid {
			return nil, fmt.Errorf("storage: unknown or unreadable location %d", id)
		}
		binary := ""
		var m mapping
		if l.mappingID != 0 {
			var ok bool
			if m, ok = fd.mappings[l.mappingID]; !ok {
				return nil, fmt.Errorf("storage: unknown mapping %d", l.mappingID)
			}
			binary = m.file
		}
		start := int32(len(n.frames))
		if l.start == l.end {
			n.frames = append(n.frames, frame(query.Frame{Name: fmt.Sprintf("0x%x", l.address+m.start), Binary: binary}))
			n.lines = append(n.lines, 0)
		}
		for i := l.end - 1; i >= l.start; i-- {
			ln := fd.lines[i]
			key := [2]uint32{ln.functionID, l.mappingID}
			f, ok := byFunction[key]
			if !ok {
				fr := query.Frame{Name: "?", Binary: binary}
				if ln.functionID != 0 {
					j, found := slices.BinarySearch(fd.funcIDs, ln.functionID)
					if !found || !fd.hasFunc[j] {
						return nil, fmt.Errorf("storage: unknown function %d", ln.functionID)
					}
					fn := &fd.funcs[j]
					fr.Name, fr.File = cmp.Or(fn.name, "?"), fn.filename
				}
				f = frame(fr)
				byFunction[key] = f
			}
			n.frames = append(n.frames, f)
			n.lines = append(n.lines, int32(min(max(ln.line, 0), 1<<31-1)))
		}
		n.spans[k] = frameSpan{start, int32(len(n.frames))}
	}
	return n, nil
}
