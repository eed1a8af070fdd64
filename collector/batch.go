package collector

import (
	"os"
	"time"
)

// A Batch is what one drain of the BPF maps yields: raw stacks with counts,
// and a snapshot of every process they came from. It is a plain value the
// symbolizer consumes without touching the kernel.
type Batch struct {
	Start, End  time.Time
	FrequencyHz int
	// PeriodNanos is the CPU time one sample stands for (1e9 / FrequencyHz).
	PeriodNanos int64
	Samples     []Sample
	// Processes holds a snapshot of every process image with samples in
	// this batch.
	Processes map[ProcessKey]*Process
	Stats     Stats
	// held keeps the mapped files open until Release (Config.HoldBatchFiles).
	held interface{ Release() }
}

// Release lets go of the mapped files the batch holds open for naming (see
// Config.HoldBatchFiles). Call it once the batch is named, or dropped
// unnamed. It may be called more than once, and on any batch.
func (b *Batch) Release() {
	if b.held != nil {
		b.held.Release()
	}
}

// Absorb folds a later batch into b, without naming either: b then spans
// both drains, holds both's samples and processes, and its Release lets go
// of both's files. A consumer that falls behind can queue one batch for
// several drains this way. b.Stats stay b's own: the counters are per drain
// and were read when it happened. other must not be used afterwards.
func (b *Batch) Absorb(other *Batch) {
	b.Samples = append(b.Samples, other.Samples...)
	if b.Processes == nil {
		b.Processes = make(map[ProcessKey]*Process, len(other.Processes))
	}
	for k, p := range other.Processes {
		b.Processes[k] = p // the later snapshot has any mappings added since
	}
	b.End = other.End
	switch {
	case other.held == nil:
	case b.held == nil:
		b.held = other.held
	default:
		b.held = releaseBoth{b.held, other.held}
	}
	other.held = nil
}

type releaseBoth [2]interface{ Release() }

func (r releaseBoth) Release() {
	r[0].Release()
	r[1].Release()
}

// HoldUntilRelease makes Release call release, for batches built outside
// the collector (tests, replays) whose resources must outlive naming too.
func (b *Batch) HoldUntilRelease(release interface{ Release() }) { b.held = release }

// A Sample is one distinct (process, thread, user stack, kernel stack) and how
// often it was seen. Addresses are leaf first, as the kernel reports them.
type Sample struct {
	PID, TID uint32
	// ExecSeq tells the program images of one PID apart: it changes with
	// every execve, so samples before and after one resolve separately.
	ExecSeq uint32
	Comm    string
	// Kernel and User are return addresses except for the first (leaf) one.
	Kernel []uint64
	User   []uint64
	// KernelTruncated and UserTruncated mean the stack hit the depth limit and
	// its root end is missing.
	KernelTruncated, UserTruncated bool
	// UserLost and KernelLost say why a stack that should exist is missing
	// (LostNone when it is present or legitimately absent).
	UserLost, KernelLost LossReason
	// UserSource says who walked the user stack, and UserEnd how Ember's
	// unwinder ended it. Any end but UnwindComplete also sets UserTruncated,
	// so the stack ends in a marked frame rather than a guess.
	UserSource UserStackSource
	UserEnd    UnwindEnd
	Count      uint64
}

// UserStackSource says who walked a user stack.
type UserStackSource uint8

const (
	// SourceKernelFP: the kernel's frame-pointer walk (unwinding off, or the
	// process's unwind ranges not installed yet).
	SourceKernelFP UserStackSource = iota
	// SourceUnwinder: Ember's unwinder, from .eh_frame rows or frame
	// pointers per file.
	SourceUnwinder
)

// UnwindEnd says how Ember's unwinder ended a stack (sampler.bpf.c's enum
// unwind_end).
type UnwindEnd uint8

const (
	UnwindUnknown     UnwindEnd = iota // not walked by Ember's unwinder
	UnwindComplete                     // reached the outermost frame
	UnwindDepth                        // stopped at the depth limit
	UnwindNoMapping                    // an address in no known file (JIT, vDSO, a library loaded since)
	UnwindNoRow                        // an address the file's CFI does not cover
	UnwindUnsupported                  // a CFI rule the unwinder cannot follow
	UnwindReadFailed                   // the stack memory could not be read
	UnwindBadFrame                     // the walk went backwards
	UnwindNoTable                      // the file's table did not fit the memory budget
	unwindEnds
)

func (e UnwindEnd) String() string {
	switch e {
	case UnwindUnknown:
		return "unknown"
	case UnwindComplete:
		return "complete"
	case UnwindDepth:
		return "depth limit"
	case UnwindNoMapping:
		return "no mapping"
	case UnwindNoRow:
		return "no CFI row"
	case UnwindUnsupported:
		return "unsupported CFI"
	case UnwindReadFailed:
		return "stack read failed"
	case UnwindBadFrame:
		return "bad frame"
	case UnwindNoTable:
		return "table not loaded"
	}
	return "invalid"
}

// LossReason says why a stack is missing from a sample.
type LossReason uint8

const (
	LostNone LossReason = iota
	// LostCollision: a different stack had the same 64-bit hash.
	LostCollision
	// LostMapFull: the stack map had no free entry.
	LostMapFull
	// LostKernelThread: kernel threads have no user stack. Not a loss of
	// data, but it is reported so totals add up.
	LostKernelThread
	// LostExiting: the process was past releasing its memory on its way out,
	// so there was no user stack left. Not a loss, reported like kernel threads.
	LostExiting
	// LostOther: any other error from bpf_get_stack.
	LostOther
	// LostDrained: the stack id was valid but its stack was gone when read.
	LostDrained
)

func (r LossReason) String() string {
	switch r {
	case LostNone:
		return "none"
	case LostCollision:
		return "stack map collision"
	case LostMapFull:
		return "stack map full"
	case LostKernelThread:
		return "kernel thread"
	case LostExiting:
		return "process exiting"
	case LostOther:
		return "stack error"
	case LostDrained:
		return "stack missing at drain"
	}
	return "unknown"
}

// ProcessKey identifies one program image of a process.
type ProcessKey struct {
	PID, ExecSeq uint32
}

// Key returns the key of the process image a sample came from.
func (s *Sample) Key() ProcessKey { return ProcessKey{s.PID, s.ExecSeq} }

// A Process is what was known about a process image when it was first
// seen, refreshed when its mappings changed.
type Process struct {
	PID     uint32
	ExecSeq uint32
	// StartTicks is the start time from /proc/PID/stat, which tells a reused
	// PID apart from the process that had it before.
	StartTicks uint64
	Comm       string
	Exe        string
	Cmdline    []string
	Cgroup     string
	// ContainerID is the container runtime's ID when the cgroup path names
	// one (Docker, containerd, CRI-O, Podman, Kubernetes pods).
	ContainerID string
	Mappings    []Mapping
	// Exited is set once the process is known to have exited or replaced
	// this image by an execve; its mappings still resolve through the files
	// held open in Mappings.
	Exited bool
	// SnapshotErr is set when the image could not be read at first sight
	// (typically because the process had already exited or exec'd again).
	SnapshotErr error
}

// A Mapping is one executable file-backed (or special) region of a process.
type Mapping struct {
	Start, Limit uint64 // runtime addresses, Limit exclusive
	Offset       uint64 // file offset of Start
	// Path is the path as the process sees it (in its own mount namespace),
	// or a pseudo path such as "[vdso]".
	Path       string
	Dev, Inode uint64
	Deleted    bool
	// File is the mapped file, opened through /proc/PID/map_files or the
	// process's root when the mapping was captured, so the file can be read
	// after the process exits or the path is replaced. Nil when it could not
	// be opened. The collector owns it and closes it after the batch that
	// holds it has been handed on and the next drain has happened.
	File *os.File
}

// FindMapping returns the mapping that holds addr, or nil.
func (p *Process) FindMapping(addr uint64) *Mapping {
	ms := p.Mappings
	lo, hi := 0, len(ms)
	for lo < hi {
		mid := (lo + hi) / 2
		switch {
		case addr < ms[mid].Start:
			hi = mid
		case addr >= ms[mid].Limit:
			lo = mid + 1
		default:
			return &ms[mid]
		}
	}
	return nil
}

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
	// ForksUnfollowed counts children of followed processes (Config.ForkParent)
	// left out because the PID filter was full.
	ForksUnfollowed uint64
	// Truncated counts samples with a stack cut at the depth limit, or a
	// user stack the unwinder could not finish.
	Truncated uint64
	// Unwind describes Ember's user-stack unwinder over the batch.
	Unwind UnwindStats
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
	// Tables are the loaded tables at the drain.
	Tables UnwindTableStats
}
