package web

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/google/pprof/profile"
)

// Store is the history the API reads. FromStorage adapts Ember's store to
// it; an adapter wraps a malformed selector's error with ErrBadSelector (as
// ParseSelector does), so that the API can answer 400 naming the parameter
// the selector came from.
//
// Every method must honour ctx: the API cancels it when the request's time
// limit passes or the client goes away.
type Store interface {
	// Profile is the merged profile of every sample in [from, to) whose
	// labels match selector ("" or "{}" match everything). Flame graphs and
	// diffs use it and read no sample labels, so a store may leave them out
	// and sum samples by stack. A range without samples may return an empty
	// profile or nil.
	Profile(ctx context.Context, from, to time.Time, selector string) (*profile.Profile, error)
	// WriteProfile writes the same merged profile, with every sample's
	// labels, to w as uncompressed pprof protobuf. After an error, w may
	// hold part of a profile, which the caller drops.
	// sampleType, when the profile holds it, becomes its default sample type.
	WriteProfile(ctx context.Context, from, to time.Time, selector, sampleType string, w io.Writer) error
	// Series is CPU use in cores (sampleType "" or "cpu"; "offcpu": threads
	// off the CPU) over [from, to) in buckets of step, one
	// series per value of the groupBy label ("" for a single series). With
	// more groups than limit, it returns the limit busiest and may sum the
	// rest into one more series (Series.Folded), so that its memory is
	// bounded by limit × points rather than by how many groups there are.
	Series(ctx context.Context, from, to time.Time, step time.Duration, selector, groupBy, sampleType string, limit int) ([]Series, error)
	// LabelNames lists the label names that samples in [from, to) carry.
	LabelNames(ctx context.Context, from, to time.Time) ([]string, error)
	// LabelValues lists the values of label name in [from, to); none for a
	// name no sample in the range carries.
	LabelValues(ctx context.Context, name string, from, to time.Time) ([]string, error)
}

// LiveProfiler is the daemon's sampler: it returns a fresh whole-host
// profile of the next d, restricted to samples matching selector. It should
// reject a malformed selector (wrapped in ErrBadSelector) before it starts
// waiting, and stop early, with ctx's error, when ctx ends.
type LiveProfiler interface {
	Profile(ctx context.Context, d time.Duration, selector string) (*profile.Profile, error)
}

// Series is one line of a CPU-use chart: the labels it was grouped by and
// its points in time order. A series with Folded > 0 sums that many groups,
// the least busy, and has no labels of its own.
type Series struct {
	Labels map[string]string
	Points []Point
	Folded int
}

// Point is the average CPU use, in cores, of the step that starts at Time.
type Point struct {
	Time  time.Time
	Cores float64
}

// ErrBadSelector marks an error as a malformed label selector (syntax or
// regular expression). Wrap it with the parser's message, which names the
// position: fmt.Errorf("%w: %w", web.ErrBadSelector, err).
var ErrBadSelector = errors.New("bad selector")

// ErrUnknownLabel marks an error as naming a label the store does not know,
// for instance as Series' groupBy.
var ErrUnknownLabel = errors.New("unknown label")
