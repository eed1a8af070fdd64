package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// A Sink takes finished intervals: the local store, a file, an exporter.
// Each sink has its own goroutine and queue, so one that is slow or fails
// costs only its own intervals.
type Sink interface {
	// Name labels the sink's metrics and logs; distinct per pipeline.
	Name() string
	// Write takes one interval. ctx ends at the shutdown deadline, not at
	// the stop signal. An error loses this interval only; the next is
	// tried afresh.
	Write(ctx context.Context, iv Interval) error
}

// SinkConfig adds a sink to a pipeline.
type SinkConfig struct {
	Sink Sink
	// QueueIntervals bounds the intervals waiting for the sink beside the
	// one it is writing; a new interval finding the queue full is dropped
	// and counted (dropped_behind). Default 1.
	QueueIntervals int
	// CountOutcome, if set, is also told every interval's outcome, from
	// more than one goroutine: for metrics older than sinks (the store's
	// ember_intervals_total).
	CountOutcome func(outcome string)
}

// Outcomes of an interval at one sink, the outcome label of
// ember_sink_intervals_total.
const (
	OutcomeWritten  = "written"
	OutcomeBehind   = "dropped_behind"   // the sink was still busy with the intervals before
	OutcomeError    = "dropped_error"    // Write failed, or the interval did not merge
	OutcomeShutdown = "dropped_shutdown" // not written within the shutdown timeout
)

// A DropError is a sink's refusal it has already reported in its own
// words (a full disk, logged once per episode): the pipeline counts it as
// dropped_<Reason> and does not log it.
type DropError struct {
	Reason string
	Err    error
}

func (e *DropError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DropError) Unwrap() error { return e.Err }

// sinkWorker runs one sink: its queue, its goroutine and its counters.
type sinkWorker struct {
	p     *Pipeline
	name  string
	sink  Sink
	queue chan *Interval
	// last is the interval in progress at stop, set before queue closes.
	last         *Interval
	countOutcome func(string)
	done         chan struct{}

	// behind is the naming stage's, failing the worker's: each episode is
	// logged when it starts and ends, not at every drop.
	behind, failing  bool
	written, dropped atomic.Uint64
}

func newSinkWorker(p *Pipeline, sc SinkConfig) *sinkWorker {
	n := sc.QueueIntervals
	if n <= 0 {
		n = defaultSinkQueue
	}
	return &sinkWorker{p: p, name: sc.Sink.Name(), sink: sc.Sink, queue: make(chan *Interval, n),
		countOutcome: sc.CountOutcome, done: make(chan struct{})}
}

// offer queues an interval if the sink has room (build makes it only
// then), or counts it dropped. Only the naming stage sends, so room seen
// is room kept.
func (w *sinkWorker) offer(build func() *Interval) {
	if len(w.queue) == cap(w.queue) {
		w.count(OutcomeBehind)
		if !w.behind {
			w.p.log.Warn("a sink is behind: its intervals are dropped until it catches up (ember_sink_intervals_total)",
				slog.String("sink", w.name))
		}
		w.behind = true
		return
	}
	if w.behind {
		w.p.log.Info("a sink caught up", slog.String("sink", w.name))
	}
	w.behind = false
	w.queue <- build()
	w.p.metrics.sinkQueue.WithLabelValues(w.name).Set(float64(len(w.queue)))
}

// close hands the worker its last interval (nil: none) and ends its queue.
func (w *sinkWorker) close(last *Interval) {
	w.last = last
	close(w.queue)
}

// run writes every interval queued, then the last, with finish, which
// outlives the pipeline's ctx until the shutdown deadline.
func (w *sinkWorker) run(finish context.Context) {
	defer close(w.done)
	for iv := range w.queue {
		w.p.metrics.sinkQueue.WithLabelValues(w.name).Set(float64(len(w.queue)))
		w.write(finish, iv)
	}
	if w.last != nil {
		w.write(finish, w.last)
	}
}

func (w *sinkWorker) write(ctx context.Context, iv *Interval) {
	if ctx.Err() != nil || w.p.hasFailed() {
		w.count(OutcomeShutdown)
		return
	}
	start := time.Now()
	err := w.sink.Write(ctx, *iv)
	w.p.metrics.sinkWrite.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
	var drop *DropError
	switch {
	case err == nil:
		w.count(OutcomeWritten)
		if w.failing {
			w.p.log.Info("a sink writes again", slog.String("sink", w.name))
		}
		w.failing = false
	case errors.As(err, &drop):
		w.count("dropped_" + drop.Reason)
		if w.p.fail(err) {
			return
		}
	case ctx.Err() != nil:
		w.count(OutcomeShutdown)
	default:
		w.count(OutcomeError)
		if w.p.fail(err) {
			return
		}
		w.p.log.Error("a sink could not write an interval; it is lost, the next is tried afresh",
			slog.String("sink", w.name), slog.Any("err", err))
		w.failing = true
	}
}

// count tallies one interval's outcome at this sink.
func (w *sinkWorker) count(outcome string) {
	if outcome == OutcomeWritten {
		w.written.Add(1)
	} else {
		w.dropped.Add(1)
	}
	w.p.metrics.sinkIntervals.WithLabelValues(w.name, outcome).Inc()
	if w.countOutcome != nil {
		w.countOutcome(outcome)
	}
}
