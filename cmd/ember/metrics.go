package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/pipeline"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/symbolizer"
)

// daemonMetrics are Ember's own Prometheus metrics: every loss has a name.
type daemonMetrics struct {
	samples    *prometheus.CounterVec
	stacksLost *prometheus.CounterVec
	eventsLost prometheus.Counter
	imageReads *prometheus.CounterVec
	truncated  prometheus.Counter
	// intervals and storeAppend are the store sink's, named before sinks.
	intervals   *prometheus.CounterVec
	storeAppend prometheus.Histogram
	unwind      unwindMetrics
	python      *prometheus.CounterVec
	// offCPU counts context switches by what became of them.
	offCPU *prometheus.CounterVec
	// The pipeline's: drain and naming times, lateness, queues and what
	// it dropped, by sink.
	pipeline *pipeline.Metrics
}

// storeCounters and symbolCounters are what metrics read of the store and
// the symbolizer; neither may wait for a write, a query or a naming.
type storeCounters interface{ Counters() storage.Stats }
type symbolCounters interface{ Stats() symbolizer.CacheStats }

// unwindMetrics describe the .eh_frame unwinder: walks by how they ended,
// and the loaded tables (gauges of the latest drain).
type unwindMetrics struct {
	walks    *prometheus.CounterVec
	frames   prometheus.Counter
	kernelFP prometheus.Counter
	// images the sampler gave ranges itself, by outcome
	samplerInstalls *prometheus.CounterVec
	tables          *prometheus.GaugeVec
	lateJIT         *prometheus.CounterVec
}

func newDaemonMetrics(reg prometheus.Registerer, store storeCounters, sym symbolCounters) *daemonMetrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 14) // 0.5 ms .. 4 s
	m := &daemonMetrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_samples_total",
			Help: "Sampling interrupts by outcome: recorded, idle (left out), filtered, count_map_full (lost).",
		}, []string{"outcome"}),
		stacksLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_stacks_lost_total",
			Help: "Samples whose user or kernel stack is missing, by reason; the samples themselves are kept.",
		}, []string{"stack", "reason"}),
		eventsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ember_process_events_lost_total",
			Help: "New-process notifications the ring buffer could not take.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ember_stacks_truncated_total",
			Help: "Samples with a stack cut at the depth limit, or a user stack the unwinder could not finish.",
		}),
		intervals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_intervals_total",
			Help: "Intervals at the store by outcome (ember_sink_intervals_total counts every sink): stored, dropped_disk_full, dropped_error, dropped_store_behind (the store was still writing the one before), dropped_shutdown (not stored within --shutdown-timeout).",
		}, []string{"outcome"}),
		storeAppend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ember_store_append_seconds", Help: "Time to store one interval.", Buckets: buckets,
		}),
	}
	m.imageReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ember_process_reads_total",
		Help: "New process images to read from /proc, by outcome: read; dropped (too many pending, the oldest first); cancelled (exited before their turn); skipped (the sampler gave them their ranges and no interpreter needs them: read at their first sample instead).",
	}, []string{"outcome"})
	reg.MustRegister(m.imageReads)
	m.offCPU = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ember_offcpu_switches_total",
		Help: "Context switches seen by the off-CPU tracker (--offcpu), by outcome: left (switch-outs noted), recorded (waits added to a stack), short (under --offcpu-min-wait), count_map_full (lost), missed (switch-ins of threads not seen leaving), filtered, idle, reused (stacks of the thread's last switch-out reused), walked (stacks taken), preempted (switch-outs of preempted threads, which take no stacks: their waits count per thread under [preempted]), user_stack_lost, kernel_stack_lost (walks whose stack was not stored), stack_gone (waits whose stack was forgotten by the drain).",
	}, []string{"outcome"})
	reg.MustRegister(m.offCPU)
	reg.MustRegister(m.samples, m.stacksLost, m.eventsLost, m.truncated, m.intervals, m.storeAppend)
	m.pipeline = pipeline.NewMetrics(reg)
	m.unwind = unwindMetrics{
		walks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_unwind_walks_total",
			Help: "User stacks walked by the .eh_frame unwinder, by how the walk ended (complete, or why it stopped).",
		}, []string{"end"}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ember_unwind_frames_total", Help: "Frames the unwinder walked.",
		}),
		kernelFP: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ember_unwind_kernel_fp_total",
			Help: "User stacks left to the kernel's frame-pointer walk because the process's tables were not in yet.",
		}),
		samplerInstalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_unwind_sampler_installs_total",
			Help: "Process images the sampler gave their ranges itself, at exec or once the loader mapped their libraries (installed), and ranges it could not put in (range_errors).",
		}, []string{"outcome"}),
		lateJIT: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_unwind_late_jit_total",
			Help: "JIT code mapped after the process's mappings were last read, found by the kernel's VMA lookup: frames walked there by frame pointer, and busy (walks whose lookup the kernel refused, ended there).",
		}, []string{"what"}),
		tables: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_unwind_tables",
			Help: "Unwind tables: rows loaded and row_capacity (table words, 4 bytes each), files loaded, frame_pointer_files, processes, idle_files (loaded, no process maps them now); since start: idle_reused, not_loaded (over --unwind-table-size), build_errors, cache_hits, cache_evictions, range_errors, installs_dropped, sampler_installs_removed (images the sampler installed, taken back); offered_files (files the sampler may install from by itself).",
		}, []string{"what"}),
	}
	reg.MustRegister(m.unwind.walks, m.unwind.frames, m.unwind.kernelFP, m.unwind.samplerInstalls, m.unwind.lateJIT, m.unwind.tables)
	m.python = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ember_python_total",
		Help: "CPython unwinding: walks (samples of CPython processes), no_thread (thread without a thread state), no_frame (running no Python), read_failed and depth (walks cut), frames recorded, and of them named, unreadable, exited (gone before naming); unknown_versions (processes of a version without offsets); before 3.11, frames qualified from their source file, or qualname_fallback_REASON (kept co_name: no_path, unreadable, exited, changed, not_utf8, unparsed, no_match, ambiguous).",
	}, []string{"what"})
	reg.MustRegister(m.python)

	gauge := func(name, help string, value func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value))
	}
	counter := func(name, help string, value func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, value))
	}
	gauge("ember_store_disk_bytes", "Disk used by the profile store.", func() float64 { return float64(store.Counters().DiskBytes) })
	counter("ember_store_samples_written_total", "Samples written to the store.", func() float64 { return float64(store.Counters().SamplesWritten) })
	counter("ember_store_write_errors_total", "Failed writes to the store.", func() float64 { return float64(store.Counters().WriteErrors) })
	counter("ember_store_disk_full_rejections_total", "Intervals refused because free disk space was below --min-free-disk.",
		func() float64 { return float64(store.Counters().DiskFullRejections) })
	gauge("ember_store_dictionary_bytes", "Memory held by the store's dictionary cache (recently used stacks, locations, functions, label sets).",
		func() float64 { return float64(store.Counters().Dictionary.MemoryBytes) })
	gauge("ember_store_dictionary_budget_bytes", "The bound on ember_store_dictionary_bytes.",
		func() float64 { return float64(store.Counters().Dictionary.BudgetBytes) })
	counter("ember_store_dictionary_misses_total", "Dictionary lookups that read the disk.",
		func() float64 { return float64(store.Counters().Dictionary.CacheMisses) })
	counter("ember_store_dictionary_evictions_total", "Dictionary entries dropped from memory to stay within the budget.",
		func() float64 { return float64(store.Counters().Dictionary.Evictions) })
	gauge("ember_store_path_cache_bytes", "Memory held by the store's cache of stacks named for flame graphs, shared by queries.",
		func() float64 { return float64(store.Counters().Paths.Bytes) })
	gauge("ember_store_path_cache_budget_bytes", "The bound on ember_store_path_cache_bytes.",
		func() float64 { return float64(store.Counters().Paths.Budget) })
	counter("ember_store_path_cache_hits_total", "Stacks of flame graph queries found named in the path cache.",
		func() float64 { return float64(store.Counters().Paths.Hits) })
	counter("ember_store_path_cache_misses_total", "Stacks of flame graph queries named from the dictionary.",
		func() float64 { return float64(store.Counters().Paths.Misses) })
	counter("ember_store_path_cache_drops_total", "Times the path cache was emptied to stay within its budget.",
		func() float64 { return float64(store.Counters().Paths.Drops) })
	gauge("ember_symbol_cache_bytes", "Approximate memory held by the symbolizer's caches.", func() float64 { return float64(sym.Stats().Bytes) })
	gauge("ember_symbol_cache_files", "Parsed files held by the symbolizer.", func() float64 { return float64(sym.Stats().Files) })
	counter("ember_symbol_cache_hits_total", "Address lookups answered from the cache.", func() float64 { return float64(sym.Stats().Hits) })
	counter("ember_symbol_cache_misses_total", "Address lookups resolved from the symbol tables.", func() float64 { return float64(sym.Stats().Misses) })
	counter("ember_symbol_cache_evictions_total", "Parsed files dropped to stay within the cache budget.", func() float64 { return float64(sym.Stats().Evictions) })
	return m
}

// countStoreInterval counts an interval's outcome at the store under the
// names ember_intervals_total had before sinks.
func (m *daemonMetrics) countStoreInterval(outcome string) {
	switch outcome {
	case pipeline.OutcomeWritten:
		outcome = "stored"
	case pipeline.OutcomeBehind:
		outcome = "dropped_store_behind"
	}
	m.intervals.WithLabelValues(outcome).Inc()
}

// observeBatch counts one drain's sampler statistics.
func (m *daemonMetrics) observeBatch(s model.Stats) {
	m.samples.WithLabelValues("recorded").Add(float64(s.Recorded))
	m.samples.WithLabelValues("idle").Add(float64(s.Idle))
	m.samples.WithLabelValues("filtered").Add(float64(s.Filtered))
	m.samples.WithLabelValues("count_map_full").Add(float64(s.CountMapFull))
	for r, n := range s.UserLost {
		m.stacksLost.WithLabelValues("user", r.String()).Add(float64(n))
	}
	for r, n := range s.KernelLost {
		m.stacksLost.WithLabelValues("kernel", r.String()).Add(float64(n))
	}
	m.eventsLost.Add(float64(s.EventsLost))
	m.imageReads.WithLabelValues("read").Add(float64(s.ImageReads.Read))
	m.imageReads.WithLabelValues("dropped").Add(float64(s.ImageReads.Dropped))
	m.imageReads.WithLabelValues("cancelled").Add(float64(s.ImageReads.Cancelled))
	m.imageReads.WithLabelValues("skipped").Add(float64(s.ImageReads.Skipped))
	m.truncated.Add(float64(s.Truncated))
	o := s.OffCPU
	for outcome, n := range map[string]uint64{
		"left": o.Left, "recorded": o.Recorded, "short": o.Short, "count_map_full": o.CountMapFull,
		"missed": o.Missed, "filtered": o.Filtered, "idle": o.Idle, "reused": o.Reused, "walked": o.Walked, "preempted": o.Preempted,
		"user_stack_lost": o.UserLost, "kernel_stack_lost": o.KernelLost, "stack_gone": o.StacksGone,
	} {
		m.offCPU.WithLabelValues(outcome).Add(float64(n))
	}
	for e, n := range s.Unwind.Ends {
		m.unwind.walks.WithLabelValues(e.String()).Add(float64(n))
	}
	m.unwind.frames.Add(float64(s.Unwind.Frames))
	m.unwind.kernelFP.Add(float64(s.Unwind.KernelFP))
	m.unwind.samplerInstalls.WithLabelValues("installed").Add(float64(s.Unwind.SamplerInstalls))
	m.unwind.samplerInstalls.WithLabelValues("range_errors").Add(float64(s.Unwind.SamplerRangeErrors))
	m.unwind.lateJIT.WithLabelValues("frames").Add(float64(s.Unwind.LateJITFrames))
	m.unwind.lateJIT.WithLabelValues("busy").Add(float64(s.Unwind.LateJITBusy))
	py := s.Python
	for what, v := range map[string]uint64{
		"walks": py.Walks, "no_thread": py.NoThread, "no_frame": py.NoFrame, "read_failed": py.ReadFailed,
		"depth": py.Depth, "frames": py.Frames, "named": py.Named, "unreadable": py.Unreadable,
		"exited": py.Exited, "unknown_versions": py.UnknownVersions, "qualified": py.Qualified,
	} {
		m.python.WithLabelValues(what).Add(float64(v))
	}
	for why, n := range py.QualnameFallbacks {
		m.python.WithLabelValues("qualname_fallback_" + why).Add(float64(n))
	}
	t := s.Unwind.Tables
	for what, v := range map[string]uint64{
		"rows": t.Rows, "row_capacity": t.RowCapacity, "files": t.Tables, "frame_pointer_files": t.FramePointerFiles,
		"not_loaded": t.NotLoaded, "build_errors": t.BuildErrors, "processes": t.Processes,
		"cache_hits": t.CacheHits, "cache_evictions": t.CacheEvictions, "range_errors": t.RangeErrors,
		"installs_dropped": t.InstallsDropped, "idle_files": t.Idle, "idle_reused": t.IdleReused,
		"offered_files": t.OfferedFiles, "sampler_installs_removed": t.SamplerInstallsRemoved,
		"sampler_installs_kept": t.SamplerInstallsKept,
	} {
		m.unwind.tables.WithLabelValues(what).Set(float64(v))
	}
}
