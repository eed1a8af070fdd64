package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage/query"
)

// seriesLookback is how far before From a query looks for an interval that
// started earlier but reaches into the range: the longest interval the
// daemon writes.
const seriesLookback = int64(time.Hour)

// Series returns CPU use in cores per step over [From, To): one series for
// the selection, or one per value of GroupBy (the busiest Limit of them,
// sorted by value, then one summing the rest), each with a point per step.
//
// Grouped, it reads the range twice: first each group's total, from the
// coarsest blocks (an hour's roll-up is as good as its intervals for a
// total), then the points of the busiest groups from blocks no coarser than
// the step. Memory is O(groups) for the totals and O(limit × points) for
// the points, never O(groups × points).
func (s *Store) Series(ctx context.Context, q SeriesQuery) ([]Series, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if q.Step <= 0 {
		return nil, fmt.Errorf("storage: series step must be positive, got %s", q.Step)
	}
	steps := (q.To.Sub(q.From) + q.Step - 1) / q.Step
	if steps > MaxSeriesPoints {
		return nil, fmt.Errorf("storage: series of %s in steps of %s has %d points, more than %d: use a longer step",
			q.To.Sub(q.From), q.Step, steps, MaxSeriesPoints)
	}
	if q.GroupBy != "" && !schema.ValidLabelName(q.GroupBy) {
		return nil, fmt.Errorf("storage: group by %q: not a label name", q.GroupBy)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()

	g := stepGrid{from: q.From.UnixNano(), to: q.To.UnixNano(), step: q.Step.Nanoseconds(), n: int(steps)}
	limit := SeriesLimit(g.n)
	if q.Limit > 0 {
		limit = min(limit, q.Limit)
	}
	value, err := seriesValueIndex(q.SampleType)
	if err != nil {
		return nil, err
	}
	acc := &seriesAccumulator{g: g, limit: limit, groupBy: q.GroupBy, labels: s.dict.newLabelSetReader(), value: value,
		cache: s.paths, detail: slices.Index(query.GroupDetailLabels, q.GroupBy)}
	if q.GroupBy != "" {
		planned := s.index.plan(nil, g.from, g.to, s.maxLevel())
		if err := s.groupTotals(ctx, txn, planned, q.Selector, acc); err != nil {
			return nil, err
		}
		acc.keepTop()
	} else {
		acc.limit = 1
	}
	if err := s.readSpread(ctx, txn, s.seriesPlan(g), q.Selector, acc); err != nil {
		return nil, err
	}
	return acc.series(), nil
}

// stepGrid is a series' time axis, in nanoseconds.
type stepGrid struct {
	from, to, step int64
	n              int
}

// seriesPlan returns the blocks whose time may overlap the grid: those
// starting in the range, at levels no coarser than the step (a roll-up
// spans its whole bucket, so a coarser one would flatten the steps inside
// it), and the last interval starting before the range, which may reach
// into it.
func (s *Store) seriesPlan(g stepGrid) []plannedBlock {
	level := 0
	if !s.opts.noRollups {
		for l := numLevels - 1; l > 0; l-- {
			if int64(levelDurations[l]) <= g.step {
				level = l
				break
			}
		}
	}
	var planned []plannedBlock
	if i := s.index.search(0, g.from); i > 0 {
		if ref := s.index[0][i-1]; ref.startNanos >= g.from-seriesLookback {
			planned = append(planned, plannedBlock{0, ref})
		}
	}
	return s.index.plan(planned, g.from, g.to, level)
}

// spread adds cpu, spent evenly over [start, end), to the steps it overlaps.
// A block without a span counts at its start.
func (g stepGrid) spread(points []float64, start, end int64, cpu float64) {
	if end <= start {
		if start >= g.from && start < g.to {
			points[(start-g.from)/g.step] += cpu
		}
		return
	}
	lo, hi := max(start, g.from), min(end, g.to)
	if lo >= hi {
		return
	}
	perNano := cpu / float64(end-start)
	for i := (lo - g.from) / g.step; i < int64(g.n); i++ {
		stepStart := g.from + i*g.step
		if stepStart >= hi {
			break
		}
		points[i] += perNano * float64(min(hi, stepStart+g.step)-max(lo, stepStart))
	}
}

// seriesAccumulator gathers a series query's answer: first each group's
// total, then points for the groups that keepTop chose (a slot each) and
// one more slot, other, for the rest.
type seriesAccumulator struct {
	g       stepGrid
	limit   int
	groupBy string
	labels  *labelSetReader
	// cache holds label sets' values of query.GroupDetailLabels that
	// grouped flame graphs read; detail is groupBy's index there (-1:
	// none), to look a label set up there before the dictionary.
	cache  *pathCache
	detail int
	value  int // the position in schema.Known of the type summed

	groups map[string]int // group value -> index in totals (first pass)
	totals []float64

	slotOf map[string]int // group value -> slot
	values []string       // per slot
	points [][]float64    // per slot: CPU nanoseconds per step
	other  []float64      // the groups past the limit, summed; nil if none
	folded int            // how many groups other sums

	block   []float64 // per slot (-1: other, last): CPU of the block being read
	touched []int
}

// keepTop gives the limit busiest groups of the first pass a slot each,
// and sends the rest to other.
func (a *seriesAccumulator) keepTop() {
	values := make([]string, 0, len(a.groups))
	for v := range a.groups {
		values = append(values, v)
	}
	slices.SortFunc(values, func(x, y string) int {
		return cmp.Or(cmp.Compare(a.totals[a.groups[y]], a.totals[a.groups[x]]), cmp.Compare(x, y))
	})
	k := min(a.limit, len(values))
	for _, v := range values[:k] {
		a.newSlot(v)
	}
	for _, v := range values[k:] {
		a.slotOf[v] = -1
	}
	a.folded = len(values) - k
	a.groups, a.totals = nil, nil
}

func (a *seriesAccumulator) newSlot(value string) int {
	if a.slotOf == nil {
		a.slotOf = make(map[string]int)
	}
	a.slotOf[value] = len(a.values)
	a.values = append(a.values, value)
	a.points = append(a.points, make([]float64, a.g.n))
	return len(a.values) - 1
}

// slot returns where a group's points go: its slot, or -1 for other. A
// group the first pass did not see (its interval started before the
// range, or there was no first pass) gets a slot while there is room.
func (a *seriesAccumulator) slot(value string) int {
	if i, ok := a.slotOf[value]; ok {
		return i
	}
	if len(a.values) < a.limit {
		return a.newSlot(value)
	}
	a.slotOf[value] = -1
	a.folded++
	return -1
}

// add counts a record's CPU in the block being read.
func (a *seriesAccumulator) add(slot int, cpuNanos int64) {
	if cpuNanos <= 0 {
		return
	}
	i := slot + 1 // other at 0
	for i >= len(a.block) {
		a.block = append(a.block, 0)
	}
	if a.block[i] == 0 {
		a.touched = append(a.touched, i)
	}
	a.block[i] += float64(cpuNanos)
}

// endBlock spreads the block's CPU, per slot, over the time it spans.
func (a *seriesAccumulator) endBlock(start, end int64) {
	for _, i := range a.touched {
		pts := a.other
		if i > 0 {
			pts = a.points[i-1]
		} else if pts == nil {
			a.other = make([]float64, a.g.n)
			pts = a.other
		}
		a.g.spread(pts, start, end, a.block[i])
		a.block[i] = 0
	}
	a.touched = a.touched[:0]
}

// series returns the points as series sorted by group value, then other.
func (a *seriesAccumulator) series() []Series {
	order := make([]int, len(a.values))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(a.values[x], a.values[y]) })
	var out []Series
	for _, slot := range order {
		ser := Series{Labels: map[string]string{}, Points: a.seriesPoints(a.points[slot])}
		if a.groupBy != "" && a.values[slot] != "" {
			ser.Labels[a.groupBy] = a.values[slot]
		}
		out = append(out, ser)
	}
	if a.folded > 0 {
		other := a.other
		if other == nil { // the groups past the limit spent nothing in the range
			other = make([]float64, a.g.n)
		}
		out = append(out, Series{Labels: map[string]string{}, Points: a.seriesPoints(other), Folded: a.folded})
	}
	return out
}

func (a *seriesAccumulator) seriesPoints(cpu []float64) []Point {
	pts := make([]Point, a.g.n)
	for i := range pts {
		start := a.g.from + int64(i)*a.g.step
		length := min(a.g.step, a.g.to-start)
		pts[i] = Point{Time: time.Unix(0, start), Cores: cpu[i] / float64(length)}
	}
	return pts
}

// groupValue is a label set's value of the grouping label ("" when
// ungrouped).
func (a *seriesAccumulator) groupValue(id uint32) string {
	if a.groupBy == "" {
		return ""
	}
	if a.detail >= 0 {
		if d, ok := a.cache.labelSet(id); ok {
			return d.values[a.detail]
		}
	}
	return a.labels.get(id).get(a.groupBy)
}

// groupTotals sums the CPU of each group in planned blocks: the first pass.
func (s *Store) groupTotals(ctx context.Context, txn *badger.Txn, planned []plannedBlock, sel Selector, acc *seriesAccumulator) error {
	acc.groups = make(map[string]int)
	groupOf := make(map[uint32]int) // label set -> index in totals
	_, err := s.scanPlanned(ctx, txn, planned, sel, func(id uint32) {
		v := acc.groupValue(id)
		gi, ok := acc.groups[v]
		if !ok {
			gi = len(acc.totals)
			acc.groups[v] = gi
			acc.totals = append(acc.totals, 0)
		}
		groupOf[id] = gi
	}, func(r record) {
		acc.totals[groupOf[r.labelSet]] += float64(r.value(acc.value))
	})
	return err
}

// readSpread reads planned blocks into acc's slots, spreading each block's
// CPU over the time it spans: the second pass.
func (s *Store) readSpread(ctx context.Context, txn *badger.Txn, planned []plannedBlock, sel Selector, acc *seriesAccumulator) error {
	slotOf := make(map[uint32]int) // label set -> slot
	want := s.labelSetFilter(sel, func(id uint32) {
		slotOf[id] = acc.slot(acc.groupValue(id))
	})
	for i, pb := range planned {
		if i%8 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h, err := readBlock(txn, pb, want, func(r record) {
			acc.add(slotOf[r.labelSet], r.value(acc.value))
		})
		if err != nil {
			return fmt.Errorf("storage: read: %w", err)
		}
		acc.endBlock(h.startNanos, h.startNanos+h.durationNanos)
	}
	return nil
}

// seriesValueIndex is the position in schema.Known of the sample type a
// series sums: CPU time by default.
func seriesValueIndex(sampleType string) (int, error) {
	if sampleType == "" {
		return schema.CPUIndex, nil
	}
	for i, k := range schema.Known {
		if k.Type == sampleType {
			return i, nil
		}
	}
	return 0, fmt.Errorf("storage: series of sample type %q: not one Ember knows", sampleType)
}
