package web

import (
	"errors"
	"strings"
	"time"

	"github.com/ember-profiler/ember/report"
)

// minNodes is the smallest node budget a client may ask for.
const minNodes = report.MinNodes

// FlameGraph is the JSON of /api/v1/flamegraph: the range asked for, then
// the fields of report.FlameGraph, which describes them.
type FlameGraph struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Partial says the store stopped reading at half the request's time
	// limit (a busy host) or at its bound on distinct stacks (the memory
	// a flame graph may take): the graph covers only [CoveredFrom, To).
	// PartialReason is "time" or "stacks".
	Partial       bool      `json:"partial,omitempty"`
	CoveredFrom   time.Time `json:"covered_from,omitzero"`
	PartialReason string    `json:"partial_reason,omitempty"`
	*report.FlameGraph
}

// The parts of a FlameGraph, as package report defines them.
type (
	Pruned         = report.Pruned
	FlameNodes     = report.FlameNodes
	FlameFunctions = report.FlameFunctions
)

// Diff is the JSON of /api/v1/diff: the target and base ranges, then the
// fields of report.Diff, which describes them.
type Diff struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	BaseFrom time.Time `json:"base_from"`
	BaseTo   time.Time `json:"base_to"`
	*report.Diff
}

// DiffFrame is one function in a Diff.
type DiffFrame = report.DiffFrame

// reportError turns a sample type the profile lacks into the 400 that
// names sample_type; other errors pass unchanged.
func reportError(err error) error {
	var typeErr *report.SampleTypeError
	if errors.As(err, &typeErr) {
		return badParam("sample_type", "sample_type: %q is not in the profile, which has %s", typeErr.Type, strings.Join(typeErr.Have, ", "))
	}
	return err
}
