package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
)

// Source is the sampler as the pipeline drains it (the collector).
type Source interface {
	Drain() (*model.Batch, error)
}

// Namer turns a drained batch into a profile (the symbolizer).
type Namer interface {
	Profile(*model.Batch) (*profile.Profile, error)
}

// An Interval is what sinks receive: the named drains of one interval.
type Interval struct {
	// Start and End span the drains it covers, with samples or without.
	Start, End time.Time
	// Profile merges the drains' profiles; its TimeNanos and DurationNanos
	// span the drains that had samples. Each sink gets its own copy, and
	// may change it.
	Profile *profile.Profile
}

// Config describes one pipeline. Source, Namer, DrainInterval and at least
// one sink are required.
type Config struct {
	Source Source
	Namer  Namer
	Sinks  []SinkConfig
	// DrainInterval is how often the Source is drained.
	DrainInterval time.Duration
	// Interval is the span of one interval, aligned to the wall clock so
	// intervals line up across restarts. 0 makes the whole run one
	// interval, handed to the sinks at stop even if it holds no samples.
	Interval time.Duration
	// MaxBatchSamples is the most samples one drain can yield (the count
	// map's entries): a batch folded while naming is behind stays within
	// it, and the naming queue holds at most namingQueueDrains of them.
	// 0: no bound.
	MaxBatchSamples int
	// ShutdownTimeout bounds the naming and writing that follow the end of
	// Run's ctx; what is not written by then is counted as lost. 0: no bound.
	ShutdownTimeout time.Duration
	// WaitWhenBehind makes a drain wait for room in the naming queue
	// rather than drop a batch: a recording keeps every sample drawn, at
	// the cost of late drains.
	WaitWhenBehind bool
	// FailFast ends the run at the first error of a drain, a naming, a
	// merge or a sink, hands nothing more to the sinks, and makes Run
	// return that error without logging it.
	FailFast bool
	// Metrics, if set, count what the pipeline does (see NewMetrics).
	Metrics *Metrics
	Logger  *slog.Logger
}

// Bounds on the work the naming stage may hold. A batch holds its samples
// and the files of its processes open. Batches are usually far smaller
// than the maps allow, so the queue holds many (half a minute at the
// default drain interval: the first batches, named with every file parsed
// cold, take seconds each on a busy host), but never more samples than
// namingQueueDrains full drains.
const (
	namingQueueBatches = 32
	namingQueueDrains  = 2
	// defaultSinkQueue is a sink's queue unless its config sets one: the
	// interval being written and one more.
	defaultSinkQueue = 1
)

// A Pipeline runs the stages of one Config; Run it once.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	sinks   []*sinkWorker

	// losses adds up the sampler's counters since the last interval ended:
	// the drain stage adds every batch's, dropped or not, and the naming
	// stage takes them at each boundary.
	lossesMu sync.Mutex
	losses   model.Stats
	// namingBehind is set by the drain stage while the naming queue
	// refuses batches, so that each episode is logged once.
	namingBehind bool

	// failed is closed at the first error under FailFast; err holds it.
	failOnce sync.Once
	failed   chan struct{}
	err      error
}

// New checks cfg and prepares a pipeline.
func New(cfg Config) (*Pipeline, error) {
	switch {
	case cfg.Source == nil || cfg.Namer == nil:
		return nil, errors.New("pipeline: a source and a namer are required")
	case cfg.DrainInterval <= 0:
		return nil, fmt.Errorf("pipeline: drain interval must be positive, got %s", cfg.DrainInterval)
	case cfg.Interval < 0:
		return nil, fmt.Errorf("pipeline: interval must not be negative, got %s", cfg.Interval)
	case len(cfg.Sinks) == 0:
		return nil, errors.New("pipeline: no sink")
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, failed: make(chan struct{})}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.metrics == nil {
		p.metrics = NewMetrics(nil)
	}
	names := map[string]bool{}
	for _, sc := range cfg.Sinks {
		if sc.Sink == nil {
			return nil, errors.New("pipeline: a nil sink")
		}
		name := sc.Sink.Name()
		if name == "" || names[name] {
			return nil, fmt.Errorf("pipeline: sink names must be set and distinct, got %q twice or empty", name)
		}
		names[name] = true
		p.sinks = append(p.sinks, newSinkWorker(p, sc))
	}
	return p, nil
}

// Run drains every DrainInterval until ctx ends, then once more for the
// interval in progress, and returns once every sink has written that last
// interval or ShutdownTimeout has passed. Draining, naming and each sink
// run in their own goroutines joined by bounded queues, so a slow namer or
// sink never delays draining (a late drain loses stacks to full BPF maps):
// a full naming queue folds new batches into the newest one waiting, and
// past that drops them; a sink's full queue drops new intervals. Every drop
// is counted. Run returns an error only under FailFast.
func (p *Pipeline) Run(ctx context.Context) error {
	// Naming and writing outlive ctx until the shutdown deadline: the last
	// interval is written with this context, never with the cancelled one.
	finish, cancelFinish := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFinish()
	if p.cfg.ShutdownTimeout > 0 {
		stopDeadline := context.AfterFunc(ctx, func() { time.AfterFunc(p.cfg.ShutdownTimeout, cancelFinish) })
		defer stopDeadline()
	}

	maxSamples, maxBatchSamples := math.MaxInt, math.MaxInt
	if p.cfg.MaxBatchSamples > 0 {
		maxSamples, maxBatchSamples = namingQueueDrains*p.cfg.MaxBatchSamples, p.cfg.MaxBatchSamples
	}
	queue := newBatchQueue(namingQueueBatches, maxSamples, maxBatchSamples, p.cfg.Interval)
	for _, w := range p.sinks {
		go w.run(finish)
	}
	go p.nameBatches(finish, queue)
	p.drainOnSchedule(ctx, queue)

	for _, w := range p.sinks {
		select {
		case <-w.done:
			continue
		case <-finish.Done():
		}
		select {
		case <-w.done:
		default:
			p.log.Error("the last interval was not written in time and is lost; a larger --shutdown-timeout gives it longer",
				slog.String("sink", w.name), slog.Duration("deadline", p.cfg.ShutdownTimeout))
		}
	}
	select {
	case <-p.failed:
		return p.err
	default:
		return nil
	}
}

// fail records the run's first error under FailFast and reports whether
// the caller should stop; without FailFast it does nothing.
func (p *Pipeline) fail(err error) bool {
	if !p.cfg.FailFast {
		return false
	}
	p.failOnce.Do(func() {
		p.err = err
		close(p.failed)
	})
	return true
}

func (p *Pipeline) hasFailed() bool {
	select {
	case <-p.failed:
		return true
	default:
		return false
	}
}

// SinkTotals count one sink's intervals since the pipeline started.
type SinkTotals struct {
	Name             string
	Written, Dropped uint64
}

// Totals returns each sink's counts, in the order of Config.Sinks.
func (p *Pipeline) Totals() []SinkTotals {
	var out []SinkTotals
	for _, w := range p.sinks {
		out = append(out, SinkTotals{Name: w.name, Written: w.written.Load(), Dropped: w.dropped.Load()})
	}
	return out
}

// drainOnSchedule reads the source every DrainInterval until ctx ends,
// then once more for the interval in progress, and hands each batch to the
// naming stage without waiting for it (unless WaitWhenBehind). It closes
// the queue when done.
func (p *Pipeline) drainOnSchedule(ctx context.Context, queue *batchQueue) {
	defer queue.close()
	tick := time.NewTicker(p.cfg.DrainInterval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-p.failed:
			return
		case <-ctx.Done():
			if b := p.drain(&last); b != nil {
				queue.pushLast(b)
			}
			return
		case <-tick.C:
			if b := p.drain(&last); b != nil {
				p.enqueue(queue, b)
			}
		}
	}
}

// drain reads the source once; last is when the previous drain started.
func (p *Pipeline) drain(last *time.Time) *model.Batch {
	start := time.Now()
	p.metrics.drainLateness.Observe(max(0, start.Sub(last.Add(p.cfg.DrainInterval)).Seconds()))
	*last = start
	batch, err := p.cfg.Source.Drain()
	if err != nil {
		if !p.fail(err) {
			p.log.Error("drain the sampler", slog.Any("err", err))
		}
		return nil
	}
	p.metrics.drain.Observe(time.Since(start).Seconds())
	p.lossesMu.Lock()
	p.losses.Add(batch.Stats)
	p.lossesMu.Unlock()
	return batch
}

// enqueue hands a batch to the naming stage. When that stage is behind,
// the batch is folded into one waiting, or dropped if that cannot be done:
// draining on time matters more than any one batch.
func (p *Pipeline) enqueue(queue *batchQueue, b *model.Batch) {
	if p.cfg.WaitWhenBehind {
		if queue.pushWait(b) == pushFolded {
			p.metrics.batchesFolded.Inc()
		}
		p.metrics.namingQueue.Set(float64(queue.waiting()))
		return
	}
	switch queue.push(b) {
	case pushQueued:
		if p.namingBehind {
			p.log.Info("naming caught up with draining")
		}
		p.namingBehind = false
	case pushFolded:
		p.metrics.batchesFolded.Inc()
	case pushRefused:
		p.dropBatch(b, "naming_behind")
		if !p.namingBehind && len(b.Samples) > 0 {
			p.log.Warn("naming is behind draining: drained batches are dropped until it catches up (ember_batches_dropped_total)",
				slog.Int("queue_batches", queue.maxBatches))
			p.namingBehind = true
		}
	}
	p.metrics.namingQueue.Set(float64(queue.waiting()))
}

// dropBatch counts a batch left unnamed and closes the files it holds.
func (p *Pipeline) dropBatch(b *model.Batch, reason string) {
	defer b.Release()
	if len(b.Samples) == 0 {
		return // nothing lost
	}
	var samples uint64
	for i := range b.Samples {
		samples += b.Samples[i].Count
	}
	p.metrics.batchesDropped.WithLabelValues(reason).Inc()
	p.metrics.samplesDropped.WithLabelValues(reason).Add(float64(samples))
}
