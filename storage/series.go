package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// SeriesQuery asks for CPU use over [From, To) in steps of Step, one series,
// or one per value of the label GroupBy. Each stored block's CPU is spread
// evenly over the time it spans, and each step gets the share it overlaps:
// an interval longer than the step (the first one after a start, or any at a
// fine step) is not piled into the step that holds its start.
type SeriesQuery struct {
	From, To time.Time
	Step     time.Duration
	Selector Selector
	GroupBy  string
	// Limit is how many groups get a series of their own, the busiest over
	// the range; the rest are summed into one series (Series.Folded). Zero
	// or more than the value budget allows means as many as it allows.
	Limit int
}

// Point is CPU use over one step, in cores: cpu nanoseconds / the step's
// nanoseconds (the last step's length within the range, if it is shorter).
type Point struct {
	Time  time.Time
	Cores float64
}

// Series is CPU use over time for one label set: empty for the whole
// selection, or {GroupBy: value}; samples without the label have value "".
// A series with Folded > 0 has no labels: it sums that many groups, the
// least busy ones past the query's Limit.
type Series struct {
	Labels map[string]string
	Points []Point
	Folded int
}

// MaxSeriesPoints bounds a series' steps. The web API's point limit is this
// one, so that every step it accepts the store can answer.
const MaxSeriesPoints = 10_000

// MaxSeriesValues bounds the points of one series answer, all series
// together: what a query holds in memory is this many float64s however many
// groups the range has (a day of a churning host has tens of thousands of
// pids), and the JSON answer stays a few megabytes.
const MaxSeriesValues = 250_000

// SeriesLimit is how many groups may have their own series at a given
// number of points, besides the one that sums the rest.
func SeriesLimit(points int) int {
	return max(1, MaxSeriesValues/max(points, 1)-1)
}

// seriesLookback is how far before From a query looks for an interval that
// started earlier but reaches into the range: the longest interval the
// daemon writes.
const seriesLookback = int64(time.Hour)

// Series returns CPU use in cores per step over [From, To): one series for
// the selection, or one per value of GroupBy (the busiest Limit of them,
// sorted by value, then one summing the rest), each with a point per step.
//
// Grouped, it reads the blocks twice when there are more groups than the
// limit: first for each group's total, then for the points of the busiest
// ones. Memory is O(groups) for the totals and O(limit × points) for the
// points, never O(groups × points).
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
	if q.GroupBy != "" && !validLabelName(q.GroupBy) {
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
	planned := s.seriesPlan(g)
	limit := SeriesLimit(g.n)
	if q.Limit > 0 {
		limit = min(limit, q.Limit)
	}
	if q.GroupBy == "" {
		limit = 1
	}
	acc := newGroupAccumulator(g, limit)
	if err := s.readSpread(ctx, txn, planned, q.Selector, q.GroupBy, acc); err != nil {
		return nil, err
	}
	if len(acc.values) > limit {
		// Too many groups to keep all their points: keep the busiest.
		acc.keepTop(limit)
		if err := s.readSpread(ctx, txn, planned, q.Selector, q.GroupBy, acc); err != nil {
			return nil, err
		}
	}
	return acc.series(q.GroupBy), nil
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

// spread adds cpu, spent evenly over [start, end), to the steps it overlaps
// (nil points: to none) and returns the part that falls in the range. A
// block without a span counts at its start.
func (g stepGrid) spread(points []float64, start, end int64, cpu float64) float64 {
	if end <= start {
		if start < g.from || start >= g.to {
			return 0
		}
		if points != nil {
			points[(start-g.from)/g.step] += cpu
		}
		return cpu
	}
	lo, hi := max(start, g.from), min(end, g.to)
	if lo >= hi {
		return 0
	}
	perNano := cpu / float64(end-start)
	if points != nil {
		for i := (lo - g.from) / g.step; i < int64(g.n); i++ {
			stepStart := g.from + i*g.step
			if stepStart >= hi {
				break
			}
			points[i] += perNano * float64(min(hi, stepStart+g.step)-max(lo, stepStart))
		}
	}
	return perNano * float64(hi-lo)
}

// groupAccumulator sums CPU per group while blocks are read. In its first
// pass it keeps every group's total, and points too while there are no
// more groups than the limit; keepTop prepares a second pass that keeps
// points for the busiest groups (slots 0..limit-1) and one more slot for
// the rest.
type groupAccumulator struct {
	g      stepGrid
	limit  int
	values []string       // per group
	index  map[string]int // group value -> group
	totals []float64      // per group: CPU nanoseconds in the range
	points [][]float64    // per slot: CPU nanoseconds per step
	// dropped: the first pass found more groups than the limit and stopped
	// keeping points.
	dropped bool
	second  bool
	slotOf  []int    // per group, in the second pass: its slot
	kept    []string // per slot but the last, in the second pass: its group's value

	block   []float64 // per slot: CPU of the block being read
	touched []int     // slots with CPU in the block being read
}

func newGroupAccumulator(g stepGrid, limit int) *groupAccumulator {
	return &groupAccumulator{g: g, limit: limit, index: make(map[string]int)}
}

// group returns a value's group, adding it on first sight (first pass only).
func (a *groupAccumulator) group(value string) int {
	if gi, ok := a.index[value]; ok {
		return gi
	}
	gi := len(a.values)
	a.index[value] = gi
	a.values = append(a.values, value)
	a.totals = append(a.totals, 0)
	if !a.dropped {
		if gi < a.limit {
			a.points = append(a.points, make([]float64, a.g.n))
		} else {
			a.points, a.dropped = nil, true // the points come in a second pass
		}
	}
	return gi
}

// slot is where a group's CPU goes in the current pass; a group the first
// pass did not see (gi < 0) goes with the rest.
func (a *groupAccumulator) slot(gi int) int {
	switch {
	case !a.second:
		return gi
	case gi < 0:
		return a.limit
	}
	return a.slotOf[gi]
}

func (a *groupAccumulator) add(slot int, cpuNanos int64) {
	if cpuNanos <= 0 {
		return
	}
	for slot >= len(a.block) {
		a.block = append(a.block, 0)
	}
	if a.block[slot] == 0 {
		a.touched = append(a.touched, slot)
	}
	a.block[slot] += float64(cpuNanos)
}

// endBlock spreads the block's CPU, per slot, over the time it spans.
func (a *groupAccumulator) endBlock(start, end int64) {
	for _, slot := range a.touched {
		cpu := a.block[slot]
		a.block[slot] = 0
		var pts []float64
		if a.points != nil {
			pts = a.points[slot]
		}
		inRange := a.g.spread(pts, start, end, cpu)
		if !a.second {
			a.totals[slot] += inRange
		}
	}
	a.touched = a.touched[:0]
}

// keepTop picks the limit busiest groups (ties by value) for the second
// pass, and one slot for all the others.
func (a *groupAccumulator) keepTop(limit int) {
	order := make([]int, len(a.values))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		return cmp.Or(cmp.Compare(a.totals[y], a.totals[x]), cmp.Compare(a.values[x], a.values[y]))
	})
	a.slotOf = make([]int, len(a.values))
	kept := make([]string, limit)
	for rank, gi := range order {
		a.slotOf[gi] = min(rank, limit)
		if rank < limit {
			kept[rank] = a.values[gi]
		}
	}
	a.points = make([][]float64, limit+1)
	for i := range a.points {
		a.points[i] = make([]float64, a.g.n)
	}
	a.second, a.kept, a.dropped = true, kept, false
}

// series returns the accumulated points as series sorted by group value,
// then the one that sums the groups past the limit.
func (a *groupAccumulator) series(groupBy string) []Series {
	values := a.values
	if a.second {
		values = a.kept
	}
	order := make([]int, len(values))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(values[x], values[y]) })
	var out []Series
	for _, slot := range order {
		ser := Series{Labels: map[string]string{}, Points: a.seriesPoints(a.points[slot])}
		if groupBy != "" && values[slot] != "" {
			ser.Labels[groupBy] = values[slot]
		}
		out = append(out, ser)
	}
	if a.second {
		out = append(out, Series{Labels: map[string]string{}, Points: a.seriesPoints(a.points[len(values)]),
			Folded: len(a.values) - len(values)})
	}
	return out
}

func (a *groupAccumulator) seriesPoints(cpu []float64) []Point {
	pts := make([]Point, a.g.n)
	for i := range pts {
		start := a.g.from + int64(i)*a.g.step
		length := min(a.g.step, a.g.to-start)
		pts[i] = Point{Time: time.Unix(0, start), Cores: cpu[i] / float64(length)}
	}
	return pts
}

// readSpread reads planned blocks into acc, one group per value of groupBy
// ("": one group), spreading each block's CPU over its span.
func (s *Store) readSpread(ctx context.Context, txn *badger.Txn, planned []plannedBlock, sel Selector, groupBy string, acc *groupAccumulator) error {
	groupOf := make(map[uint32]int) // label set -> group, for those sel matches
	visitLabelSet := func(id uint32) {
		v := ""
		if groupBy != "" {
			ls, _ := s.dict.labelSets.get(id)
			v = ls.get(groupBy)
		}
		if acc.second {
			gi, ok := acc.index[v] // the same snapshot: seen in the first pass
			if !ok {
				gi = -1
			}
			groupOf[id] = gi
			return
		}
		groupOf[id] = acc.group(v)
	}
	want := s.labelSetFilter(sel, visitLabelSet)
	for i, pb := range planned {
		if i%8 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h, err := readBlock(txn, pb, want, func(r record) {
			acc.add(acc.slot(groupOf[r.labelSet]), r.cpuNanos)
		})
		if err != nil {
			return fmt.Errorf("storage: read: %w", err)
		}
		acc.endBlock(h.startNanos, h.startNanos+h.durationNanos)
	}
	return nil
}
