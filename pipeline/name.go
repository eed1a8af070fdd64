package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/schema"
)

// nameBatches names each batch and adds it to its interval; at each
// interval boundary it hands the interval to every sink. When the queue is
// closed and empty, it gives each sink the interval in progress as its
// last and closes it.
func (p *Pipeline) nameBatches(finish context.Context, queue *batchQueue) {
	iv := &intervalProfile{}
	end := nextBoundary(time.Now(), p.cfg.Interval)
	for {
		b, ok := queue.pop()
		if !ok {
			break
		}
		p.metrics.namingQueue.Set(float64(queue.waiting()))
		if finish.Err() != nil || p.hasFailed() {
			p.dropBatch(b, "shutdown")
			continue
		}
		// The batch that crossed the boundary was dropped: this one starts
		// a new interval.
		if !b.Start.Before(end) {
			p.endInterval(iv)
			iv, end = &intervalProfile{}, nextBoundary(b.Start, p.cfg.Interval)
		}
		p.name(b, iv)
		if !b.End.Before(end) {
			p.endInterval(iv)
			iv, end = &intervalProfile{}, nextBoundary(b.End, p.cfg.Interval)
		}
	}
	// Samples the namer held back (for a JIT's perf map written at exit)
	// go into the last interval.
	if f, ok := p.cfg.Namer.(heldFlusher); ok && finish.Err() == nil && !p.hasFailed() {
		if prof, err := f.FlushHeld(); err != nil {
			p.log.Error("symbolize held samples", slog.Any("err", err))
		} else if prof != nil {
			iv.add(prof)
		}
	}
	var last *profile.Profile
	if p.cfg.Interval > 0 {
		p.logLosses(p.takeLosses())
	} else if iv.empty() && iv.drains > 0 && !p.hasFailed() {
		// A run that is one interval is written even without samples: an
		// empty batch names to a profile of the right shape.
		p.nameInto(&model.Batch{Start: iv.start, End: iv.end, FrequencyHz: iv.frequencyHz, PeriodNanos: iv.periodNanos}, iv)
	}
	if !iv.empty() && !p.hasFailed() {
		last = p.merge(iv)
	}
	for i, w := range p.sinks {
		var ivl *Interval
		if last != nil {
			ivl = iv.forSink(last, i)
		}
		w.close(ivl)
	}
}

// heldFlusher is a Namer that holds some samples back until it can name
// them (the symbolizer, for a JIT's perf map written at exit): FlushHeld
// names what it still holds, or returns nil.
type heldFlusher interface {
	FlushHeld() (*profile.Profile, error)
}

// nextBoundary is the first interval boundary after t, on the wall clock;
// with no interval, there is none.
func nextBoundary(t time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return time.Unix(math.MaxInt64/2, 0) // later than any batch
	}
	return t.Truncate(interval).Add(interval)
}

func (p *Pipeline) name(b *model.Batch, iv *intervalProfile) {
	defer b.Release()
	iv.cover(b)
	if len(b.Samples) > 0 {
		p.nameInto(b, iv)
	}
}

// nameInto names a batch and adds its profile to iv.
func (p *Pipeline) nameInto(b *model.Batch, iv *intervalProfile) {
	start := time.Now()
	prof, err := p.cfg.Namer.Profile(b)
	if err != nil {
		if !p.fail(fmt.Errorf("symbolize: %w", err)) {
			p.log.Error("symbolize", slog.Any("err", err))
		}
		return
	}
	p.metrics.symbolize.Observe(time.Since(start).Seconds())
	iv.add(prof)
}

// endInterval hands a finished interval to every sink with room for it.
func (p *Pipeline) endInterval(iv *intervalProfile) {
	p.logLosses(p.takeLosses())
	if iv.empty() {
		return
	}
	merged := p.merge(iv)
	if merged == nil {
		return
	}
	for i, w := range p.sinks {
		w.offer(func() *Interval { return iv.forSink(merged, i) })
	}
}

// merge returns the interval's profile, or nil (counted against every
// sink) if its parts do not merge.
func (p *Pipeline) merge(iv *intervalProfile) *profile.Profile {
	merged, err := iv.profile()
	if err == nil {
		return merged
	}
	for _, w := range p.sinks {
		w.count(OutcomeError)
	}
	if !p.fail(fmt.Errorf("merge the interval's profiles: %w", err)) {
		p.log.Error("merge the interval's profiles", slog.Any("err", err))
	}
	return nil
}

func (p *Pipeline) takeLosses() model.Stats {
	p.lossesMu.Lock()
	defer p.lossesMu.Unlock()
	s := p.losses
	p.losses = model.Stats{}
	return s
}

// logLosses warns when more than 1% of an interval's samples lost a stack.
func (p *Pipeline) logLosses(s model.Stats) {
	var lost uint64
	for r, n := range s.UserLost {
		if !r.NoUserStack() {
			lost += n
		}
	}
	for _, n := range s.KernelLost {
		lost += n
	}
	lost += s.CountMapFull
	if s.Recorded > 0 && lost*100 > s.Recorded {
		p.log.Warn("stacks lost in the last interval; consider larger --stack-map-entries or a shorter --drain-interval",
			slog.Uint64("recorded", s.Recorded), slog.Uint64("lost", lost),
			slog.String("user_lost", fmt.Sprint(s.UserLost)), slog.Uint64("count_map_full", s.CountMapFull))
	}
}

// mergeEvery is how many drains' profiles an interval keeps before merging
// them into one: memory stays bounded however many drains an interval holds.
const mergeEvery = 8

// An intervalProfile gathers the named drains of one interval.
type intervalProfile struct {
	parts []*profile.Profile
	// startNanos and endNanos span the drains added.
	startNanos, endNanos int64
	err                  error
	// start and end span every drain covered, drains counts them, and
	// frequencyHz and periodNanos are the latest one's.
	start, end  time.Time
	drains      int
	frequencyHz int
	periodNanos int64
}

func (iv *intervalProfile) empty() bool { return len(iv.parts) == 0 && iv.err == nil }

// cover extends the interval over a drain, named or not.
func (iv *intervalProfile) cover(b *model.Batch) {
	if iv.drains == 0 {
		iv.start = b.Start
	}
	iv.end = b.End
	iv.drains++
	iv.frequencyHz, iv.periodNanos = b.FrequencyHz, b.PeriodNanos
}

func (iv *intervalProfile) add(p *profile.Profile) {
	if iv.err != nil {
		return
	}
	if len(iv.parts) == 0 {
		iv.startNanos = p.TimeNanos
	}
	iv.endNanos = p.TimeNanos + p.DurationNanos
	iv.parts = append(iv.parts, p)
	if len(iv.parts) >= mergeEvery {
		merged, err := schema.Merge(iv.parts)
		iv.parts, iv.err = []*profile.Profile{merged}, err
	}
}

// profile merges the interval's drains into one profile spanning them.
// Merging copies, so the profiles shared with live requests stay unchanged.
func (iv *intervalProfile) profile() (*profile.Profile, error) {
	if iv.err != nil {
		return nil, iv.err
	}
	merged, err := schema.Merge(iv.parts)
	if err != nil {
		return nil, err
	}
	merged.TimeNanos, merged.DurationNanos = iv.startNanos, iv.endNanos-iv.startNanos
	return merged, nil
}

// forSink is the Interval sink i receives: the first sink takes merged
// itself, the others a copy each, so that any sink may change its own.
func (iv *intervalProfile) forSink(merged *profile.Profile, i int) *Interval {
	if i > 0 {
		merged = merged.Copy()
	}
	return &Interval{Start: iv.start, End: iv.end, Profile: merged}
}
