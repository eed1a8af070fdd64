package pipeline

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ember-profiler/ember/model"
)

// fakeDrainer hands out batches of one sample each, every one holding a
// release counter, and runs onDrain (if set) inside each Drain.
type fakeDrainer struct {
	mu       sync.Mutex
	last     time.Time
	drained  int
	released atomic.Int64
	onDrain  func(n int, now time.Time)
	calls    chan int // receives the number of drains so far, if not full
}

type countRelease struct {
	n    *atomic.Int64
	once sync.Once
}

func (r *countRelease) Release() { r.once.Do(func() { r.n.Add(1) }) }

func newFakeDrainer() *fakeDrainer {
	return &fakeDrainer{last: time.Now(), calls: make(chan int, 1000)}
}

func (f *fakeDrainer) Drain() (*model.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.drained++
	if f.onDrain != nil {
		f.onDrain(f.drained, now)
	}
	b := &model.Batch{Start: f.last, End: now, FrequencyHz: 100, PeriodNanos: 1e7,
		Samples: []model.Sample{{PID: 1, TID: 1, Comm: "work", User: []uint64{0x1000}, Count: 1}}}
	b.HoldUntilRelease(&countRelease{n: &f.released})
	f.last = now
	select {
	case f.calls <- f.drained:
	default:
	}
	return b, nil
}

func (f *fakeDrainer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.drained
}

// waitDrains waits until the drainer has been called n times; a minute is
// far beyond any schedule, so a timeout means draining waited for something.
func (f *fakeDrainer) waitDrains(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case got := <-f.calls:
			if got >= n {
				return
			}
		case <-timeout:
			t.Fatalf("the drainer was called %d times in a minute, want %d: draining waited for naming or storing", f.count(), n)
		}
	}
}

// fakeNamer names every batch as one-location profile; while gate is set,
// it waits for the gate to close first.
type fakeNamer struct{ gate chan struct{} }

func (n *fakeNamer) Profile(b *model.Batch) (*profile.Profile, error) {
	if n.gate != nil {
		<-n.gate
	}
	fn := &profile.Function{ID: 1, Name: "work"}
	loc := &profile.Location{ID: 1, Address: 0x1000, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:        b.PeriodNanos,
		TimeNanos:     b.Start.UnixNano(),
		DurationNanos: b.End.Sub(b.Start).Nanoseconds(),
		Function:      []*profile.Function{fn},
		Location:      []*profile.Location{loc},
	}
	for _, s := range b.Samples {
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc},
			Value: []int64{int64(s.Count), int64(s.Count) * b.PeriodNanos}})
	}
	return p, nil
}

// fakeSink keeps what it is given, refuses with a cancelled context as
// the real store does, and waits for gate first while gate is set.
type fakeSink struct {
	name    string
	gate    chan struct{}
	mu      sync.Mutex
	stored  []Interval
	refused []error
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Write(ctx context.Context, iv Interval) error {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		s.refused = append(s.refused, err)
		return err
	}
	s.stored = append(s.stored, iv)
	return nil
}

func (s *fakeSink) samples() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, iv := range s.stored {
		n += total(iv.Profile)
	}
	return n
}

func (s *fakeSink) intervals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

func total(p *profile.Profile) int64 {
	var n int64
	for _, s := range p.Sample {
		n += s.Value[0]
	}
	return n
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func droppedBatches(p *Pipeline, reason string) int64 {
	return int64(counterValue(p.metrics.batchesDropped.WithLabelValues(reason)))
}

func sinkOutcomes(p *Pipeline, sink, outcome string) int64 {
	return int64(counterValue(p.metrics.sinkIntervals.WithLabelValues(sink, outcome)))
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// testConfig is the daemon's setup with fakes: a sink queue of one, a
// minute to stop.
func testConfig(src Source, n Namer, interval, drainInterval time.Duration, sinks ...Sink) Config {
	cfg := Config{Source: src, Namer: n, DrainInterval: drainInterval, Interval: interval,
		MaxBatchSamples: 1 << 14, ShutdownTimeout: time.Minute, Metrics: NewMetrics(prometheus.NewRegistry()), Logger: quietLog()}
	for _, s := range sinks {
		cfg.Sinks = append(cfg.Sinks, SinkConfig{Sink: s, QueueIntervals: 1})
	}
	return cfg
}

func mustNew(t *testing.T, cfg Config) *Pipeline {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runInBackground(p *Pipeline) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// A naming stage that blocks does not stop draining: the maps are read on
// schedule; batches the naming queue cannot take are folded into the newest
// one waiting, or, when that one is full, dropped and counted; every
// batch's files are released, named or dropped; and every sample drained
// is stored or counted as dropped.
func TestDrainingDoesNotWaitForNaming(t *testing.T) {
	for _, tc := range []struct {
		name string
		// samplesPerBatch bounds a folded batch (one sample a drain here).
		samplesPerBatch uint32
	}{
		{"fold", 1 << 14},
		{"drop", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dr := newFakeDrainer()
			namer := &fakeNamer{gate: make(chan struct{})}
			store := &fakeSink{name: "store"}
			cfg := testConfig(dr, namer, time.Hour, 5*time.Millisecond, store)
			cfg.MaxBatchSamples = int(tc.samplesPerBatch)
			p := mustNew(t, cfg)
			stop := runInBackground(p)

			const drains = namingQueueBatches + 20
			dr.waitDrains(t, drains+1) // the next drain starts once a batch is queued, folded or dropped
			// One batch is in the namer (or about to be) and namingQueueBatches wait.
			beyond := int64(drains - namingQueueBatches - 1)
			dropped, folded := droppedBatches(p, "naming_behind"), int64(counterValue(p.metrics.batchesFolded))
			if tc.samplesPerBatch == 1 && dropped < beyond {
				t.Errorf("%d batches counted as dropped after %d drains with naming blocked, want at least %d", dropped, drains, beyond)
			}
			if tc.samplesPerBatch > 1 && (dropped != 0 || folded < beyond) {
				t.Errorf("%d batches dropped and %d folded after %d drains with naming blocked, want none dropped and at least %d folded",
					dropped, folded, drains, beyond)
			}
			if released := dr.released.Load(); tc.samplesPerBatch == 1 && released < beyond {
				t.Errorf("%d batches released after %d drains with naming blocked: dropped batches keep their files", released, drains)
			}
			close(namer.gate)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			drained := int64(dr.count())
			if released := dr.released.Load(); released != drained {
				t.Errorf("%d of %d batches released after the pipeline stopped", released, drained)
			}
			lost := int64(counterValue(p.metrics.samplesDropped.WithLabelValues("naming_behind")))
			if stored := store.samples(); stored+lost != drained {
				t.Errorf("%d samples stored + %d counted as dropped, want the %d drained", stored, lost, drained)
			}
		})
	}
}

// A sink that blocks does not stop draining or naming: intervals the sink
// cannot take are dropped and counted.
func TestDrainingDoesNotWaitForASink(t *testing.T) {
	dr := newFakeDrainer()
	store := &fakeSink{name: "store", gate: make(chan struct{})}
	p := mustNew(t, testConfig(dr, &fakeNamer{}, 20*time.Millisecond, 5*time.Millisecond, store))
	stop := runInBackground(p)

	dr.waitDrains(t, 40) // ten intervals or so
	dropped := p.metrics.sinkIntervals.WithLabelValues("store", OutcomeBehind)
	for deadline := time.Now().Add(time.Minute); counterValue(dropped) < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no interval counted as dropped while the store was blocked")
		}
	}
	close(store.gate)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := store.intervals(); n < 2 {
		t.Errorf("%d intervals stored, want at least the one being written and the one queued", n)
	}
}

// SIGTERM arriving while the drain that ends an interval runs: that
// interval and the one in progress are both stored, with a context the
// signal did not cancel. Repeated, with the signal at different drains.
func TestStopAtIntervalBoundaryStoresEverything(t *testing.T) {
	const interval, drainInterval = 40 * time.Millisecond, 5 * time.Millisecond
	for round := range 12 {
		dr := newFakeDrainer()
		store := &fakeSink{name: "store"}
		p := mustNew(t, testConfig(dr, &fakeNamer{}, interval, drainInterval, store))
		ctx, cancel := context.WithCancel(context.Background())
		// The signal comes in the first drain well past a boundary (so the
		// ticker's time is past it too), in the first or a later interval.
		var boundary time.Time
		dr.onDrain = func(n int, now time.Time) {
			if n == 1 {
				boundary = nextBoundary(now, interval).Add(time.Duration(round%3) * interval)
			}
			if !now.Before(boundary.Add(drainInterval / 2)) {
				cancel()
			}
		}
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		drained := int64(dr.count())
		if stored := store.samples(); stored != drained {
			t.Fatalf("round %d: %d of %d drained samples stored; store refused %v", round, stored, drained, store.refused)
		}
	}
}

// A sink that never answers does not hold the pipeline past its shutdown
// timeout.
func TestStopIsBoundedByTheShutdownTimeout(t *testing.T) {
	store := &fakeSink{name: "store", gate: make(chan struct{})}
	defer close(store.gate)
	cfg := testConfig(newFakeDrainer(), &fakeNamer{}, time.Hour, 5*time.Millisecond, store)
	cfg.ShutdownTimeout = 75 * time.Millisecond
	p := mustNew(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the pipeline waited for a sink that never answered")
	}
}
