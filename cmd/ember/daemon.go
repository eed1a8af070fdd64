package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/symbolizer"
	"github.com/ember-profiler/ember/ui"
	"github.com/ember-profiler/ember/web"
)

func newDaemonCommand() *cobra.Command {
	flags := defaultDaemonConfig()
	var labels []string
	var configPath string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Profile the host continuously and keep the history",
		Long: `Samples every CPU all the time and stores a symbolized profile of every
interval in an embedded store under --data-dir, keeping --retention of history
within --max-disk. SIGTERM or SIGINT flush the current interval and close the
store; a restart continues on the same data.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadDaemonConfig(configPath, flags, labels, cmd.Flags())
			if err == nil {
				err = cfg.checkFiles()
			}
			if err != nil {
				return &usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if os.Getenv("GOGC") == "" {
				// The daemon's live heap is mostly long-lived caches; letting
				// the heap grow to twice that before collecting cost more
				// memory than the collections it saves cost CPU.
				debug.SetGCPercent(daemonGCPercent)
			}
			if cfg.MemoryLimit > 0 {
				debug.SetMemoryLimit(int64(cfg.MemoryLimit))
			}
			return runDaemon(ctx, cfg, slog.Default())
		},
	}
	bindDaemonFlags(cmd.Flags(), &flags, &labels, &configPath)
	return cmd
}

// profileStore is what the daemon needs of the store.
type profileStore interface {
	Append(ctx context.Context, p *profile.Profile, hostLabels map[string]string) error
}

// daemonGCPercent is the daemon's GOGC unless the environment sets one.
const daemonGCPercent = 50

// storeOpenRetry is how often a daemon waiting for disk space tries again.
const storeOpenRetry = 30 * time.Second

// runDaemon samples until ctx ends, then flushes what it holds.
func runDaemon(ctx context.Context, cfg daemonConfig, log *slog.Logger) error {
	store, err := openStore(ctx, storage.Options{
		Dir:              cfg.DataDir,
		Retention:        cfg.Retention,
		MaxDiskBytes:     int64(cfg.MaxDisk),
		MinFreeDiskBytes: int64(cfg.MinFreeDisk),
		Logger:           log,
	}, log, storeOpenRetry, storage.Open)
	if err != nil || store == nil {
		return err // nil: stopped while waiting for disk space
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close the store", slog.Any("err", err))
		}
	}()
	token, err := readToken(cfg.AuthTokenFile)
	if err != nil {
		return err
	}
	listener, err := listen(cfg.Listen, cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	defer listener.Close()
	if warning := web.CheckListenSafety(cfg.Listen, token != "", cfg.TLSCert != ""); warning != "" {
		log.Warn(warning)
	}
	col, err := collector.New(collector.Config{
		FrequencyHz:     cfg.FrequencyHz,
		IncludeIdle:     cfg.IncludeIdle,
		StackMapEntries: cfg.StackMapEntries,
		CountMapEntries: cfg.CountMapEntries,
		Unwind:          cfg.Unwind,
		// Built tables survive restarts next to the store.
		UnwindTableBytes: int64(cfg.UnwindTableSize),
		UnwindCacheDir:   filepath.Join(cfg.DataDir, "unwind-cache"),
		Logger:           log,
	})
	if err != nil {
		return err
	}
	defer col.Close()
	sym, err := symbolizer.New(symbolizer.Options{MaxCacheBytes: int64(cfg.SymbolCacheSize), DebugDirs: cfg.DebugDirs})
	if err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &daemon{cfg: cfg, log: log, collector: col, symbolizer: sym, store: store,
		metrics: newDaemonMetrics(registry, store, sym), live: newLiveFeed()}
	allowedHosts := slices.Clone(cfg.AllowedHosts)
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" {
		allowedHosts = append(allowedHosts, host)
	}
	api, err := web.New(web.Options{
		Store: web.FromStorage(store), Live: d.live, Registry: registry, AuthToken: token,
		AllowedHosts: allowedHosts, Logger: log, UI: ui.FS(),
		// A range is final once its last interval is written.
		Limits: web.Limits{FlameCacheSettle: cfg.Interval + time.Minute},
	})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- api.Serve(ctx, listener) }()

	log.Info("ember daemon sampling", slog.String("data_dir", cfg.DataDir), slog.Int("hz", cfg.FrequencyHz),
		slog.Duration("interval", cfg.Interval), slog.Duration("retention", cfg.Retention),
		slog.String("api", listener.Addr().String()))
	runErr := d.run(ctx)
	// The API stops with ctx; wait for it before the store closes under it.
	if err := <-served; err != nil && ctx.Err() == nil {
		log.Error("HTTP API stopped", slog.Any("err", err))
	}
	return runErr
}

// drainer and namer are the collector and symbolizer as the daemon uses them.
type drainer interface {
	Drain() (*collector.Batch, error)
}

type namer interface {
	Profile(*collector.Batch) (*profile.Profile, error)
}

type daemon struct {
	cfg        daemonConfig
	log        *slog.Logger
	collector  drainer
	symbolizer namer
	store      profileStore
	metrics    *daemonMetrics
	live       *liveFeed

	// pending holds the symbolized drains of the interval in progress.
	pending []*profile.Profile
	stats   collector.Stats
	// diskFull is set while the store refuses writes for lack of space, so
	// the condition is logged when it starts and ends, not every interval.
	diskFull bool
	// Counters over the daemon's life, for logs now and metrics later.
	intervalsWritten, intervalsDropped uint64
}

// run drains every DrainInterval and stores a profile at every interval
// boundary (aligned to the wall clock, so intervals line up across restarts).
func (d *daemon) run(ctx context.Context) error {
	tick := time.NewTicker(d.cfg.DrainInterval)
	defer tick.Stop()
	boundary := time.Now().Truncate(d.cfg.Interval).Add(d.cfg.Interval)
	for {
		select {
		case <-ctx.Done():
			d.drain()
			flushCtx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownDeadline)
			defer cancel()
			d.flush(flushCtx)
			d.log.Info("ember daemon stopped", slog.Uint64("intervals_written", d.intervalsWritten),
				slog.Uint64("intervals_dropped", d.intervalsDropped))
			return nil
		case now := <-tick.C:
			d.drain()
			if now.Before(boundary) {
				continue
			}
			d.flush(ctx)
			for !now.Before(boundary) {
				boundary = boundary.Add(d.cfg.Interval)
			}
		}
	}
}

// drain reads the sampler and names the batch at once, while the files of
// processes that exited are still held.
func (d *daemon) drain() {
	start := time.Now()
	batch, err := d.collector.Drain()
	if err != nil {
		d.log.Error("drain the sampler", slog.Any("err", err))
		return
	}
	drained := time.Now()
	d.metrics.drain.Observe(drained.Sub(start).Seconds())
	d.metrics.observeBatch(batch.Stats)
	addStats(&d.stats, batch.Stats)
	if len(batch.Samples) == 0 {
		return
	}
	p, err := d.symbolizer.Profile(batch)
	if err != nil {
		d.log.Error("symbolize", slog.Any("err", err))
		return
	}
	d.metrics.symbolize.Observe(time.Since(drained).Seconds())
	d.pending = append(d.pending, p)
	d.live.publish(p)
}

// flush stores the interval's profile. A store error loses this interval
// only: sampling goes on and the next interval is tried afresh.
func (d *daemon) flush(ctx context.Context) {
	pending, stats := d.pending, d.stats
	d.pending, d.stats = nil, collector.Stats{}
	d.logLosses(stats)
	if len(pending) == 0 {
		return
	}
	merged, err := mergeInterval(pending)
	if err != nil {
		d.intervalsDropped++
		d.metrics.intervals.WithLabelValues("dropped_error").Inc()
		d.log.Error("merge the interval's profiles", slog.Any("err", err))
		return
	}
	start := time.Now()
	err = d.store.Append(ctx, merged, d.cfg.Labels)
	d.metrics.storeAppend.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, storage.ErrDiskFull):
		d.intervalsDropped++
		d.metrics.intervals.WithLabelValues("dropped_disk_full").Inc()
		if !d.diskFull {
			d.log.Error("the disk is nearly full: profiles are not stored until space returns; sampling goes on",
				slog.String("data_dir", d.cfg.DataDir), slog.Any("err", err))
		}
		d.diskFull = true
	case err != nil:
		d.intervalsDropped++
		d.metrics.intervals.WithLabelValues("dropped_error").Inc()
		d.log.Error("store the interval's profile", slog.Any("err", err))
	default:
		d.metrics.intervals.WithLabelValues("stored").Inc()
		if d.diskFull {
			d.log.Info("disk space is back: storing profiles again")
		}
		d.diskFull = false
		d.intervalsWritten++
	}
}

// mergeInterval merges an interval's drains into one profile spanning them.
func mergeInterval(parts []*profile.Profile) (*profile.Profile, error) {
	merged, err := profile.Merge(parts)
	if err != nil {
		return nil, err
	}
	first, last := parts[0], parts[len(parts)-1]
	merged.TimeNanos = first.TimeNanos
	merged.DurationNanos = last.TimeNanos + last.DurationNanos - first.TimeNanos
	return merged, nil
}

// logLosses warns when more than 1% of an interval's samples lost a stack.
func (d *daemon) logLosses(s collector.Stats) {
	var lost uint64
	for r, n := range s.UserLost {
		if r != collector.LostKernelThread && r != collector.LostExiting {
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
