package storage

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ember-profiler/ember/storage/query"
)

// FlameStacks is what a flame graph of q needs, without a pprof profile:
// the matching samples summed per stack, and per value of label groupBy
// when it is not "", with each distinct frame named once. A profile holds
// a location, function and label map per distinct one and a sample per
// (process, stack); on a churning host's store that was most of a flame
// graph request's memory. Blocks are read newest first; past q.ReadBy or
// q.MaxStacks the reading stops (after at least one block) and the answer
// covers only [CoveredFrom, To).
func (s *Store) FlameStacks(ctx context.Context, q ProfileQuery, groupBy string) (*query.Stacks, error) {
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

	sums := newStackSums(s.dict, txn, groupBy)
	sums.cache = s.paths
	defer sums.close()
	planned := s.index.plan(nil, q.From.UnixNano(), q.To.UnixNano(), s.maxLevel())
	// Newest first: when the reading must stop early, what was read is the
	// end of the range, which is what an incident asks about.
	slices.SortFunc(planned, func(a, b plannedBlock) int { return cmp.Compare(b.ref.startNanos, a.ref.startNanos) })
	maxStacks := q.MaxStacks
	if maxStacks == 0 {
		maxStacks = query.DefaultMaxStacks
	}
	var stoppedBy string
	stop := func() bool {
		switch {
		case !q.ReadBy.IsZero() && time.Now().After(q.ReadBy):
			stoppedBy = "time"
		case maxStacks > 0 && len(sums.recs) > maxStacks:
			stoppedBy = "stacks"
		}
		return stoppedBy != ""
	}
	vals, read, err := s.scanPlannedUntil(ctx, txn, planned, q.Selector, nil, sums.add, stop)
	if err != nil {
		return nil, err
	}
	var coveredFrom time.Time
	if read < len(planned) {
		coveredFrom = time.Unix(0, planned[read-1].ref.startNanos)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	types := vals.types.orCPU()
	out := &query.Stacks{DefaultSampleType: types.defaultType(), Groups: sums.groups, CoveredFrom: coveredFrom}
	if !coveredFrom.IsZero() {
		out.StoppedBy = stoppedBy
	}
	for _, st := range types.sampleTypes() {
		out.SampleTypes = append(out.SampleTypes, query.ValueType{Type: st.Type, Unit: st.Unit})
	}
	idx := types.indexes()
	values := func(r *record) []int64 {
		v := make([]int64, len(idx))
		for j, t := range idx {
			v[j] = r.value(t)
		}
		return v
	}
	out.Details = sums.detailRows(values)
	s.paths.addLabelSets(sums.readSets)
	// The label sets' sums are in the rows: free them before the stacks
	// are named, which is when a day's query holds the most.
	sums.readSets = nil
	sums.sets, sums.setLabels, sums.byLabelSet, sums.head, sums.next = nil, nil, nil, pagedIDs{}, nil
	if err := s.namePaths(txn, sums, out); err != nil {
		return nil, err
	}
	out.Values = make([]int64, 0, len(idx)*len(sums.recs))
	for i := range sums.recs {
		for _, t := range idx {
			out.Values = append(out.Values, sums.recs[i].value(t))
		}
	}
	return out, nil
}

// stackSums sums records per (group, stack) as a scan reads them.
type stackSums struct {
	groupBy string
	// detail is the index of groupBy in query.GroupDetailLabels, -1 for
	// none: the label sets of such a grouping are kept in the path cache.
	detail int
	dict   *dictionary
	txn    *badger.Txn
	// labelSets reads label sets in runs, one iterator for the query:
	// opening one per run was a fifth of a day's label set reading.
	labelSets *badger.Iterator
	// recs are the sums, recGroup each one's group; head[stack]-1 is the
	// last sum of a stack (-1: none) and next the one before it.
	recs     []record
	recGroup []int32
	head     pagedIDs
	next     []int32
	groups   []string
	groupIDs map[string]int32
	// byLabelSet is the index in sets of each label set read, -1 for one
	// not stored, whose records are left out as Query leaves them out.
	byLabelSet map[uint32]int32
	sets       []labelSetSum
	// setLabels holds each label set's ids of GroupDetailLabels' values.
	setLabels []int32
	// values are the label values kept, each once, and valueIDs their
	// index: label sets hold ids, which the hover's sums are keyed by.
	values   []string
	valueIDs map[string]int32
	// last is the index in sets of the record before's label set (lastID).
	last   int32
	lastID uint32
	// cache holds label sets' detail values read by earlier queries;
	// readSets are those this query read from the dictionary, to add.
	cache    *pathCache
	readSets []labelSetDetails
}

// labelSetSum is a label set as a grouped sum reads it: its values of the
// grouping label and of the detail labels, and, once a record of it is
// read, its group and the sum of its records. A day of a churning host
// has a label set per process: a struct each in one slice, where
// pointers to a struct, a detail and a slice each were 26 MB.
type labelSetSum struct {
	rec    record
	labels int32 // setLabels[labels:labels+len(GroupDetailLabels)]
	value  int32 // of the grouping label; 0 for none ("")
	group  int32
	seen   bool
}

func newStackSums(d *dictionary, txn *badger.Txn, groupBy string) *stackSums {
	return &stackSums{groupBy: groupBy, detail: slices.Index(query.GroupDetailLabels, groupBy), dict: d, txn: txn,
		groupIDs: make(map[string]int32), byLabelSet: make(map[uint32]int32),
		values: []string{""}, valueIDs: map[string]int32{"": 0}, last: -1}
}

func (a *stackSums) add(r record) {
	group := int32(-1)
	if a.groupBy != "" {
		// A block's records come in label set order: look each up once.
		li := a.last
		if li < 0 || r.labelSet != a.lastID {
			var ok bool
			if li, ok = a.byLabelSet[r.labelSet]; !ok {
				li = a.labelSet(r.labelSet)
			}
			a.last, a.lastID = li, r.labelSet
		}
		if li < 0 {
			return
		}
		ls := &a.sets[li]
		if !ls.seen {
			a.first(ls)
		}
		group = ls.group
		ls.rec.add(&r)
	}
	// The sums of a stack, one per group it is seen in, are chained from
	// its slot: a slice by stack id, where a map probe per record was most
	// of a day-long query's time.
	i := a.head.get(r.stack) - 1
	for i >= 0 && a.recGroup[i] != group {
		i = a.next[i]
	}
	if i < 0 {
		i = int32(len(a.recs))
		a.recs = append(a.recs, record{stack: r.stack})
		a.recGroup = append(a.recGroup, group)
		a.next = append(a.next, a.head.get(r.stack)-1)
		a.head.set(r.stack, i+1)
	}
	a.recs[i].add(&r)
}

// labelSet reads label set id, and the ones after it in a run (records
// come in label set order), keeping of each only the labels a grouped
// flame graph shows: the label sets of a day of a churning host, kept
// whole, were the largest part of such a query's memory. It returns its
// index in a.sets, -1 for a label set not stored or unreadable.
func (a *stackSums) labelSet(id uint32) int32 {
	if a.detail >= 0 {
		if d, ok := a.cache.labelSet(id); ok {
			a.keepDetails(d)
			return a.byLabelSet[id]
		}
	}
	if enc, ok := a.dict.cache.get(kindLabelSet, id); ok {
		a.keepLabelSet(id, enc)
	} else {
		if a.labelSets == nil {
			a.labelSets = a.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDict, kindLabelSet}, PrefetchValues: false})
		}
		it := a.labelSets
		for n, seek := labelSetReadAhead, true; n > 0; n-- {
			if seek {
				it.Seek(dictKey(kindLabelSet, id))
				seek = false
			} else {
				it.Next()
			}
			if !it.Valid() {
				break
			}
			item := it.Item()
			lid := binary.BigEndian.Uint32(item.Key()[2:])
			if item.Value(func(v []byte) error { a.keepLabelSet(lid, string(v)); return nil }) != nil {
				break // an error reads as a label set not stored
			}
		}
	}
	li, ok := a.byLabelSet[id]
	if !ok {
		a.byLabelSet[id], li = -1, -1
	}
	return li
}

// keepLabelSet reads the labels of label set id that the graph shows from
// its encoding, in place; a corrupt one is left out, as not stored.
func (a *stackSums) keepLabelSet(id uint32, enc string) {
	if _, done := a.byLabelSet[id]; done {
		return
	}
	start := len(a.setLabels)
	sum := labelSetSum{labels: int32(start)}
	a.setLabels = append(a.setLabels, make([]int32, len(query.GroupDetailLabels))...)
	labels := a.setLabels[start:]
	for rest := enc; len(rest) > 0; {
		name, afterName, ok := cutString(rest)
		value, afterValue, ok2 := cutString(afterName)
		if !ok || !ok2 {
			a.setLabels = a.setLabels[:start]
			return
		}
		rest = afterValue
		if name == a.groupBy {
			sum.value = a.intern(value)
		}
		if i := slices.Index(query.GroupDetailLabels, name); i >= 0 {
			labels[i] = a.intern(value)
		}
	}
	a.byLabelSet[id] = int32(len(a.sets))
	a.sets = append(a.sets, sum)
	if a.cache != nil && a.detail >= 0 {
		d := labelSetDetails{id: id}
		for i := range d.values {
			d.values[i] = a.values[labels[i]]
		}
		a.readSets = append(a.readSets, d)
	}
}

// keepDetails keeps a label set from the values the path cache holds.
func (a *stackSums) keepDetails(d labelSetDetails) {
	start := len(a.setLabels)
	for _, v := range d.values {
		a.setLabels = append(a.setLabels, a.intern(v))
	}
	a.byLabelSet[d.id] = int32(len(a.sets))
	a.sets = append(a.sets, labelSetSum{labels: int32(start), value: a.setLabels[start+a.detail]})
}

func (a *stackSums) close() {
	if a.labelSets != nil {
		a.labelSets.Close()
		a.labelSets = nil
	}
}

// intern returns the id of v in a.values, where a copy of it is added the
// first time: a day's label sets repeat each comm and exe thousands of
// times, and v is a substring of an entry that is not to be kept.
func (a *stackSums) intern(v string) int32 {
	if id, ok := a.valueIDs[v]; ok {
		return id
	}
	id := int32(len(a.values))
	a.values = append(a.values, strings.Clone(v))
	a.valueIDs[a.values[id]] = id
	return id
}

// first gives label set ls, at its first record, its group.
func (a *stackSums) first(ls *labelSetSum) {
	ls.seen, ls.group = true, -1
	if ls.value != 0 {
		v := a.values[ls.value]
		g, ok := a.groupIDs[v]
		if !ok {
			g = int32(len(a.groups))
			a.groupIDs[v] = g
			a.groups = append(a.groups, v)
		}
		ls.group = g
	}
}
