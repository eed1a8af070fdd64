package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/storage"
)

// The daemon's three stages: drainOnSchedule, nameBatches and
// storeIntervals, each in its own goroutine (see daemon.run).

// drainOnSchedule reads the BPF maps every DrainInterval until ctx ends,
// then once more for the interval in progress, and hands each batch to the
// naming stage without waiting for it. It closes the queue when done.
func (d *daemon) drainOnSchedule(ctx context.Context, queue *batchQueue) {
	defer queue.close()
	tick := time.NewTicker(d.cfg.DrainInterval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			if b := d.drain(&last); b != nil {
				queue.pushLast(b)
			}
			return
		case <-tick.C:
			if b := d.drain(&last); b != nil {
				d.enqueue(queue, b)
			}
		}
	}
}

// drain reads the sampler once; last is when the previous drain started.
func (d *daemon) drain(last *time.Time) *model.Batch {
	start := time.Now()
	d.metrics.drainLateness.Observe(max(0, start.Sub(last.Add(d.cfg.DrainInterval)).Seconds()))
	*last = start
	batch, err := d.collector.Drain()
	if err != nil {
		d.log.Error("drain the sampler", slog.Any("err", err))
		return nil
	}
	d.metrics.drain.Observe(time.Since(start).Seconds())
	d.metrics.observeBatch(batch.Stats)
	d.lossesMu.Lock()
	addStats(&d.losses, batch.Stats)
	d.lossesMu.Unlock()
	return batch
}

// enqueue hands a batch to the naming stage. When that stage is behind,
// the batch is folded into one waiting, or dropped if that cannot be done:
// draining on time matters more than any one batch.
func (d *daemon) enqueue(queue *batchQueue, b *model.Batch) {
	switch queue.push(b) {
	case pushQueued:
		if d.namingBehind {
			d.log.Info("naming caught up with draining")
		}
		d.namingBehind = false
	case pushFolded:
		d.metrics.batchesFolded.Inc()
	case pushRefused:
		d.dropBatch(b, "naming_behind")
		if !d.namingBehind && len(b.Samples) > 0 {
			d.log.Warn("naming is behind draining: drained batches are dropped until it catches up (ember_batches_dropped_total)",
				slog.Int("queue_batches", queue.maxBatches))
			d.namingBehind = true
		}
	}
	d.metrics.namingQueue.Set(float64(queue.waiting()))
}

// dropBatch counts a batch left unnamed and closes the files it holds.
func (d *daemon) dropBatch(b *model.Batch, reason string) {
	defer b.Release()
	if len(b.Samples) == 0 {
		return // nothing lost
	}
	var samples uint64
	for i := range b.Samples {
		samples += b.Samples[i].Count
	}
	d.metrics.batchesDropped.WithLabelValues(reason).Inc()
	d.metrics.samplesDropped.WithLabelValues(reason).Add(float64(samples))
}

// nameBatches names each batch, publishes it to live profiles and adds it
// to its interval; at each interval boundary it hands the interval to the
// store stage. It closes intervals when batches is closed and done.
func (d *daemon) nameBatches(finish context.Context, queue *batchQueue, intervals chan<- *intervalProfile) {
	defer close(intervals)
	iv := &intervalProfile{}
	end := nextBoundary(time.Now(), d.cfg.Interval)
	for {
		b, ok := queue.pop()
		if !ok {
			break
		}
		d.metrics.namingQueue.Set(float64(queue.waiting()))
		if finish.Err() != nil {
			d.dropBatch(b, "shutdown")
			continue
		}
		// The batch that crossed the boundary was dropped: this one starts
		// a new interval.
		if !b.Start.Before(end) {
			d.endInterval(iv, intervals)
			iv, end = &intervalProfile{}, nextBoundary(b.Start, d.cfg.Interval)
		}
		d.name(b, iv)
		if !b.End.Before(end) {
			d.endInterval(iv, intervals)
			iv, end = &intervalProfile{}, nextBoundary(b.End, d.cfg.Interval)
		}
	}
	d.logLosses(d.takeLosses())
	if iv.empty() {
		return
	}
	select {
	case intervals <- iv:
	case <-finish.Done():
		d.intervalsDropped.Add(1)
		d.metrics.intervals.WithLabelValues("dropped_shutdown").Inc()
	}
}

// nextBoundary is the first interval boundary after t, on the wall clock.
func nextBoundary(t time.Time, interval time.Duration) time.Time {
	return t.Truncate(interval).Add(interval)
}

func (d *daemon) name(b *model.Batch, iv *intervalProfile) {
	defer b.Release()
	if len(b.Samples) == 0 {
		return
	}
	start := time.Now()
	p, err := d.symbolizer.Profile(b)
	if err != nil {
		d.log.Error("symbolize", slog.Any("err", err))
		return
	}
	d.metrics.symbolize.Observe(time.Since(start).Seconds())
	d.live.publish(p)
	iv.add(p)
}

// endInterval hands a finished interval to the store stage, or drops it if
// the store is still busy with the one before.
func (d *daemon) endInterval(iv *intervalProfile, intervals chan<- *intervalProfile) {
	d.logLosses(d.takeLosses())
	if iv.empty() {
		return
	}
	select {
	case intervals <- iv:
		if d.storeBehind {
			d.log.Info("the store caught up")
		}
		d.storeBehind = false
	default:
		d.intervalsDropped.Add(1)
		d.metrics.intervals.WithLabelValues("dropped_store_behind").Inc()
		if !d.storeBehind {
			d.log.Warn("the store is behind: intervals are dropped until it catches up (ember_intervals_total)")
		}
		d.storeBehind = true
	}
}

func (d *daemon) takeLosses() model.Stats {
	d.lossesMu.Lock()
	defer d.lossesMu.Unlock()
	s := d.losses
	d.losses = model.Stats{}
	return s
}

// storeIntervals stores each finished interval with ctx, which outlives the
// daemon's own until the shutdown deadline (then run logs the loss).
func (d *daemon) storeIntervals(ctx context.Context, intervals <-chan *intervalProfile) {
	for iv := range intervals {
		d.flush(ctx, iv)
	}
}

// flush stores the interval's profile. A store error loses this interval
// only: sampling goes on and the next interval is tried afresh.
func (d *daemon) flush(ctx context.Context, iv *intervalProfile) {
	merged, err := iv.profile()
	if err != nil {
		d.intervalsDropped.Add(1)
		d.metrics.intervals.WithLabelValues("dropped_error").Inc()
		d.log.Error("merge the interval's profiles", slog.Any("err", err))
		return
	}
	start := time.Now()
	err = d.store.Append(ctx, merged, d.cfg.Labels)
	d.metrics.storeAppend.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, storage.ErrDiskFull):
		d.intervalsDropped.Add(1)
		d.metrics.intervals.WithLabelValues("dropped_disk_full").Inc()
		if !d.diskFull {
			d.log.Error("the disk is nearly full: profiles are not stored until space returns; sampling goes on",
				slog.String("data_dir", d.cfg.DataDir), slog.Any("err", err))
		}
		d.diskFull = true
	case err != nil && ctx.Err() != nil:
		d.intervalsDropped.Add(1)
		d.metrics.intervals.WithLabelValues("dropped_shutdown").Inc()
	case err != nil:
		d.intervalsDropped.Add(1)
		d.metrics.intervals.WithLabelValues("dropped_error").Inc()
		d.log.Error("store the interval's profile", slog.Any("err", err))
	default:
		d.metrics.intervals.WithLabelValues("stored").Inc()
		if d.diskFull {
			d.log.Info("disk space is back: storing profiles again")
		}
		d.diskFull = false
		d.intervalsWritten.Add(1)
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
}

func (iv *intervalProfile) empty() bool { return len(iv.parts) == 0 && iv.err == nil }

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
		merged, err := profile.Merge(iv.parts)
		iv.parts, iv.err = []*profile.Profile{merged}, err
	}
}

// profile merges the interval's drains into one profile spanning them.
// Merging copies, so the profiles shared with live requests stay unchanged.
func (iv *intervalProfile) profile() (*profile.Profile, error) {
	if iv.err != nil {
		return nil, iv.err
	}
	merged, err := profile.Merge(iv.parts)
	if err != nil {
		return nil, err
	}
	merged.TimeNanos, merged.DurationNanos = iv.startNanos, iv.endNanos-iv.startNanos
	return merged, nil
}

// logLosses warns when more than 1% of an interval's samples lost a stack.
func (d *daemon) logLosses(s model.Stats) {
	var lost uint64
	for r, n := range s.UserLost {
		if r != model.LostKernelThread && r != model.LostExiting {
			lost += n
		}
	}
	for _, n := range s.KernelLost {
		lost += n
	}
	lost += s.CountMapFull
	if s.Recorded > 0 && lost*100 > s.Recorded {
		d.log.Warn("stacks lost in the last interval; consider larger --stack-map-entries or a shorter --drain-interval",
			slog.Uint64("recorded", s.Recorded), slog.Uint64("lost", lost),
			slog.String("user_lost", fmt.Sprint(s.UserLost)), slog.Uint64("count_map_full", s.CountMapFull))
	}
}
