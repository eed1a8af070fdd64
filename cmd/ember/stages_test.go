package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/symbolizer"
)

// oneSampleSource drains one sample a batch.
type oneSampleSource struct {
	mu   sync.Mutex
	last time.Time
}

func (s *oneSampleSource) Drain() (*model.Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	b := &model.Batch{Start: s.last, End: now, FrequencyHz: 100, PeriodNanos: 1e7,
		Samples: []model.Sample{{PID: 1, TID: 1, Comm: "work", User: []uint64{0x1000}, Count: 1}}}
	s.last = now
	return b, nil
}

// oneFrameNamer names every sample as one frame.
type oneFrameNamer struct{}

func (oneFrameNamer) Profile(b *model.Batch) (*profile.Profile, error) {
	fn := &profile.Function{ID: 1, Name: "work"}
	loc := &profile.Location{ID: 1, Address: 0x1000, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: b.PeriodNanos,
		TimeNanos: b.Start.UnixNano(), DurationNanos: b.End.Sub(b.Start).Nanoseconds(),
		Function: []*profile.Function{fn}, Location: []*profile.Location{loc},
	}
	for _, s := range b.Samples {
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{int64(s.Count)}})
	}
	return p, nil
}

// gatedStore waits for gate (while set), then answers with the next of
// errs (nil once they run out) and keeps what it took.
type gatedStore struct {
	gate   chan struct{}
	mu     sync.Mutex
	errs   []error
	stored int
}

func (s *gatedStore) Append(ctx context.Context, _ *profile.Profile, _ map[string]string) error {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.stored++
	return nil
}

type noCounters struct{}

func (noCounters) Counters() storage.Stats      { return storage.Stats{} }
func (noCounters) Stats() symbolizer.CacheStats { return symbolizer.CacheStats{} }

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func testDaemon(src *oneSampleSource, store profileStore, log *slog.Logger) *daemon {
	cfg := defaultDaemonConfig()
	cfg.Interval, cfg.DrainInterval, cfg.ShutdownDeadline = 20*time.Millisecond, 5*time.Millisecond, time.Minute
	return &daemon{cfg: cfg, log: log, collector: src, symbolizer: oneFrameNamer{}, store: store,
		metrics: newDaemonMetrics(prometheus.NewRegistry(), noCounters{}, noCounters{}), live: newLiveFeed()}
}

// The store is the daemon's sink, and ember_intervals_total keeps its
// outcomes as they were named before sinks: a blocked store's intervals
// are dropped_store_behind, those it took are stored.
func TestDaemonCountsStoreIntervals(t *testing.T) {
	src := &oneSampleSource{last: time.Now()}
	store := &gatedStore{gate: make(chan struct{})}
	d := testDaemon(src, store, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	behind := d.metrics.intervals.WithLabelValues("dropped_store_behind")
	for deadline := time.Now().Add(time.Minute); counterValue(behind) < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no interval counted as dropped_store_behind while the store was blocked")
		}
	}
	close(store.gate)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := counterValue(d.metrics.intervals.WithLabelValues("stored")); int(got) != store.stored || got < 2 {
		t.Errorf(`ember_intervals_total{outcome="stored"} = %v, the store took %d`, got, store.stored)
	}
}

// A full disk drops intervals as dropped_disk_full and is logged once per
// episode, with its end; sampling goes on.
func TestStoreSinkDiskFullEpisode(t *testing.T) {
	src := &oneSampleSource{last: time.Now()}
	full := fmt.Errorf("1 byte free: %w", storage.ErrDiskFull)
	store := &gatedStore{errs: []error{full, full, full}}
	var logs bytes.Buffer
	var mu sync.Mutex
	d := testDaemon(src, store, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	for deadline := time.Now().Add(time.Minute); counterValue(d.metrics.intervals.WithLabelValues("stored")) < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing stored after the disk had room again")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := counterValue(d.metrics.intervals.WithLabelValues("dropped_disk_full")); got != 3 {
		t.Errorf("%v intervals counted as dropped_disk_full, want 3", got)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if strings.Count(out, "the disk is nearly full") != 1 || strings.Count(out, "disk space is back") != 1 {
		t.Errorf("want the episode logged once, then its end:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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
