package model

import "time"

// A Batch is what one drain of the BPF maps yields: raw stacks with counts,
// and a snapshot of every process they came from. It is a plain value the
// symbolizer consumes without touching the kernel.
type Batch struct {
	Start, End  time.Time
	FrequencyHz int
	// PeriodNanos is the CPU time one sample stands for (1e9 / FrequencyHz).
	PeriodNanos int64
	Samples     []Sample
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

type releaseBoth [2]interface{ Release() }

func (r releaseBoth) Release() {
	r[0].Release()
	r[1].Release()
}

// HoldUntilRelease makes Release call release, in place of what the batch
// held before: the collector holds a batch's mapped files this way, and
// tests or replays whatever else must outlive naming.
func (b *Batch) HoldUntilRelease(release interface{ Release() }) { b.held = release }
