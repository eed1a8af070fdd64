package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
)

// A run that is one interval (record) hands the sinks one interval at
// stop, spanning every drain and holding every sample, even those drained
// while naming was blocked: a drain waits rather than drop.
func TestWholeRunIsOneInterval(t *testing.T) {
	dr := newFakeDrainer()
	namer := &fakeNamer{gate: make(chan struct{})}
	file := &fakeSink{name: "file"}
	cfg := testConfig(dr, namer, 0, time.Millisecond, file)
	// One sample a batch: no folding, and the queue is full at two waiting.
	cfg.MaxBatchSamples = 1
	cfg.ShutdownTimeout, cfg.WaitWhenBehind, cfg.FailFast = 0, true, true
	p := mustNew(t, cfg)
	stop := runInBackground(p)
	dr.waitDrains(t, 3)
	time.Sleep(50 * time.Millisecond) // fifty drains' time
	if n := dr.count(); n > 4 {
		t.Errorf("%d drains with naming blocked and room for 3 batches: drains did not wait", n)
	}
	close(namer.gate)
	dr.waitDrains(t, 20)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	drained := int64(dr.count())
	if file.intervals() != 1 || file.samples() != drained {
		t.Fatalf("%d intervals holding %d samples, want one holding the %d drained", file.intervals(), file.samples(), drained)
	}
	if dropped := droppedBatches(p, "naming_behind"); dropped != 0 {
		t.Errorf("%d batches dropped", dropped)
	}
	iv := file.stored[0]
	if d := iv.End.Sub(iv.Start); d <= 0 || iv.Start.UnixNano() > iv.Profile.TimeNanos {
		t.Errorf("interval spans %v from %v; profile starts %v", d, iv.Start, time.Unix(0, iv.Profile.TimeNanos))
	}
}

// emptySource drains batches without samples.
type emptySource struct{ last time.Time }

func (s *emptySource) Drain() (*model.Batch, error) {
	now := time.Now()
	b := &model.Batch{Start: s.last, End: now, FrequencyHz: 100, PeriodNanos: 1e7}
	s.last = now
	return b, nil
}

// A recording with no samples is still written: an empty profile of the
// namer's shape, spanning the run.
func TestWholeRunWithoutSamples(t *testing.T) {
	file := &fakeSink{name: "file"}
	cfg := testConfig(&emptySource{last: time.Now()}, &fakeNamer{}, 0, 5*time.Millisecond, file)
	cfg.FailFast = true
	p := mustNew(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if file.intervals() != 1 {
		t.Fatalf("%d intervals written for an empty run, want one", file.intervals())
	}
	iv := file.stored[0]
	if len(iv.Profile.Sample) != 0 || len(iv.Profile.SampleType) == 0 || !iv.End.After(iv.Start) {
		t.Errorf("empty run: %d samples, sample types %v, span %v to %v", len(iv.Profile.Sample), iv.Profile.SampleType, iv.Start, iv.End)
	}
}

// failingNamer fails every naming.
type failingNamer struct{}

func (failingNamer) Profile(*model.Batch) (*profile.Profile, error) {
	return nil, errors.New("no symbols")
}

// Under FailFast the first error ends the run, Run returns it, and no
// sink gets a partial interval.
func TestFailFastReturnsTheError(t *testing.T) {
	file := &fakeSink{name: "file"}
	cfg := testConfig(newFakeDrainer(), failingNamer{}, 0, 5*time.Millisecond, file)
	cfg.FailFast, cfg.ShutdownTimeout = true, 0
	p := mustNew(t, cfg)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }() // ends by itself
	select {
	case err := <-done:
		if err == nil || err.Error() != "symbolize: no symbols" {
			t.Errorf("Run returned %v, want the naming error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a failed run kept draining")
	}
	if file.intervals() != 0 {
		t.Errorf("%d intervals written after a failure", file.intervals())
	}
}
