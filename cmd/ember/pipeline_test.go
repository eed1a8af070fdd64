package main

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
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/symbolizer"
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

// fakeStore keeps what it is given, refuses with a cancelled context as
// the real store does, and waits for gate first while gate is set.
type fakeStore struct {
	gate    chan struct{}
	mu      sync.Mutex
	stored  []*profile.Profile
	refused []error
}

func (s *fakeStore) Append(ctx context.Context, p *profile.Profile, _ map[string]string) error {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		s.refused = append(s.refused, err)
		return err
	}
	s.stored = append(s.stored, p)
	return nil
}

func (s *fakeStore) samples() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.stored {
		n += total(p)
	}
	return n
}

type noCounters struct{}

func (noCounters) Counters() storage.Stats      { return storage.Stats{} }
func (noCounters) Stats() symbolizer.CacheStats { return symbolizer.CacheStats{} }
func quietLog() *slog.Logger                    { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func droppedBatches(d *daemon, reason string) int64 {
	return int64(counterValue(d.metrics.batchesDropped.WithLabelValues(reason)))
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func testDaemon(dr drainer, n namer, st profileStore, interval, drainInterval time.Duration) *daemon {
	cfg := defaultDaemonConfig()
	cfg.Interval, cfg.DrainInterval, cfg.ShutdownDeadline = interval, drainInterval, time.Minute
	return &daemon{cfg: cfg, log: quietLog(), collector: dr, symbolizer: n, store: st,
		metrics: newDaemonMetrics(prometheus.NewRegistry(), noCounters{}, noCounters{}), live: newLiveFeed()}
}

func runInBackground(d *daemon) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
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
			store := &fakeStore{}
			d := testDaemon(dr, namer, store, time.Hour, 5*time.Millisecond)
			d.cfg.CountMapEntries = tc.samplesPerBatch
			stop := runInBackground(d)

			const drains = namingQueueBatches + 20
			dr.waitDrains(t, drains+1) // the next drain starts once a batch is queued, folded or dropped
			// One batch is in the namer (or about to be) and namingQueueBatches wait.
			beyond := int64(drains - namingQueueBatches - 1)
			dropped, folded := droppedBatches(d, "naming_behind"), int64(counterValue(d.metrics.batchesFolded))
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
				t.Errorf("%d of %d batches released after the daemon stopped", released, drained)
			}
			lost := int64(counterValue(d.metrics.samplesDropped.WithLabelValues("naming_behind")))
			if stored := store.samples(); stored+lost != drained {
				t.Errorf("%d samples stored + %d counted as dropped, want the %d drained", stored, lost, drained)
			}
		})
	}
}

// A store that blocks does not stop draining or naming: intervals the store
// cannot take are dropped and counted.
func TestDrainingDoesNotWaitForStoring(t *testing.T) {
	dr := newFakeDrainer()
	store := &fakeStore{gate: make(chan struct{})}
	d := testDaemon(dr, &fakeNamer{}, store, 20*time.Millisecond, 5*time.Millisecond)
	stop := runInBackground(d)

	dr.waitDrains(t, 40) // ten intervals or so
	dropped := d.metrics.intervals.WithLabelValues("dropped_store_behind")
	for deadline := time.Now().Add(time.Minute); counterValue(dropped) < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no interval counted as dropped while the store was blocked")
		}
	}
	close(store.gate)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(store.stored); n < storeQueueIntervals+1 {
		t.Errorf("%d intervals stored, want at least the one being written and the %d queued", n, storeQueueIntervals)
	}
}

// SIGTERM arriving while the drain that ends an interval runs: that
// interval and the one in progress are both stored, with a context the
// signal did not cancel. Repeated, with the signal at different drains.
func TestStopAtIntervalBoundaryStoresEverything(t *testing.T) {
	const interval, drainInterval = 40 * time.Millisecond, 5 * time.Millisecond
	for round := range 12 {
		dr := newFakeDrainer()
		store := &fakeStore{}
		d := testDaemon(dr, &fakeNamer{}, store, interval, drainInterval)
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
		if err := d.run(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		drained := int64(dr.count())
		if stored := store.samples(); stored != drained {
			t.Fatalf("round %d: %d of %d drained samples stored; store refused %v", round, stored, drained, store.refused)
		}
	}
}

// A live profile in progress answers at once when the daemon stops, so it
// does not hold the HTTP server's shutdown for its whole duration.
func TestLiveProfileEndsAtStop(t *testing.T) {
	f := newLiveFeed()
	done := make(chan error, 1)
	go func() {
		_, err := f.Profile(context.Background(), time.Hour, "")
		done <- err
	}()
	f.stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("live profile at stop: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a live profile kept waiting after the daemon stopped")
	}
}

// A store that never answers does not hold the daemon past its shutdown
// timeout.
func TestStopIsBoundedByTheShutdownTimeout(t *testing.T) {
	store := &fakeStore{gate: make(chan struct{})}
	defer close(store.gate)
	d := testDaemon(newFakeDrainer(), &fakeNamer{}, store, time.Hour, 5*time.Millisecond)
	d.cfg.ShutdownDeadline = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the daemon waited for a store that never answered")
	}
}
