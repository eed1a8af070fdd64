package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/threadprio"
	"github.com/ember-profiler/ember/pipeline"
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
		Dir:                  cfg.DataDir,
		Retention:            cfg.Retention,
		MaxDiskBytes:         int64(cfg.MaxDisk),
		MinFreeDiskBytes:     int64(cfg.MinFreeDisk),
		Logger:               log,
		DictionaryCacheBytes: int64(cfg.DictCacheSize),
		PathCacheBytes:       int64(cfg.PathCacheSize),
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
		OffCPU:          cfg.OffCPU,
		OffCPUMinWait:   cfg.OffCPUMinWait,
		StackMapEntries: cfg.StackMapEntries,
		CountMapEntries: cfg.CountMapEntries,
		Unwind:          cfg.Unwind,
		// Built tables survive restarts next to the store.
		UnwindTableBytes: int64(cfg.UnwindTableSize),
		UnwindCacheDir:   filepath.Join(cfg.DataDir, "unwind-cache"),
		// EMBER_POLL_EVENTS=0 goes back to waiting in a system call, for
		// comparison (docs/benchmarks.md, "The event reader waits in Go's
		// poller"); not a setting.
		EventsInSyscall: os.Getenv("EMBER_POLL_EVENTS") == "0",
		NoPython:        !cfg.Python,
		// Batches are named out of step with draining (see pipeline.Run).
		HoldBatchFiles: true,
		Logger:         log,
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
	exps, err := newExporters(cfg.Export, store, registry, log)
	if err != nil {
		return err
	}
	defer exps.close()
	d := &daemon{cfg: cfg, log: log, collector: col, symbolizer: sym, store: store,
		metrics: newDaemonMetrics(registry, store, sym), live: newLiveFeed(), exporters: exps}
	var sinks func() any
	if exps != nil {
		sinks = exps.statuses
	}
	allowedHosts := slices.Clone(cfg.AllowedHosts)
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" {
		allowedHosts = append(allowedHosts, host)
	}
	api, err := web.New(web.Options{
		Store: web.FromStorage(store), Live: d.live, Registry: registry, AuthToken: token,
		AllowedHosts: allowedHosts, Logger: log, UI: ui.FS(), RaiseQuery: raiseQueries(cfg.QueryNice, log), Sinks: sinks,
		// A range is final once its last interval is written.
		Limits: web.Limits{FlameCacheSettle: cfg.Interval + time.Minute, ShutdownTimeout: shutdownWorkTime(cfg)},
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

type daemon struct {
	cfg        daemonConfig
	log        *slog.Logger
	collector  pipeline.Source
	symbolizer pipeline.Namer
	store      profileStore
	metrics    *daemonMetrics
	live       *liveFeed
	exporters  *exporters // nil without --export
}

// shutdownWorkTime is how long after a stop signal the last interval may
// take to be named and stored, and requests in flight to finish. The rest of
// --shutdown-timeout is for closing the collector and the store (0.03 s and
// 1 s measured on a busy host, bench/daemon-busy.sh).
func shutdownWorkTime(cfg daemonConfig) time.Duration { return cfg.ShutdownDeadline * 3 / 4 }

// exportFlushTime is how long exporters may take at stop to send the
// intervals stored last; what they do not send goes at the next start.
func exportFlushTime(cfg daemonConfig) time.Duration { return cfg.ShutdownDeadline / 5 }

// storeQueueIntervals bounds the intervals waiting for the store beside
// the one it writes.
const storeQueueIntervals = 1

// run drains every DrainInterval and stores a profile at every interval
// boundary (see pipeline.Run) until ctx ends, then stores the interval in
// progress within the shutdown deadline.
func (d *daemon) run(ctx context.Context) error {
	// Live profiles end with the last drain named.
	defer d.live.stop()
	store := &storeSink{store: d.store, labels: d.cfg.Labels, dataDir: d.cfg.DataDir, log: d.log, appendSeconds: d.metrics.storeAppend,
		stored: d.exporters.stored}
	// Exporters follow the store; they stop with ctx and then send what
	// the last intervals stored left (see exporters.finish).
	exportCtx, stopExport := context.WithCancel(ctx)
	defer stopExport()
	d.exporters.start(exportCtx)
	p, err := pipeline.New(pipeline.Config{
		Source: observedSource{d.collector, d.metrics},
		Namer:  liveNamer{d.symbolizer, d.live},
		Sinks: []pipeline.SinkConfig{{Sink: store, QueueIntervals: storeQueueIntervals,
			CountOutcome: d.metrics.countStoreInterval}},
		DrainInterval: d.cfg.DrainInterval,
		Interval:      d.cfg.Interval,
		// A folded batch holds at most what one drain can.
		MaxBatchSamples: int(d.cfg.CountMapEntries),
		ShutdownTimeout: shutdownWorkTime(d.cfg),
		Metrics:         d.metrics.pipeline,
		Logger:          d.log,
	})
	if err != nil {
		return err
	}
	err = p.Run(ctx)
	stopExport()
	d.exporters.finish(exportFlushTime(d.cfg))
	var written, dropped uint64
	for _, t := range p.Totals() {
		written, dropped = written+t.Written, dropped+t.Dropped
	}
	d.log.Info("ember daemon stopped", slog.Uint64("intervals_written", written), slog.Uint64("intervals_dropped", dropped))
	return err
}

// raiseQueries returns web's RaiseQuery hook for nice, nil for 0. Without
// CAP_SYS_NICE it says so once, and queries run at the daemon's priority.
func raiseQueries(nice int, log *slog.Logger) func() (restore func()) {
	if nice == 0 {
		return nil
	}
	var warned sync.Once
	return func() func() {
		restore, err := threadprio.Raise(nice)
		if err != nil {
			warned.Do(func() {
				log.Info("cannot raise the priority of the threads that answer queries; on a busy host the UI answers late (grant CAP_SYS_NICE, or --query-nice 0)",
					slog.Int("nice", nice), slog.Any("err", err))
			})
		}
		return restore
	}
}
