package collector

import "github.com/ember-profiler/ember/model"

// The sample model lives in package model, below every stage. These
// aliases let collector.go, procs.go and unwinder.go, edited concurrently
// for issue 17, keep their names; drop them once those edits are merged.
type (
	Batch            = model.Batch
	Sample           = model.Sample
	Process          = model.Process
	ProcessKey       = model.ProcessKey
	Mapping          = model.Mapping
	Stats            = model.Stats
	UnwindTableStats = model.UnwindTableStats
)
