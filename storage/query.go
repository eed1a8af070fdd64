package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/mainmapping"
	"github.com/ember-profiler/ember/schema"
)

func checkRange(from, to time.Time) error {
	if from.IsZero() || to.IsZero() {
		return errors.New("storage: query range needs both a start and an end")
	}
	if to.Before(from) {
		return fmt.Errorf("storage: query range ends (%s) before it starts (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return nil
}

// blockValues is what a read learns of the values of the blocks it read:
// the longest period, and every sample type any of them holds.
type blockValues struct {
	periodNanos int64
	types       typeSet
}

func (v *blockValues) add(h blockHeader) {
	v.periodNanos = max(v.periodNanos, h.periodNanos)
	v.types |= h.types
}

// scan reads the blocks covering [from, to) and passes the records of the
// label sets that match sel to visit (or only the label set ids, if visit
// is nil). The caller holds s.mu for reading.
func (s *Store) scan(ctx context.Context, txn *badger.Txn, from, to int64, sel Selector, visitLabelSet func(uint32), visit func(record)) (blockValues, error) {
	return s.scanPlanned(ctx, txn, s.index.plan(nil, from, to, s.maxLevel()), sel, visitLabelSet, visit)
}

// maxLevel is the coarsest resolution queries may read.
func (s *Store) maxLevel() int {
	if s.opts.noRollups {
		return 0
	}
	return numLevels - 1
}

func (s *Store) scanPlanned(ctx context.Context, txn *badger.Txn, planned []plannedBlock, sel Selector, visitLabelSet func(uint32), visit func(record)) (blockValues, error) {
	vals, _, err := s.scanPlannedUntil(ctx, txn, planned, sel, visitLabelSet, visit, nil)
	return vals, err
}

// scanPlannedUntil is scanPlanned that stops reading when stop, asked
// before each block after the first, says so (never, when it is nil), and
// says how many blocks it read.
func (s *Store) scanPlannedUntil(ctx context.Context, txn *badger.Txn, planned []plannedBlock, sel Selector, visitLabelSet func(uint32), visit func(record), stop func() bool) (blockValues, int, error) {
	want := s.labelSetFilter(sel, visitLabelSet)
	var vals blockValues
	for i, pb := range planned {
		if i%8 == 0 {
			if err := ctx.Err(); err != nil {
				return vals, i, err
			}
		}
		if i > 0 && stop != nil && stop() {
			return vals, i, nil
		}
		h, err := readBlock(txn, pb, want, visit)
		if err != nil {
			return vals, i, fmt.Errorf("storage: read: %w", err)
		}
		vals.add(h)
	}
	return vals, len(planned), nil
}

// mergePlanned reads blocks and merges their records (of the label sets
// that sel matches), sorted by (label set, stack).
func (s *Store) mergePlanned(ctx context.Context, txn *badger.Txn, planned []plannedBlock, sel Selector) (recs []record, vals blockValues, err error) {
	want := s.labelSetFilter(sel, nil)
	var block, merged []record
	for _, pb := range planned {
		if err := ctx.Err(); err != nil {
			return nil, vals, err
		}
		block = block[:0]
		h, err := readBlock(txn, pb, want, func(r record) { block = append(block, r) })
		if err != nil {
			return nil, vals, fmt.Errorf("storage: read: %w", err)
		}
		if !isSorted(block) { // blocks are written sorted; never trust it blindly
			acc := make(sums)
			for _, r := range block {
				acc.add(r)
			}
			block = acc.records()
		}
		vals.add(h)
		if n := len(recs) + len(block); cap(merged) < n {
			// Room for the next blocks' new keys too, but not twice the
			// size: this buffer and the last merge's are both alive here.
			merged = make([]record, 0, n+n/4)
		}
		merged = mergeRecords(merged[:0], recs, block)
		recs, merged = merged, recs
	}
	return recs, vals, nil
}

// labelSetFilter returns a function that says whether a label set matches
// sel, evaluating each label set once, and calls visitLabelSet (if not nil)
// the first time it sees one that matches. The empty selector matches
// every label set without reading it; others read label sets in runs of
// neighbouring ids (see readAhead).
func (s *Store) labelSetFilter(sel Selector, visitLabelSet func(uint32)) func(uint32) bool {
	if sel.MatchesAll() && visitLabelSet == nil {
		return func(uint32) bool { return true }
	}
	type state struct{ matches, seen bool }
	evaluated := make(map[uint32]state)
	return func(id uint32) bool {
		st, ok := evaluated[id]
		if st.seen {
			return st.matches
		}
		if !ok {
			st.matches = sel.MatchesAll()
			if !st.matches {
				_ = s.dict.readAhead(kindLabelSet, id, labelSetReadAhead, func(lid uint32, enc string) {
					if _, done := evaluated[lid]; !done {
						ls, err := decodeLabelSet(enc)
						evaluated[lid] = state{matches: err == nil && selectorMatches(sel, ls)}
					}
				}) // an unreadable label set matches nothing
				st = evaluated[id]
			}
		}
		st.seen = true
		evaluated[id] = st
		if st.matches && visitLabelSet != nil {
			visitLabelSet(id)
		}
		return st.matches
	}
}

// labelSetReadAhead is how many label sets a selector reads at a time.
const labelSetReadAhead = 256

// Query returns the merged profile of the samples in [From, To) matching
// the selector: a valid pprof profile with the sample types the blocks
// read hold, in schema.Known order (samples/count and cpu/nanoseconds for
// CPU profiles, and when nothing was read), its samples labelled comm, pid
// (numeric), exe, cgroup, container and the host labels.
func (s *Store) Query(ctx context.Context, q ProfileQuery) (*profile.Profile, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	planned := s.index.plan(nil, q.From.UnixNano(), q.To.UnixNano(), s.maxLevel())
	recs, vals, err := s.mergePlanned(ctx, txn, planned, q.Selector)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.buildProfile(recs, vals, q.From, q.To, true)
}

// StackProfile is Query without sample labels: one sample per distinct
// stack, summed over the label sets the selector matches. It is what flame
// graphs, top tables and diffs need, and it is cheaper than Query: records
// are summed per stack as they are read instead of merged in order, and the
// profile has one sample per stack rather than one per (process, stack).
func (s *Store) StackProfile(ctx context.Context, q ProfileQuery) (*profile.Profile, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	// Stack ids are dense, so sums indexed by id beat a map.
	type sum struct {
		rec  record
		seen bool
	}
	sums := make([]sum, s.dict.stacks.last+1)
	var seen []uint32
	vals, err := s.scan(ctx, txn, q.From.UnixNano(), q.To.UnixNano(), q.Selector, nil, func(r record) {
		if int(r.stack) >= len(sums) { // not in the dictionary: buildProfile says so
			sums = append(sums, make([]sum, int(r.stack)+1-len(sums))...)
		}
		acc := &sums[r.stack]
		if !acc.seen {
			acc.seen = true
			seen = append(seen, r.stack)
		}
		acc.rec.add(&r)
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(seen)
	recs := make([]record, len(seen))
	for i, id := range seen {
		recs[i] = sums[id].rec
		recs[i].labelSet, recs[i].stack = 0, id
	}
	return s.buildProfile(recs, vals, q.From, q.To, false)
}

// buildProfile turns records into a pprof profile, creating each location,
// function and mapping once. The caller holds s.mu for reading.
func (s *Store) buildProfile(recs []record, vals blockValues, from, to time.Time, withLabels bool) (*profile.Profile, error) {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	types := vals.types.orCPU()
	idx := types.indexes()
	p := &profile.Profile{
		SampleType:        schema.ValueTypes(types.sampleTypes()...),
		DefaultSampleType: types.defaultType(), // Query and StackProfile: the store's
		PeriodType:        schema.PeriodType.ValueType(),
		Period:            vals.periodNanos,
		TimeNanos:         from.UnixNano(),
		DurationNanos:     to.Sub(from).Nanoseconds(),
	}
	b, err := s.newProfileBuilder(txn, p, recs, withLabels)
	if err != nil {
		return nil, err
	}
	if withLabels {
		recs = b.knownLabelSets(recs)
	}
	// One allocation each for samples and values; samples of the same
	// stack share its location slice (pprof does not modify them).
	p.Sample = make([]*profile.Sample, len(recs))
	samples := make([]profile.Sample, len(recs))
	n := len(idx)
	values := make([]int64, n*len(recs))
	stacks := make(map[uint32][]*profile.Location)
	var ids []uint32
	for i, r := range recs {
		locs, ok := stacks[r.stack]
		if !ok {
			var err error
			enc, known := b.dict.stacks.get(r.stack)
			if !known {
				return nil, fmt.Errorf("storage: unknown stack %d", r.stack)
			}
			ids, err = decodeStack(ids[:0], enc)
			if err != nil {
				return nil, fmt.Errorf("storage: stack %d: %w", r.stack, err)
			}
			locs = make([]*profile.Location, len(ids))
			for j, id := range ids {
				if locs[j], err = b.location(id); err != nil {
					return nil, err
				}
			}
			stacks[r.stack] = locs
		}
		smp := &samples[i]
		smp.Location = locs
		smp.Value = values[n*i : n*i+n : n*i+n]
		for j, t := range idx {
			smp.Value[j] = r.value(t)
		}
		if withLabels {
			l := b.sampleLabels(r.labelSet)
			smp.Label, smp.NumLabel = l.str, l.num
		}
		p.Sample[i] = smp
	}
	if withLabels {
		mainmapping.Place(p)
	}
	return p, nil
}

// newProfileBuilder reads the dictionary entries that records need.
func (s *Store) newProfileBuilder(txn *badger.Txn, p *profile.Profile, recs []record, withLabels bool) (profileBuilder, error) {
	stacks, labelSets := recordIDs(recs, withLabels)
	qd, err := s.loadQueryDict(txn, stacks, labelSets)
	if err != nil {
		return profileBuilder{}, fmt.Errorf("storage: read dictionary: %w", err)
	}
	return profileBuilder{
		dict: qd, p: p,
		locations: make([]*profile.Location, s.dict.locations.last+1),
		functions: make([]*profile.Function, s.dict.functions.last+1),
		mappings:  make(map[uint32]*profile.Mapping),
		labels:    make(map[uint32]sampleLabels),
	}, nil
}

// knownLabelSets drops the records of label sets that the dictionary does
// not hold (a damaged or repaired store can have them), as the selector
// did while the dictionary was held in memory whole. It needs the label
// sets read (withLabels).
func (b *profileBuilder) knownLabelSets(recs []record) []record {
	for i, r := range recs {
		if _, ok := b.dict.labelSets.get(r.labelSet); ok {
			continue
		}
		kept := slices.Clone(recs[:i])
		for _, r := range recs[i+1:] {
			if _, ok := b.dict.labelSets.get(r.labelSet); ok {
				kept = append(kept, r)
			}
		}
		return kept
	}
	return recs
}

type profileBuilder struct {
	dict *queryDict
	p    *profile.Profile
	// locations and functions are indexed by dictionary id: a query looks
	// them up per frame of every stack, and map probes were a third of a
	// 1-hour query's profile building.
	locations []*profile.Location
	functions []*profile.Function
	mappings  map[uint32]*profile.Mapping
	labels    map[uint32]sampleLabels
}

// sampleLabels are shared by every sample of a label set: pprof treats
// label maps as read-only.
type sampleLabels struct {
	str map[string][]string
	num map[string][]int64
}

func (b *profileBuilder) sampleLabels(id uint32) sampleLabels {
	if l, ok := b.labels[id]; ok {
		return l
	}
	l := sampleLabels{str: make(map[string][]string)}
	ls, _ := b.dict.labelSets.get(id)
	for _, pair := range ls {
		if pair.name == schema.LabelPID {
			if pid, err := strconv.ParseInt(pair.value, 10, 64); err == nil {
				l.num = map[string][]int64{schema.LabelPID: {pid}}
				continue
			}
		}
		l.str[pair.name] = []string{pair.value}
	}
	b.labels[id] = l
	return l
}

func (b *profileBuilder) location(id uint32) (*profile.Location, error) {
	if int(id) < len(b.locations) && b.locations[id] != nil {
		return b.locations[id], nil
	}
	l, ok := b.dict.locations.get(id)
	if !ok {
		return nil, fmt.Errorf("storage: unknown or unreadable location %d", id)
	}
	var err error
	loc := &profile.Location{ID: uint64(len(b.p.Location) + 1), Address: l.address, IsFolded: l.folded}
	if l.mappingID != 0 {
		m, err := b.mapping(l.mappingID)
		if err != nil {
			return nil, err
		}
		loc.Mapping = m
		loc.Address += m.Start
	}
	loc.Line = make([]profile.Line, 0, len(l.lines))
	for _, ln := range l.lines {
		line := profile.Line{Line: ln.line, Column: ln.column}
		if ln.functionID != 0 {
			if line.Function, err = b.function(ln.functionID); err != nil {
				return nil, err
			}
		}
		loc.Line = append(loc.Line, line)
	}
	b.p.Location = append(b.p.Location, loc)
	b.locations[id] = loc
	return loc, nil
}

func (b *profileBuilder) function(id uint32) (*profile.Function, error) {
	if int(id) < len(b.functions) && b.functions[id] != nil {
		return b.functions[id], nil
	}
	f, ok := b.dict.functions.get(id)
	if !ok {
		return nil, fmt.Errorf("storage: unknown function %d", id)
	}
	fn := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: f.name, SystemName: f.systemName, Filename: f.filename, StartLine: f.startLine}
	b.p.Function = append(b.p.Function, fn)
	b.functions[id] = fn
	return fn, nil
}

func (b *profileBuilder) mapping(id uint32) (*profile.Mapping, error) {
	if m, ok := b.mappings[id]; ok {
		return m, nil
	}
	sm, ok := b.dict.mappings.get(id)
	if !ok {
		return nil, fmt.Errorf("storage: unknown mapping %d", id)
	}
	m := &profile.Mapping{
		ID: uint64(len(b.p.Mapping) + 1), Start: sm.start, Limit: sm.limit, Offset: sm.offset, File: sm.file, BuildID: sm.buildID,
		HasFunctions: sm.flags&1 != 0, HasFilenames: sm.flags&2 != 0, HasLineNumbers: sm.flags&4 != 0, HasInlineFrames: sm.flags&8 != 0,
	}
	b.p.Mapping = append(b.p.Mapping, m)
	b.mappings[id] = m
	return m, nil
}

// labelSetsIn returns the label sets with samples in [from, to).
func (s *Store) labelSetsIn(ctx context.Context, from, to time.Time) ([]labelSet, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	var sets []labelSet
	labels := s.dict.newLabelSetReader()
	_, err := s.scan(ctx, txn, from.UnixNano(), to.UnixNano(), Selector{}, func(id uint32) {
		sets = append(sets, labels.get(id))
	}, nil)
	return sets, err
}

// LabelNames returns the sorted names of the labels of samples in [from, to).
func (s *Store) LabelNames(ctx context.Context, from, to time.Time) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	sets, err := s.labelSetsIn(ctx, from, to)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	for _, ls := range sets {
		for _, p := range ls {
			seen[p.name] = true
		}
	}
	return sortedKeys(seen), nil
}

// LabelValues returns the sorted values of a label on samples in [from, to).
func (s *Store) LabelValues(ctx context.Context, name string, from, to time.Time) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	sets, err := s.labelSetsIn(ctx, from, to)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	for _, ls := range sets {
		if v := ls.get(name); v != "" {
			seen[v] = true
		}
	}
	return sortedKeys(seen), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
