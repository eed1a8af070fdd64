package model

import (
	"slices"
	"time"
)

// A Batch is what one drain of the BPF maps yields: raw stacks with counts,
// and a snapshot of every process they came from. It is a plain value the
// symbolizer consumes without touching the kernel.
type Batch struct {
	Start, End  time.Time
	FrequencyHz int
	// PeriodNanos is the CPU time one sample stands for (1e9 / FrequencyHz).
	PeriodNanos int64
	Samples     []Sample
	// ValueTypes names what each sample's Values hold, beside its count:
	// empty for CPU samples alone.
	ValueTypes []ValueType
	// Processes holds a snapshot of every process image with samples in
	// this batch.
	Processes map[ProcessKey]*Process
	Stats     Stats
	// held keeps the mapped files open until Release (the collector's
	// Config.HoldBatchFiles).
	held interface{ Release() }
}

// Release lets go of the mapped files the batch holds open for naming (see
// the collector's Config.HoldBatchFiles). Call it once the batch is named,
// or dropped unnamed. It may be called more than once, and on any batch.
func (b *Batch) Release() {
	if b.held != nil {
		b.held.Release()
	}
}

// Absorb folds a later batch into b, without naming either: b then spans
// both drains, holds both's samples and processes, and its Release lets go
// of both's files. A consumer that falls behind can queue one batch for
// several drains this way. b.Stats stay b's own: the counters are per drain
// and were read when it happened. other must not be used afterwards.
func (b *Batch) Absorb(other *Batch) {
	if !slices.Equal(b.ValueTypes, other.ValueTypes) {
		union := slices.Clone(b.ValueTypes)
		for _, vt := range other.ValueTypes {
			if !slices.Contains(union, vt) {
				union = append(union, vt)
			}
		}
		b.retype(union)
		other.retype(union)
	}
	b.Samples = append(b.Samples, other.Samples...)
	if b.Processes == nil {
		b.Processes = make(map[ProcessKey]*Process, len(other.Processes))
	}
	for k, p := range other.Processes {
		b.Processes[k] = p // the later snapshot has any mappings added since
	}
	b.End = other.End
	switch {
	case other.held == nil:
	case b.held == nil:
		b.held = other.held
	default:
		b.held = releaseBoth{b.held, other.held}
	}
	other.held = nil
}

// A ValueType names one kind of value samples carry beside their count, as
// a profile's sample type does: "offcpu" in "nanoseconds".
type ValueType struct {
	Type, Unit string
}

// retype gives b the value types to, which hold all of b's: each sample's
// values move to their type's place, and the types b lacked are zero.
func (b *Batch) retype(to []ValueType) {
	if slices.Equal(b.ValueTypes, to) {
		return
	}
	place := make([]int, len(b.ValueTypes))
	for i, vt := range b.ValueTypes {
		place[i] = slices.Index(to, vt)
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		if s.Values == nil {
			continue
		}
		values := make([]int64, len(to))
		for j, v := range s.Values[:min(len(s.Values), len(place))] {
			values[place[j]] = v
		}
		s.Values = values
	}
	b.ValueTypes = to
}

type releaseBoth [2]interface{ Release() }

func (r releaseBoth) Release() {
	r[0].Release()
	r[1].Release()
}

// HoldUntilRelease makes Release call release, in place of what the batch
// held before: the collector holds a batch's mapped files this way, and
// tests or replays whatever else must outlive naming.
func (b *Batch) HoldUntilRelease(release interface{ Release() }) { b.held = release }
