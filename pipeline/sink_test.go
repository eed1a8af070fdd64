package pipeline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// A sink blocked for good costs only its own intervals: the other sink
// receives every interval, with every sample drained, and draining keeps
// its schedule; the blocked sink's drops are counted under its name.
func TestBlockedSinkDoesNotHoldTheOthers(t *testing.T) {
	dr := newFakeDrainer()
	blocked := &fakeSink{name: "blocked", gate: make(chan struct{})}
	defer close(blocked.gate)
	good := &fakeSink{name: "good"}
	cfg := testConfig(dr, &fakeNamer{}, 20*time.Millisecond, 5*time.Millisecond, blocked, good)
	// Long enough for the good sink on a loaded host; Run waits it out
	// for the blocked one.
	cfg.ShutdownTimeout = 5 * time.Second
	// Room for every interval: a loaded host may hold the good sink's
	// goroutine for longer than an interval, which is not what is tested.
	cfg.Sinks[1].QueueIntervals = 1000
	p := mustNew(t, cfg)
	stop := runInBackground(p)

	// Far more intervals than the blocked sink's queue holds. A minute is
	// far beyond the schedule: a timeout means draining waited for a sink.
	dr.waitDrains(t, 60)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	drained := int64(dr.count())
	if got := good.samples(); got != drained {
		t.Errorf("the good sink got %d of the %d samples drained while the other was blocked", got, drained)
	}
	if n := good.intervals(); n < 3 {
		t.Errorf("the good sink got %d intervals over %d drains of 5ms in 20ms intervals", n, drained)
	}
	if sinkOutcomes(p, "blocked", OutcomeBehind) < 1 {
		t.Error("no interval counted as dropped_behind for the blocked sink")
	}
	if n := sinkOutcomes(p, "good", OutcomeBehind) + sinkOutcomes(p, "good", OutcomeShutdown); n != 0 {
		t.Errorf("%d intervals dropped for the good sink", n)
	}
	if got, want := sinkOutcomes(p, "good", OutcomeWritten), int64(good.intervals()); got != want {
		t.Errorf("ember_sink_intervals_total{sink=good,outcome=written} = %d, want the %d it took", got, want)
	}
}

// slowSink takes every interval, each after a delay.
type slowSink struct {
	fakeSink
	delay time.Duration
}

func (s *slowSink) Write(ctx context.Context, iv Interval) error {
	time.Sleep(s.delay)
	return s.fakeSink.Write(ctx, iv)
}

// At stop, every sink gets the interval in progress, written within the
// shutdown timeout even by a slow sink, and each its own copy of the
// profile.
func TestStopFlushesEverySink(t *testing.T) {
	dr := newFakeDrainer()
	fast := &fakeSink{name: "fast"}
	slow := &slowSink{fakeSink: fakeSink{name: "slow"}, delay: 50 * time.Millisecond}
	cfg := testConfig(dr, &fakeNamer{}, time.Hour, 5*time.Millisecond, fast, slow)
	p := mustNew(t, cfg)
	stop := runInBackground(p)
	dr.waitDrains(t, 10)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	drained := int64(dr.count())
	for _, s := range []*fakeSink{fast, &slow.fakeSink} {
		// One interval, or two should the test straddle the hour.
		if got := s.samples(); got != drained || s.intervals() < 1 || s.intervals() > 2 {
			t.Errorf("sink %s got %d samples in %d intervals at stop, want the %d drained in one", s.name, got, s.intervals(), drained)
		}
	}
	if fast.stored[0].Profile == slow.stored[0].Profile {
		t.Error("two sinks share one profile: either may change it under the other")
	}
	for _, tot := range p.Totals() {
		if tot.Written != uint64(fast.intervals()) || tot.Dropped != 0 {
			t.Errorf("sink %s totals %+v, want %d written", tot.Name, tot, fast.intervals())
		}
	}
}

// failingSink fails every write.
type failingSink struct{}

func (failingSink) Name() string                          { return "failing" }
func (failingSink) Write(context.Context, Interval) error { return errors.New("connection refused") }

// lockedBuffer is a log destination safe for the sinks' goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A failing sink's errors are counted and logged under its name, and cost
// nothing else: the run goes on, the other sink gets every interval, and
// Run returns no error.
func TestFailingSinkIsCountedNotFatal(t *testing.T) {
	dr := newFakeDrainer()
	good := &fakeSink{name: "good"}
	cfg := testConfig(dr, &fakeNamer{}, 20*time.Millisecond, 5*time.Millisecond, failingSink{}, good)
	cfg.Sinks[0].QueueIntervals, cfg.Sinks[1].QueueIntervals = 1000, 1000
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p := mustNew(t, cfg)
	stop := runInBackground(p)
	dr.waitDrains(t, 30)
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v for a failing sink", err)
	}
	failed := sinkOutcomes(p, "failing", OutcomeError)
	if want := int64(good.intervals()); failed != want || want < 2 {
		t.Errorf("%d intervals counted as dropped_error at the failing sink, want the %d the good one took", failed, want)
	}
	if got, drained := good.samples(), int64(dr.count()); got != drained {
		t.Errorf("the good sink got %d of %d samples drained", got, drained)
	}
	if out := logs.String(); !strings.Contains(out, "sink=failing") || !strings.Contains(out, "connection refused") {
		t.Errorf("the failing sink's error was not logged with its name:\n%s", out)
	}
}

// A sink's own refusal is counted under its reason and left to it to log.
func TestDropErrorCountsItsReason(t *testing.T) {
	dr := newFakeDrainer()
	full := &refusingSink{err: &DropError{Reason: "disk_full", Err: errors.New("no space")}}
	cfg := testConfig(dr, &fakeNamer{}, time.Hour, 5*time.Millisecond, full)
	var outcomes []string
	cfg.Sinks[0].CountOutcome = func(o string) { outcomes = append(outcomes, o) }
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p := mustNew(t, cfg)
	stop := runInBackground(p)
	dr.waitDrains(t, 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	n := sinkOutcomes(p, "refusing", "dropped_disk_full")
	if n < 1 || int(n) != len(outcomes) {
		t.Errorf("dropped_disk_full counted %d times, outcomes told %v", n, outcomes)
	}
	for _, o := range outcomes {
		if o != "dropped_disk_full" {
			t.Errorf("outcome %q told for a sink that refuses every interval as disk_full", o)
		}
	}
	if strings.Contains(logs.String(), "no space") {
		t.Errorf("the pipeline logged a refusal the sink reports itself:\n%s", logs.String())
	}
}

type refusingSink struct{ err error }

func (*refusingSink) Name() string                            { return "refusing" }
func (s *refusingSink) Write(context.Context, Interval) error { return s.err }
