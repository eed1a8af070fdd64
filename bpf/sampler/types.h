// SPDX-License-Identifier: GPL-2.0
// Constants and types the sampler shares with user space. bpf2go turns
// each enum and struct named by a -type flag in bpf.go into a Go type and
// constants, so Go never copies a value by hand: a value Go needs goes in
// an enum here, not in a #define.
#ifndef EMBER_SAMPLER_TYPES_H
#define EMBER_SAMPLER_TYPES_H

// Kernel values that vmlinux.h lacks (macros are not in BTF). User space
// takes the errno values from its own headers: they are the kernel's ABI.
#define TASK_COMM_LEN 16
#define PF_KTHREAD 0x00200000
#define PF_EXITING 0x00000004
#define EEXIST 17
#define ENOMEM 12
#define EFAULT 14
#define E2BIG 7

// A stack is stored in segments of STACK_SEGMENT frames, each a stacks-map
// entry that names the next by its hash: the kernel's walks fill one (its
// limit is 127), Ember's unwinder up to USER_SEGMENTS.
enum stack_layout {
	STACK_SEGMENT = 126,
	USER_SEGMENTS = 3,
};
#define MAX_USER_DEPTH (STACK_SEGMENT * USER_SEGMENTS)

// Why a task has no user stack to read: a kernel thread, a process past
// exit_mm on its way out, or one inside execve, whose registers and memory
// may belong to different images. user_stack_err holds the value negated,
// as it does an errno. (Positive, because BTF records this clang's enums as
// unsigned.)
enum no_user_stack {
	NO_USER_STACK_KERNEL_THREAD = 1,
	NO_USER_STACK_EXITING = 2,
	NO_USER_STACK_EXECVE = 3,
	// Not taken: an off-CPU wait that began with a preemption (offcpu.h).
	// Kernel and user stack errors both hold it.
	NO_USER_STACK_PREEMPTED = 4,
};
#define STACK_ID_KERNEL_THREAD (-NO_USER_STACK_KERNEL_THREAD)
#define STACK_ID_EXITING (-NO_USER_STACK_EXITING)
#define STACK_ID_EXECVE (-NO_USER_STACK_EXECVE)

// The exec sequence of a sample taken after on_exit dropped its process's
// state: its image is no longer known.
#define EXEC_SEQ_EXITED 0xffffffff

// Who walked a sample's user stack.
enum user_stack_source {
	// The kernel's frame-pointer walk (bpf_get_stack): the process has no
	// unwind ranges installed yet, or unwinding is off.
	USER_STACK_KERNEL_FP = 0,
	// Ember's unwinder: .eh_frame rows, or frame pointers where a file has
	// no rows (Go). stack.status says how the walk ended.
	USER_STACK_UNWOUND = 1,
};

// How a walk ended (stack.status).
enum unwind_end {
	UNWIND_END_UNKNOWN = 0, // kernel FP walk: it does not say
	UNWIND_END_COMPLETE,	// reached the outermost frame
	UNWIND_END_DEPTH,	// MAX_USER_DEPTH frames and still going
	UNWIND_END_NO_MAPPING,	// a pc outside every known file (JIT, vdso, a new dlopen)
	UNWIND_END_NO_ROW,	// a pc in a file but not covered by its CFI
	UNWIND_END_UNSUPPORTED, // a CFI rule the unwinder cannot follow
	UNWIND_END_READ_FAILED, // the stack could not be read
	UNWIND_END_BAD_FRAME,	// the walk went backwards: a corrupt stack or table
	UNWIND_END_NO_TABLE,	// a file whose table did not fit the memory budget
	UNWIND_END_MAX,
};

// Must match unwind.CFAKind and unwind.RBPKind.
enum cfa_kind {
	CFA_GAP = 0,
	CFA_SP,
	CFA_FP,
	CFA_PLT11,
	CFA_PLT10,
	CFA_END,
	CFA_UNSUPPORTED,
	// Go's runtime.asmcgocall where C code returns to it on the g0 stack:
	// CFA = the goroutine's SP + cfa_offset, that SP being g.stack.hi - [SP]
	// with g at [SP+8] (or [SP] itself when g is 0: it did not switch).
	CFA_GO_CGO,
	// Where Go's runtime.systemstack's call on the g0 stack returns: the
	// goroutine's SP is g.m.curg.sched.sp, g at the thread pointer (FS) +
	// an offset; from there systemstack's own frame, cfa_offset's low 8
	// bits. The rest of cfa_offset packs the offsets (GO_*_SHIFT).
	CFA_GO_SYSTEMSTACK,
	// Where runtime.morestack's call of newstack returns: the goroutine
	// stopped at g.m.curg.sched (pc, sp, bp), which replaces this frame's
	// caller. cfa_offset packs the offsets as for CFA_GO_SYSTEMSTACK.
	CFA_GO_MORESTACK,
	// A signal handler's entry (Go's runtime.sigtramp returning, its
	// restorer): the interrupted registers are in the kernel's struct
	// ucontext at SP + cfa_offset; the next frame is the interrupted pc,
	// kept + 1 as if a return address.
	CFA_SIGFRAME,
	// CFA = RBP + cfa_offset, where the frame has moved SP to another
	// stack: Go's time.now and runtime.nanotime1 call the vDSO on the g0
	// stack, their frame pointer still on the goroutine's, which may lie
	// below it.
	CFA_FP_SWITCHED,
};
enum rbp_kind {
	RBP_SAME = 0,
	RBP_AT_CFA,
	RBP_UNKNOWN,
};

// How to unwind at an address (unwind.Rule): rows name one by its index in
// unwind_rules, which holds every distinct rule once.
struct unwind_rule {
	// 32 bits: rustc has frames of more than 512 KiB (CFA rsp+540080).
	__s32 cfa_offset;
	__s8 rbp_offset; // in units of 8 bytes
	__u8 kind;	 // cfa_kind | rbp_kind << RBP_KIND_SHIFT
	__u16 pad;
};

// A file's table is a run of 4-byte words in unwind_chunks (unwind.Table.Words):
// an index of buckets + 1 entries, one per BUCKET_BYTES of the table's
// address range (the number of rows before the bucket), then the rows, each
// the low 16 bits of its pc and a rule id.
// Tables live in chunks of CHUNK_WORDS words, allocated as tables load. A
// chunk holds blocks of BLOCK_WORDS words, not single words: the kernel
// rounds an array element up to 8 bytes, which would double a table.
enum unwind_layout {
	BUCKET_SHIFT = 12,
	// A row word is the low ROW_PC_BITS of its pc and its rule's id above.
	ROW_PC_BITS = 16,
	MAX_RULES = 1 << (32 - ROW_PC_BITS),
	// unwind_rule.kind is cfa_kind | rbp_kind << RBP_KIND_SHIFT.
	RBP_KIND_SHIFT = 4,
	CHUNK_SHIFT = 16,
	BLOCK_SHIFT = 10,
	// A Go stack switch's rule packs in its cfa_offset, above the switching
	// function's own CFA offset (8 bits), these offsets of the binary's
	// runtime, each in units of 8 bytes: m.curg (8 bits), gobuf.bp (4),
	// minus g's offset from the thread pointer (4), g.m (4), g.sched (4).
	GO_CURG_SHIFT = 8,
	GO_GOBUF_BP_SHIFT = 16,
	GO_TLS_G_SHIFT = 20,
	GO_G_M_SHIFT = 24,
	GO_G_SCHED_SHIFT = 28,
};
#define ROW_PC_MASK ((1 << ROW_PC_BITS) - 1)
// A bucket holds at most one row per byte of its address range.
#define BUCKET_ROW_STEPS (BUCKET_SHIFT + 1) // log2(rows a bucket may hold) + 1
#define CHUNK_WORDS (1 << CHUNK_SHIFT)
#define BLOCK_WORDS (1 << BLOCK_SHIFT)
#define CHUNK_BLOCKS (CHUNK_WORDS / BLOCK_WORDS)

enum range_kind {
	RANGE_ROWS = 0, // unwind with rows [row_start, row_start + row_count)
	RANGE_FP = 1,	// walk frame pointers (Go, files without CFI, JIT code)
	RANGE_NO_TABLE = 2, // the file has CFI but its table is not loaded
	// Only in the walk's memo: a pc of a loaded table with no row for it
	// (V8's builtins, assembly): frame pointers, where the frame looks like one.
	RANGE_FP_GUESS = 3,
	// Only in the walk's range cache and memo: JIT code the process
	// mapped after user space read its mappings (unwind.h, jit_code).
	RANGE_FP_LATE = 4,
	// Installed by the sampler (install.h) for a file whose table is not
	// in: walked as RANGE_FP_GUESS, and the walk asks user space to read
	// the mappings, which builds the table (a library dlopen'ed since).
	RANGE_FP_UNREAD = 5,
};

// What an executable range of a process unwinds with.
struct unwind_range {
	// The whole mapping, so that the walk looks the trie up once per
	// mapping it enters, not once per frame.
	__u64 start, limit;
	__u64 bias;	  // runtime pc - bias = row pc
	__u32 table;	  // the table's first word
	__u32 buckets;	  // entries of its index, less one
	__u32 kind;
	__u32 pad;
};

// LPM trie key: the pid and address are big-endian so that a prefix of the
// key is a prefix of (pid, address).
struct range_key {
	__u32 prefixlen;
	__u32 pid_be;
	__u64 addr_be;
};

// A process whose ranges user space has installed, for one image.
struct unwind_proc {
	__u32 exec_seq;
	__u32 pad;
	__u64 miss_reported_ns; // last NEEDS_MAPPINGS event, to rate-limit them
};

// A file the sampler can give ranges itself, as the kernel names it: its
// device (major << 20 | minor) and inode. The vDSO, which has no file, is
// {0, 0}.
struct file_key {
	__u64 dev;
	__u64 ino;
};

enum image_layout {
	FILE_SEGMENTS = 4, // PT_LOAD segments kept per file
	IMAGE_RANGES = 32, // executable mappings recorded per process image
};

// One PT_LOAD segment of a file: a mapping at file offset off in
// [page_off, end_off) has bias = start - off + delta.
struct file_segment {
	__u64 page_off, end_off;
	__u64 delta;
};

// How a loaded table unwinds any mapping of its file (install.h): user
// space writes one per file whose table is in, and deletes it before the
// table goes.
struct file_unwind {
	__u32 kind; // RANGE_ROWS or RANGE_FP
	__u32 table, buckets;
	__u32 segments;
	struct file_segment seg[FILE_SEGMENTS];
};

// An executable file mapping of a process image, as the sampler saw it at
// exec or when its libraries were loaded.
struct image_range {
	__u64 start, limit, offset;
	struct file_key file;
	__u32 table; // the table's first word, when installed
	__u32 installed; // its range is in unwind_ranges
};

// What the sampler installed for a process image: user space deletes these
// ranges at exit, and reads the mappings of an image it never read.
struct image_record {
	__u32 exec_seq;
	__u32 ranges;	 // used entries of r
	__u32 overflow;	 // more executable mappings than IMAGE_RANGES
	__u32 unknown;	 // mappings of files with no table in: user space must read the image
	__u64 start_code; // mm->start_code, to tell images apart
	struct image_range r[IMAGE_RANGES];
};

struct sample_key {
	__u32 pid; // tgid
	__u32 tid;
	// Which program image of the process the sample is from: samples taken
	// before and after an execve must be read against different mappings.
	__u32 exec_seq;
	// 0 when the stack is in the stacks map under its hash, otherwise a
	// negative errno (-EFAULT for "no kernel stack": sampled in user mode)
	// or STACK_ID_*.
	__s32 kernel_stack_err;
	__s32 user_stack_err;
	__u32 user_stack_source;
	__u64 kernel_stack_hash;
	__u64 user_stack_hash;
};

struct sample_value {
	__u64 count;
	char comm[TASK_COMM_LEN];
};

// A segment of a stack as stored, leaf first.
struct stack {
	__u32 len;    // frames in this segment
	__u32 status; // enum unwind_end, of the whole stack
	__u64 next;   // hash of the segment with the next (outer) frames; 0: none
	__u64 pcs[STACK_SEGMENT];
};

enum sampler_stat {
	STAT_TAKEN,
	STAT_IDLE,
	STAT_FILTERED,
	STAT_RECORDED,
	STAT_COUNT_MAP_FULL,
	STAT_USER_COLLISION,
	STAT_USER_MAP_FULL,
	STAT_USER_KERNEL_THREAD,
	STAT_USER_EXITING,
	STAT_USER_OTHER,
	STAT_KERNEL_COLLISION,
	STAT_KERNEL_MAP_FULL,
	STAT_KERNEL_OTHER,
	STAT_EVENTS_LOST,
	STAT_USER_KERNEL_FP, // user stacks walked by the kernel (not ready yet)
	STAT_UNWIND_FRAMES,  // frames unwound by Ember's unwinder
	STAT_FORK_UNFOLLOWED, // children not followed: pid_filter was full
	STAT_USER_EXECVE,     // sampled inside execve: no user stack taken
	STAT_IMAGES_INSTALLED, // images given ranges by the sampler itself (install.h)
	STAT_IMAGE_RANGES_FAILED, // ranges the sampler could not put in unwind_ranges
	STAT_UNWIND_JIT_FRAMES, // frames in JIT code mapped after user space read the mappings
	STAT_UNWIND_JIT_BUSY,	// walks that could not look such code up (bpf_find_vma busy)
	STAT_UNWIND_END_BASE,
	STAT_MAX = STAT_UNWIND_END_BASE + UNWIND_END_MAX,
};

enum event_type {
	EVENT_NEW_PROCESS = 1,
	EVENT_EXIT = 2,
	// A pc fell outside the process's known ranges: its mappings changed
	// (dlopen) or hold code without a file.
	EVENT_NEEDS_MAPPINGS = 3,
	// The image's first sample: its mappings matter now. EVENT_NEW_PROCESS
	// (from the loader) came before it for a dynamically linked program.
	EVENT_SAMPLED = 4,
};

// Bits of proc_state.notified: which events user space had for the image.
enum notified_bit {
	NOTIFIED_LOADED = 1,
	NOTIFIED_SAMPLED = 2,
};

enum events_ring {
	EVENTS_RING_BYTES = 256 * 1024,
	// Past this much unread, an event wakes the reader at once.
	EVENTS_WAKE_BYTES = 64 * 1024,
};

struct event {
	// mm->start_code of the image at its first sample: lets user space check
	// that the mappings it read are still this image's.
	__u64 start_code;
	__u32 type;
	__u32 pid;
	__u32 exec_seq;
	__u32 pad;
};

struct proc_state {
	__u64 start_code; // of the current image, set at its first sample
	__u32 exec_seq;	  // bumped by every execve
	__u32 notified;	  // enum notified_bit: what user space was told of the image
};

// Values of pid_filter: sample the process, or only follow its children
// (Ember itself, starting the command of `record -- CMD`).
enum pid_filter_value {
	PID_SAMPLE = 1,
	PID_PARENT_ONLY = 2,
};

// Force the generator to emit Go types for these.
const struct event *unused_event __attribute__((unused));
const enum sampler_stat *unused_stat __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));
const enum user_stack_source *unused_user_stack_source __attribute__((unused));
const enum unwind_end *unused_unwind_end __attribute__((unused));
const enum range_kind *unused_range_kind __attribute__((unused));
const struct unwind_rule *unused_unwind_rule __attribute__((unused));
const struct unwind_range *unused_unwind_range __attribute__((unused));
const struct range_key *unused_range_key __attribute__((unused));
const struct unwind_proc *unused_unwind_proc __attribute__((unused));
const struct stack *unused_stack __attribute__((unused));
const enum cfa_kind *unused_cfa_kind __attribute__((unused));
const enum rbp_kind *unused_rbp_kind __attribute__((unused));
const enum stack_layout *unused_stack_layout __attribute__((unused));
const enum no_user_stack *unused_no_user_stack __attribute__((unused));
const enum unwind_layout *unused_unwind_layout __attribute__((unused));
const enum pid_filter_value *unused_pid_filter_value __attribute__((unused));
const enum events_ring *unused_events_ring __attribute__((unused));
const struct file_unwind *unused_file_unwind __attribute__((unused));
const struct image_record *unused_image_record __attribute__((unused));
const enum image_layout *unused_image_layout __attribute__((unused));

// Every loaded file's table, each a contiguous run of words in a space of
// chunks; user space creates a chunk when a table first needs it and drops
// it when no table uses it, so memory follows what is loaded, up to the
// budget (max_entries chunks, set by the loader).
struct table_block {
	__u32 words[BLOCK_WORDS];
};

// Keeps the block's size in BTF, where the inner map needs it.
const struct table_block *unused_table_block __attribute__((unused));

#endif // EMBER_SAMPLER_TYPES_H
