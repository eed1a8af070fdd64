package model

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
	// UserFrames, when not nil, is the user stack in place of User, leaf
	// first: an unwinder that walks an interpreter's or a JIT's own frames
	// hands them over named, with the native frames around them as
	// FrameNative. Stacks of native code alone leave it nil and stay plain
	// addresses.
	UserFrames []Frame
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
	// Count is how often the stack was sampled on the CPU; it stands for
	// Count periods of CPU time.
	Count uint64
	// Values holds the values of the batch's ValueTypes, in order, for a
	// source that measures more than CPU samples (time off the CPU, waits).
	// nil means all zero.
	Values []int64
	// State is why the thread was off the CPU, for a sample of time off it;
	// StateNone for one taken on the CPU.
	State ThreadState
}

// ThreadState says why a thread was off the CPU.
type ThreadState uint8

const (
	StateNone     ThreadState = iota // on the CPU: a CPU sample
	StateRunnable                    // preempted, waiting for a CPU
	StateSleeping                    // interruptible sleep (S): timers, pipes, locks, the network
	StateDisk                        // uninterruptible sleep (D): mostly disk I/O
	StateOther                       // stopped, traced, parked
)

// String is the state's value of the thread_state label.
func (s ThreadState) String() string {
	switch s {
	case StateNone:
		return ""
	case StateRunnable:
		return "runnable"
	case StateSleeping:
		return "sleeping"
	case StateDisk:
		return "disk"
	case StateOther:
		return "other"
	}
	return "unknown"
}

// UserDepth is the number of user frames: of UserFrames when set, else of
// User.
func (s *Sample) UserDepth() int {
	if s.UserFrames != nil {
		return len(s.UserFrames)
	}
	return len(s.User)
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

// Valid reports whether e is one of the ends above; the BPF side may hand
// over a value this build does not know.
func (e UnwindEnd) Valid() bool { return e < unwindEnds }

// UnwindEndCount is how many ends there are, for checking a producer's list.
const UnwindEndCount = int(unwindEnds)

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
	// LostExecve: the process was inside execve, replacing its program, when
	// its registers and memory may belong to different images. Not a loss,
	// reported like kernel threads.
	LostExecve
	// LostPreempted: an off-CPU wait that began with a preemption, whose
	// stacks are not taken (where the thread ran is in the CPU profile).
	// Not a loss; the sample has neither stack.
	LostPreempted
)

// NoUserStack reports whether the reason is one where the task had no user
// stack to take (a kernel thread, a process exiting or inside execve), not
// a stack that was lost.
func (r LossReason) NoUserStack() bool {
	return r == LostKernelThread || r == LostExiting || r == LostExecve || r == LostPreempted
}

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
	case LostExecve:
		return "process in execve"
	case LostPreempted:
		return "preempted"
	}
	return "unknown"
}
