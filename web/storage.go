package web

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage"
)

// FromStorage adapts Ember's store to what the API asks of it.
func FromStorage(s *storage.Store) Store { return storageAdapter{s} }

type storageAdapter struct{ store *storage.Store }

// ParseSelector parses a label selector as the store does, marking a
// malformed one with ErrBadSelector so that the API answers 400.
func ParseSelector(s string) (storage.Selector, error) {
	sel, err := storage.ParseSelector(s)
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
	return a.store.StackProfile(ctx, storage.ProfileQuery{From: from, To: to, Selector: sel})
}

func (a storageAdapter) WriteProfile(ctx context.Context, from, to time.Time, selector string, w io.Writer) error {
	sel, err := ParseSelector(selector)
	if err != nil {
		return err
	}
	return a.store.WriteProfile(ctx, storage.ProfileQuery{From: from, To: to, Selector: sel}, w)
}

func (a storageAdapter) Series(ctx context.Context, from, to time.Time, step time.Duration, selector, groupBy string, limit int) ([]Series, error) {
	sel, err := ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	if groupBy != "" {
		names, err := a.store.LabelNames(ctx, from, to)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(names, groupBy) {
			return nil, fmt.Errorf("%w: no sample in the range has the label %q", ErrUnknownLabel, groupBy)
		}
	}
	series, err := a.store.Series(ctx, storage.SeriesQuery{From: from, To: to, Step: step, Selector: sel, GroupBy: groupBy, Limit: limit})
	if err != nil {
		return nil, err
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
