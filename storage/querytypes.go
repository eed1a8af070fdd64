package storage

import "github.com/ember-profiler/ember/storage/query"

// The query types live in the Badger-free package query, so that readers
// such as the web layer need not link the database; these names keep
// storage's own API whole.
type (
	Selector      = query.Selector
	SelectorError = query.SelectorError
	ProfileQuery  = query.ProfileQuery
	SeriesQuery   = query.SeriesQuery
	Series        = query.Series
	Point         = query.Point
)

const (
	MaxSeriesPoints = query.MaxSeriesPoints
	MaxSeriesValues = query.MaxSeriesValues
)

// ParseSelector parses a label selector; see query.ParseSelector.
func ParseSelector(s string) (Selector, error) { return query.ParseSelector(s) }

// SeriesLimit is how many groups may have their own series at a given
// number of points; see query.SeriesLimit.
func SeriesLimit(points int) int { return query.SeriesLimit(points) }

// selectorMatches reports whether a label set satisfies every matcher of sel.
func selectorMatches(sel Selector, ls labelSet) bool { return sel.MatchesFunc(ls.get) }
