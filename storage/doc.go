// Package storage keeps Ember's profile history on disk, in an embedded
// Badger database, and answers queries over it. It sits between the
// symbolizer (whose pprof profiles the daemon appends, one per interval)
// and the web layer (which queries). Neither side sees Badger's keys: the
// seam is Append on one side and Query, Series, LabelNames and LabelValues
// on the other.
//
// What repeats across intervals is written once, in a dictionary of
// functions, mappings, locations, stacks and label sets; an interval is a
// block of (label set, stack, a value per sample type) records with small,
// delta-encoded ids, compressed by Badger with zstd. The sample types are
// those of package schema, recorded per block, and queries merge values by
// type. The dictionary lives on disk; memory
// holds a byte-budgeted cache of its recently used entries. Roll-up blocks merge the intervals of
// each minute, ten minutes and hour, and a query reads the coarsest blocks
// that fit its range. A maintenance goroutine applies retention and the disk
// limit and collects Badger's value log. The formats are described in
// block.go, dict.go and index.go.
package storage
