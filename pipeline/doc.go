// Package pipeline drains a Source on schedule, names each batch with a Namer and merges an
// interval's batches into one profile, which it hands to every Sink (store, file, exporter).
//
// It sits after the collector and the symbolizer, whose work it schedules
// through small interfaces, and before cmd/ember, which wires the real ones
// in. Every stage is bounded and every drop is counted: a slow Namer never
// delays draining, and a slow or failing Sink never delays the others.
package pipeline
