package model

// Stats are the sampler's counters over one batch.
type Stats struct {
	// Taken is every time the sampling program ran.
	Taken uint64
	// Idle samples landed in the idle task and were left out.
	Idle uint64
	// Filtered samples belonged to processes outside the PID filter.
	Filtered uint64
	// Recorded samples made it into the counts map.
	Recorded uint64
	// CountMapFull samples were lost entirely because the counts map was full.
	CountMapFull uint64
	// User and kernel stacks that are missing, by reason. The sample itself
	// is still counted.
	UserLost   map[LossReason]uint64
	KernelLost map[LossReason]uint64
	// EventsLost counts new-process notifications the ring buffer could not
	// take; such processes are read at drain time instead, if still alive.
	EventsLost uint64
	// ImageReads: what became of the /proc reads of new process images.
	ImageReads ImageReads
	// ForksUnfollowed counts children of followed processes (the
	// collector's Config.ForkParent) left out because the PID filter was full.
	ForksUnfollowed uint64
	// Truncated counts samples with a stack cut at the depth limit, or a
	// user stack the unwinder could not finish.
	Truncated uint64
	// Unwind describes Ember's user-stack unwinder over the batch, its
	// walks for off-CPU stacks included.
	Unwind UnwindStats
	// Python describes the walks of CPython's frames over the batch.
	Python PythonStats
	// OffCPU counts the context switches the off-CPU tracker saw.
	OffCPU OffCPUStats
}

// PythonStats count what the CPython unwinder did.
type PythonStats struct {
	// Walks: samples of CPython processes whose frames were looked for.
	// NoThread: of threads with no thread state (not Python threads);
	// NoFrame: of threads running no Python code; ReadFailed: cut where
	// the interpreter's memory could not be read; Depth: cut at the limit.
	Walks, NoThread, NoFrame, ReadFailed, Depth uint64
	// Frames recorded; of them, Named from their code object, Unreadable
	// (the code object could not be read), Exited (the process was gone
	// before they were named).
	Frames, Named, Unreadable, Exited uint64
	// UnknownVersions counts processes of a CPython version Ember has no
	// offsets for (each file is reported once in the log).
	UnknownVersions uint64
	// Of the frames named before 3.11 (no co_qualname): Qualified by their
	// source file, or left with co_name, by reason (QualnameFallbacks).
	Qualified         uint64
	QualnameFallbacks map[string]uint64
}

// Add adds o's counters to s.
func (s *PythonStats) Add(o PythonStats) {
	s.Walks += o.Walks
	s.NoThread += o.NoThread
	s.NoFrame += o.NoFrame
	s.ReadFailed += o.ReadFailed
	s.Depth += o.Depth
	s.Frames += o.Frames
	s.Named += o.Named
	s.Unreadable += o.Unreadable
	s.Exited += o.Exited
	s.UnknownVersions += o.UnknownVersions
	s.Qualified += o.Qualified
	for why, n := range o.QualnameFallbacks {
		if s.QualnameFallbacks == nil {
			s.QualnameFallbacks = make(map[string]uint64)
		}
		s.QualnameFallbacks[why] += n
	}
}

// OffCPUStats count what the off-CPU tracker did with context switches.
// Arrived = Recorded + Short + CountMapFull.
type OffCPUStats struct {
	// Left: switch-outs noted. Arrived: switch-ins of a noted thread, each
	// the end of a wait.
	Left, Arrived uint64
	// Recorded waits were added to a stack; Short ones (ShortNanos in all)
	// were under the minimum wait; CountMapFull ones were lost.
	Recorded, Short, ShortNanos, CountMapFull uint64
	// Missed: switch-ins of threads not seen leaving (running before the
	// tracker started, or crowded out of its thread map).
	Missed uint64
	// Filtered and Idle switches were left out.
	Filtered, Idle uint64
	// Reused: switch-outs that reused the thread's stacks of its last one,
	// from the same place; Walked: those that took them.
	Reused, Walked uint64
	// UserLost and KernelLost: walks whose stack was not stored.
	UserLost, KernelLost uint64
	// Preempted: switch-outs of preempted threads, which take no stacks
	// (their samples carry model.LostPreempted).
	Preempted uint64
	// StacksGone: waits recorded whose stack was no longer there at the
	// drain (forgotten: named by no thread for two drains); their samples
	// carry model.LostDrained.
	StacksGone uint64
	// StacksRemembered is how many stacks the collector keeps from earlier
	// drains for waits that outlive one (a gauge).
	StacksRemembered uint64
}

// Add adds o's counters to s; StacksRemembered, a gauge, takes o's.
func (s *OffCPUStats) Add(o OffCPUStats) {
	s.Left += o.Left
	s.Arrived += o.Arrived
	s.Recorded += o.Recorded
	s.Short += o.Short
	s.ShortNanos += o.ShortNanos
	s.CountMapFull += o.CountMapFull
	s.Missed += o.Missed
	s.Filtered += o.Filtered
	s.Idle += o.Idle
	s.Reused += o.Reused
	s.Walked += o.Walked
	s.UserLost += o.UserLost
	s.KernelLost += o.KernelLost
	s.Preempted += o.Preempted
	s.StacksGone += o.StacksGone
	s.StacksRemembered = o.StacksRemembered
}

// UnwindStats count what the unwinder did.
type UnwindStats struct {
	// Frames unwound, over all samples it walked.
	Frames uint64
	// Ends counts the samples it walked by how each ended.
	Ends map[UnwindEnd]uint64
	// KernelFP counts user stacks left to the kernel's frame-pointer walk
	// because the process's ranges were not installed yet.
	KernelFP uint64
	// SamplerInstalls counts images the sampler gave ranges itself, at
	// exec or when their libraries were loaded, and SamplerRangeErrors
	// the ranges it could not put in (a full trie).
	SamplerInstalls, SamplerRangeErrors uint64
	// LateJITFrames counts frames walked by frame pointer in JIT code the
	// process mapped after its mappings were last read (found by the
	// kernel's VMA lookup), and LateJITBusy the walks whose lookup the
	// kernel refused (busy), which ended at that pc.
	LateJITFrames, LateJITBusy uint64
	// Tables are the loaded tables at the drain.
	Tables UnwindTableStats
}

// UnwindTableStats describe the loaded unwind tables at a drain.
type UnwindTableStats struct {
	// Tables and Rows loaded in BPF. Words is what they take in 4-byte
	// words (rows and index entries), of WordCapacity, the budget, and
	// ChunkBytes the memory of the chunks allocated to hold them.
	Tables, Rows, Words, WordCapacity, ChunkBytes uint64
	// RowCapacity is WordCapacity, under the name cmd/ember's metrics
	// still read.
	RowCapacity uint64
	// Rules in the shared rule table.
	Rules uint64
	// FramePointerFiles are mapped files walked by frame pointers (Go, no CFI).
	FramePointerFiles uint64
	// NotLoaded counts tables that did not fit the budget since start, and
	// NotLoadedRows their rows: their code ends stacks with a marked frame.
	NotLoaded, NotLoadedRows uint64
	// BuildErrors counts files whose CFI could not be read.
	BuildErrors uint64
	// CacheHits counts tables read from the disk cache instead of built,
	// CacheEvictions files removed from it to stay within its size bound.
	CacheHits, CacheEvictions uint64
	// RangeErrors counts ranges the BPF trie refused (full).
	RangeErrors uint64
	// InstallsDropped counts processes the install queue had no room for.
	InstallsDropped uint64
	// Processes with ranges installed.
	Processes uint64
	// Idle tables are loaded (and counted in Tables and Words) though no
	// process maps their file now; IdleReused counts installs that found
	// their table idle since start.
	Idle, IdleReused uint64
	// OfferedFiles are the files the sampler may install from by itself;
	// SamplerInstallsRemoved counts images whose ranges it installed that
	// were taken back since start, SamplerInstallsKept those read from
	// /proc that it had installed whole, left as they were.
	OfferedFiles, SamplerInstallsRemoved, SamplerInstallsKept uint64
}

// ImageReads count what became of new process images to read from /proc.
type ImageReads struct {
	// Read: taken by a reader. Dropped: left out at the queue's bound,
	// the oldest first. Cancelled: the process exited before its turn.
	// Skipped: not read, because the sampler gave the image its ranges
	// and no interpreter needs it (read at its first sample, if any).
	Read, Dropped, Cancelled, Skipped uint64
}

// Minus returns the counts since o was taken.
func (r ImageReads) Minus(o ImageReads) ImageReads {
	return ImageReads{r.Read - o.Read, r.Dropped - o.Dropped, r.Cancelled - o.Cancelled, r.Skipped - o.Skipped}
}

// Add adds a later batch's counters to s, a running total. The unwind
// tables are a gauge: s takes o's.
func (s *Stats) Add(o Stats) {
	s.Taken += o.Taken
	s.Idle += o.Idle
	s.Filtered += o.Filtered
	s.Recorded += o.Recorded
	s.CountMapFull += o.CountMapFull
	s.EventsLost += o.EventsLost
	s.ForksUnfollowed += o.ForksUnfollowed
	s.Truncated += o.Truncated
	if s.UserLost == nil {
		s.UserLost, s.KernelLost = map[LossReason]uint64{}, map[LossReason]uint64{}
	}
	for r, n := range o.UserLost {
		s.UserLost[r] += n
	}
	for r, n := range o.KernelLost {
		s.KernelLost[r] += n
	}
	s.Unwind.Frames += o.Unwind.Frames
	s.Unwind.KernelFP += o.Unwind.KernelFP
	s.Unwind.SamplerInstalls += o.Unwind.SamplerInstalls
	s.Unwind.SamplerRangeErrors += o.Unwind.SamplerRangeErrors
	s.Unwind.LateJITFrames += o.Unwind.LateJITFrames
	s.Unwind.LateJITBusy += o.Unwind.LateJITBusy
	if s.Unwind.Ends == nil {
		s.Unwind.Ends = map[UnwindEnd]uint64{}
	}
	for e, n := range o.Unwind.Ends {
		s.Unwind.Ends[e] += n
	}
	s.Unwind.Tables = o.Unwind.Tables
	s.Python.Add(o.Python)
	s.OffCPU.Add(o.OffCPU)
}
