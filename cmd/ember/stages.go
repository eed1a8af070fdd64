package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ember-profiler/ember/internal/mainmapping"
	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/pipeline"
	"github.com/ember-profiler/ember/storage"
)

// The commands' pieces of the pipeline: what wraps the collector and the
// symbolizer, and the sinks.

// observedSource counts every drained batch's sampler statistics.
type observedSource struct {
	pipeline.Source
	metrics *daemonMetrics
}

func (s observedSource) Drain() (*model.Batch, error) {
	b, err := s.Source.Drain()
	if err == nil {
		s.metrics.observeBatch(b.Stats)
	}
	return b, err
}

// liveNamer publishes each named drain to live profiles.
type liveNamer struct {
	pipeline.Namer
	live *liveFeed
}

func (n liveNamer) Profile(b *model.Batch) (*profile.Profile, error) {
	p, err := n.Namer.Profile(b)
	if err == nil {
		n.live.publish(p)
	}
	return p, err
}

// storeSink appends each interval to the daemon's store.
type storeSink struct {
	store         profileStore
	labels        map[string]string
	dataDir       string
	log           *slog.Logger
	appendSeconds prometheus.Histogram
	// stored, if set, is given each interval after it is stored, with
	// the host labels stored with it: exporters send only what the store
	// holds, from memory while they keep up.
	stored func(p *profile.Profile, hostLabels map[string]string)
	// diskFull is set while the disk is too full, so that each episode
	// is logged when it starts and ends.
	diskFull bool
}

var _ pipeline.Sink = (*storeSink)(nil)

func (s *storeSink) Name() string { return "store" }

func (s *storeSink) Write(ctx context.Context, iv pipeline.Interval) error {
	start := time.Now()
	err := s.store.Append(ctx, iv.Profile, s.labels)
	s.appendSeconds.Observe(time.Since(start).Seconds())
	if errors.Is(err, storage.ErrDiskFull) {
		if !s.diskFull {
			s.log.Error("the disk is nearly full: profiles are not stored until space returns; sampling goes on",
				slog.String("data_dir", s.dataDir), slog.Any("err", err))
		}
		s.diskFull = true
		return &pipeline.DropError{Reason: "disk_full", Err: err}
	}
	if err == nil && s.diskFull {
		s.log.Info("disk space is back: storing profiles again")
		s.diskFull = false
	}
	if err != nil {
		return fmt.Errorf("store the interval's profile: %w", err)
	}
	if s.stored != nil {
		s.stored(iv.Profile, s.labels)
	}
	return nil
}

// fileSink writes record's one interval to its output.
type fileSink struct {
	out    *output
	name   string // the output as the user named it
	encode func(io.Writer, *profile.Profile) error
	// elapsed is the span sampled, for the summary.
	elapsed time.Duration
	// defaultType is the profile's default sample type; "" leaves it unset.
	defaultType string
}

var _ pipeline.Sink = (*fileSink)(nil)

func (f *fileSink) Name() string { return "file" }

func (f *fileSink) Write(_ context.Context, iv pipeline.Interval) error {
	p := iv.Profile
	f.elapsed = iv.End.Sub(iv.Start)
	p.TimeNanos, p.DurationNanos = iv.Start.UnixNano(), f.elapsed.Nanoseconds()
	mainmapping.Place(p)
	if f.defaultType != "" {
		p.DefaultSampleType = f.defaultType
	}
	if err := f.out.commit(func(w io.Writer) error { return f.encode(w, p) }); err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	return nil
}
