package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/query"
)

// Querier is the read side of Ember's store, which storage.Store
// implements, in the Badger-free types of storage/query: what FromStorage
// needs to answer the API.
type Querier interface {
	// StackProfile is the merged profile of a query's samples summed by
	// stack, without sample labels.
	StackProfile(ctx context.Context, q query.ProfileQuery) (*profile.Profile, error)
	// WriteProfile writes the merged profile, with labels, as uncompressed
	// pprof protobuf.
	WriteProfile(ctx context.Context, q query.ProfileQuery, w io.Writer) error
	Series(ctx context.Context, q query.SeriesQuery) ([]query.Series, error)
	LabelNames(ctx context.Context, from, to time.Time) ([]string, error)
	LabelValues(ctx context.Context, name string, from, to time.Time) ([]string, error)
}

// FromStorage adapts Ember's store (or anything with its read side) to what
// the API asks of it: it parses selectors and checks group_by's label.
func FromStorage(q Querier) Store { return storageAdapter{q} }

type storageAdapter struct{ store Querier }

// ParseSelector parses a label selector as the store does, marking a
// malformed one with ErrBadSelector so that the API answers 400.
func ParseSelector(s string) (query.Selector, error) {
	sel, err := query.ParseSelector(s)
	if err != nil {
		return sel, fmt.Errorf("%w: %w", ErrBadSelector, err)
	}
	return sel, nil
}

// Profile serves flame graphs and diffs, which need no sample labels: the
// store's per-stack profile is much smaller and cheaper than the labelled one.
func (a storageAdapter) Profile(ctx context.Context, from, to time.Time, selector string) (*profile.Profile, error) {
	sel, err := ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	return a.store.StackProfile(ctx, query.ProfileQuery{From: from, To: to, Selector: sel})
}

// Stacker is a Store that gives a flame graph's input without building a
// profile (query.Stacks), summed per stack and per value of groupBy: for a
// day of a churning host, a fraction of the memory and time of a profile.
// Reading stops at readBy (zero: never), and the answer says what it
// covers (query.Stacks.CoveredFrom).
type Stacker interface {
	FlameStacks(ctx context.Context, from, to, readBy time.Time, selector, groupBy string) (*query.Stacks, error)
}

// FlameStacks is the store's FlameStacks, or errNoStacks when it has none.
func (a storageAdapter) FlameStacks(ctx context.Context, from, to, readBy time.Time, selector, groupBy string) (*query.Stacks, error) {
	return a.stacks(ctx, query.ProfileQuery{From: from, To: to, ReadBy: readBy}, selector, groupBy)
}

// stacks is the store's FlameStacks of q with selector parsed into it.
func (a storageAdapter) stacks(ctx context.Context, q query.ProfileQuery, selector, groupBy string) (*query.Stacks, error) {
	fs, ok := a.store.(interface {
		FlameStacks(ctx context.Context, q query.ProfileQuery, groupBy string) (*query.Stacks, error)
	})
	if !ok {
		return nil, errNoStacks
	}
	sel, err := ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	q.Selector = sel
	return fs.FlameStacks(ctx, q, groupBy)
}

// WholeStacks is the store's FlameStacks of a whole range, not grouped
// and not bounded, or errNoStacks when it has none: what a diff compares.
func (a storageAdapter) WholeStacks(ctx context.Context, from, to time.Time, selector string) (*query.Stacks, error) {
	return a.stacks(ctx, query.ProfileQuery{From: from, To: to, MaxStacks: -1}, selector, "")
}

// WholeStacker is a Store that gives a whole range's stacks as a Stacker
// does, without a bound: a diff compares them without building profiles.
type WholeStacker interface {
	WholeStacks(ctx context.Context, from, to time.Time, selector string) (*query.Stacks, error)
}

// errNoStacks says a store has no FlameStacks: the profile serves instead.
var errNoStacks = errors.New("web: the store gives no flame stacks")

// LabelledProfiler is a Store that also gives profiles with their sample
// labels (comm, pid, exe...), which a flame graph grouped by a label
// needs; a Store without it groups every sample under "(none)".
type LabelledProfiler interface {
	LabelledProfile(ctx context.Context, from, to time.Time, selector string) (*profile.Profile, error)
}

// LabelledProfile is the store's labelled Query when it has one.
func (a storageAdapter) LabelledProfile(ctx context.Context, from, to time.Time, selector string) (*profile.Profile, error) {
	lq, ok := a.store.(interface {
		Query(ctx context.Context, q query.ProfileQuery) (*profile.Profile, error)
	})
	if !ok {
		return a.Profile(ctx, from, to, selector)
	}
	sel, err := ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	return lq.Query(ctx, query.ProfileQuery{From: from, To: to, Selector: sel})
}

func (a storageAdapter) WriteProfile(ctx context.Context, from, to time.Time, selector, sampleType string, w io.Writer) error {
	sel, err := ParseSelector(selector)
	if err != nil {
		return err
	}
	return a.store.WriteProfile(ctx, query.ProfileQuery{From: from, To: to, Selector: sel, SampleType: sampleType}, w)
}

func (a storageAdapter) Series(ctx context.Context, from, to time.Time, step time.Duration, selector, groupBy, sampleType string, limit int) ([]Series, error) {
	sel, err := ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	series, err := a.store.Series(ctx, query.SeriesQuery{From: from, To: to, Step: step, Selector: sel, GroupBy: groupBy, SampleType: sampleType, Limit: limit})
	if err != nil {
		return nil, err
	}
	// A label no series has may be one no sample has: checked only then,
	// as reading every label set of the range to check first was a third
	// of an hour's series on a churning host.
	if groupBy != "" && !slices.ContainsFunc(series, func(s query.Series) bool { return s.Labels[groupBy] != "" }) {
		names, err := a.store.LabelNames(ctx, from, to)
		if err != nil {
			return nil, err
		}
		// A range without samples has no labels at all: its series are
		// empty, not an error (a UI asks for an empty range's timeline).
		if len(names) == 0 {
			return nil, nil
		}
		if !slices.Contains(names, groupBy) {
			return nil, fmt.Errorf("%w: no sample in the range has the label %q", ErrUnknownLabel, groupBy)
		}
	}
	out := make([]Series, len(series))
	for i, s := range series {
		points := make([]Point, len(s.Points))
		for j, p := range s.Points {
			points[j] = Point{Time: p.Time, Cores: p.Cores}
		}
		out[i] = Series{Labels: s.Labels, Points: points, Folded: s.Folded}
	}
	return out, nil
}

func (a storageAdapter) LabelNames(ctx context.Context, from, to time.Time) ([]string, error) {
	return a.store.LabelNames(ctx, from, to)
}

func (a storageAdapter) LabelValues(ctx context.Context, name string, from, to time.Time) ([]string, error) {
	return a.store.LabelValues(ctx, name, from, to)
}
