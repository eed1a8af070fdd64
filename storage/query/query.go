// Package query holds what a reader of Ember's history asks the store and
// gets back: label selectors, profile and series queries, series, and the
// bounds of a series answer. It is plain data with no database behind it,
// so that the web layer can speak to storage without linking Badger.
package query

import "time"

// ProfileQuery asks for the merged profile of the samples in [From, To)
// whose labels match Selector. An interval counts as in the range when its
// start is.
type ProfileQuery struct {
	From, To time.Time
	Selector Selector
	// ReadBy, when set, is when a flame graph's reading must stop: what was
	// read by then is answered, marked partial (see Stacks.CoveredFrom).
	ReadBy time.Time
	// MaxStacks bounds a flame graph's distinct (group, stack) sums, which
	// its memory grows with: past it the reading stops after the block
	// that crossed it, and what was read is answered, marked partial.
	// Zero means DefaultMaxStacks; a negative value, no bound.
	MaxStacks int
	// SampleType, when the profile holds it, is the answer's default
	// sample type (what a viewer shows first); "" leaves the store's.
	SampleType string
}

// DefaultMaxStacks is a flame graph's bound on distinct stacks when the
// query sets none. Measured on a day of a churning host's store, a flame
// graph holds a few hundred bytes per stack until its tree is built
// (docs/benchmarks.md, "Queries over 24 h").
const DefaultMaxStacks = 100_000

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
	// SampleType is the sample type summed: "" or "cpu" (points in cores),
	// "offcpu" (in threads off the CPU, on average), any type of
	// schema.Known in its unit per second.
	SampleType string
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
