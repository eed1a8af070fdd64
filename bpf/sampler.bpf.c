//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Ember's sampler: runs on every cpu-clock perf event, records the interrupted
// task's kernel and user stacks in hashed stack maps and counts each distinct
// (process, thread, user stack, kernel stack). User stacks are unwound here
// from .eh_frame rows that user space loads per file (frame pointers where a
// file has none). Nothing is dropped silently: every failure is counted by
// reason in `stats`.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

// A stack is stored in segments of STACK_SEGMENT frames, each a stacks-map
// entry that names the next by its hash: the kernel's walks fill one (its
// limit is 127), Ember's unwinder up to USER_SEGMENTS.
#define STACK_SEGMENT 126
#define USER_SEGMENTS 3
#define MAX_USER_DEPTH (STACK_SEGMENT * USER_SEGMENTS)
#define TASK_COMM_LEN 16
#define PF_KTHREAD 0x00200000
#define PF_EXITING 0x00000004
#define EEXIST 17
#define ENOMEM 12
#define EFAULT 14
#define E2BIG 7

// user_stack_err values for tasks that have no user stack to read: kernel
// threads, and processes past exit_mm on their way out.
#define STACK_ID_KERNEL_THREAD (-1)
#define STACK_ID_EXITING (-2)

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
};
enum rbp_kind {
	RBP_SAME = 0,
	RBP_AT_CFA,
	RBP_UNKNOWN,
};

// How to unwind at an address (unwind.Rule): rows name one by its index in
// unwind_rules, which holds every distinct rule once.
struct unwind_rule {
	__s16 cfa_offset;
	__s8 rbp_offset; // in units of 8 bytes
	__u8 kind;	 // cfa_kind | rbp_kind << 4
};

// A file's table is a run of 4-byte words in unwind_chunks (unwind.Table.Words):
// an index of buckets + 1 entries, one per BUCKET_BYTES of the table's
// address range (the number of rows before the bucket), then the rows, each
// the low 16 bits of its pc and a rule id.
#define BUCKET_SHIFT 12
#define BUCKET_ROW_STEPS 13 // log2(rows a bucket may hold, 4096) + 1
// Tables live in chunks of CHUNK_WORDS words, allocated as tables load. A
// chunk holds blocks of BLOCK_WORDS words, not single words: the kernel
// rounds an array element up to 8 bytes, which would double a table.
#define CHUNK_SHIFT 16
#define CHUNK_WORDS (1 << CHUNK_SHIFT)
#define BLOCK_SHIFT 10
#define BLOCK_WORDS (1 << BLOCK_SHIFT)
#define CHUNK_BLOCKS (CHUNK_WORDS / BLOCK_WORDS)
#define MAX_RULES 65536

enum range_kind {
	RANGE_ROWS = 0, // unwind with rows [row_start, row_start + row_count)
	RANGE_FP = 1,	// walk frame pointers (Go, files without CFI, JIT code)
	RANGE_NO_TABLE = 2, // the file has CFI but its table is not loaded
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
	STAT_UNWIND_END_BASE,
	STAT_MAX = STAT_UNWIND_END_BASE + UNWIND_END_MAX,
};

enum event_type {
	EVENT_NEW_PROCESS = 1,
	EVENT_EXIT = 2,
	// A pc fell outside the process's known ranges: its mappings changed
	// (dlopen) or hold code without a file.
	EVENT_NEEDS_MAPPINGS = 3,
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
	__u32 notified;	  // user space was told about this image
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

// Two sets of maps: the program writes into the active one while user space
// drains the other, so a drain never races with samples of the same interval.
// Sizes are set by the loader from flags.
struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sample_key);
	__type(value, struct sample_value);
};

// Kernel and user stacks by a 64-bit hash of their frames. Preallocated:
// allocated as used, an insert in the sampling interrupt failed with
// -ENOMEM whenever the per-CPU cache of free 1 KiB elements was empty, about
// one stack per CPU and drain on a quiet host.
struct stacks_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct stack);
};

struct counts_map counts_0 SEC(".maps");
struct counts_map counts_1 SEC(".maps");
struct stacks_map stacks_0 SEC(".maps");
struct stacks_map stacks_1 SEC(".maps");

// Counters per buffer (buffer * STAT_MAX + stat), so each drain's accounting
// covers exactly the samples it reads.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// Processes to sample when filtering by PID: tgid -> PID_SAMPLE, or
// PID_PARENT_ONLY for a process whose children are followed but which is
// not sampled itself (Ember, starting the command of `record -- CMD`).
// Followed children leave at exit, so it holds the live tree only.
#define PID_SAMPLE 1
#define PID_PARENT_ONLY 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

// Every sampled process and its current image. User space is notified of
// each new image at its first sample, so it reads the mappings then, not at
// drain time when a short-lived process is gone.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct proc_state);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// Every loaded file's table, each a contiguous run of words in a space of
// chunks; user space creates a chunk when a table first needs it and drops
// it when no table uses it, so memory follows what is loaded, up to the
// budget (max_entries chunks, set by the loader).
struct table_block {
	__u32 words[BLOCK_WORDS];
};

// Keeps the block's size in BTF, where the inner map needs it.
const struct table_block *unused_table_block __attribute__((unused));

struct unwind_chunk {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CHUNK_BLOCKS);
	__type(key, __u32);
	__type(value, struct table_block);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct unwind_chunk);
} unwind_chunks SEC(".maps");

// Distinct rules of every loaded table, by id; never removed (a whole /usr
// has about 3,500).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct unwind_rule);
} unwind_rules SEC(".maps");

// (pid, address) -> how to unwind there; each executable mapping is split
// into the prefixes that cover it.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	// A mapping takes about 5 prefixes (at most ~100); nodes are allocated
	// as used.
	__uint(max_entries, 262144);
	__type(key, struct range_key);
	__type(value, struct unwind_range);
} unwind_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct unwind_proc);
} unwind_procs SEC(".maps");

// Ranges a CPU keeps from its trie lookups, per process: a stack goes back
// and forth between a few files (the program, libc, ...), the next sample
// of the process usually needs the same ones, and a trie lookup walks about
// ten nodes, each a likely cache miss at 99 Hz. They are good while
// ranges_generation, which user space bumps at every change to
// unwind_ranges or unwind_procs, stays what it was when they were kept.
#define WALK_RANGES 4
#define RANGE_CACHE_SLOTS 4 // processes, by pid

struct range_cache {
	__u32 pid, exec_seq;
	__u32 generation; // ranges_generation + 1 when filled (0: empty)
	__u32 next_range; // the slot the next trie lookup fills
	struct unwind_range ranges[WALK_RANGES]; // limit 0: empty
};

// How to unwind at an address of a process, as a CPU last found it: the
// same return addresses come back sample after sample, and this saves the
// range check, the table's index and rows and the rule (several cache
// lines, cold at 99 Hz) for one line. Two ways a set, the newer first, so
// that two addresses of one set do not push each other out at every walk.
// Good while ranges_generation stays what it was when filled, as the
// ranges kept per CPU are.
#define RULE_MEMO_SETS 256

struct rule_memo {
	__u64 pc; // the address looked up (a return address less one)
	__u32 pid;
	__u32 generation; // ranges_generation + 1 when filled (0: empty)
	struct unwind_rule rule;
	__u32 kind; // RANGE_ROWS (rule) or RANGE_FP
	__u64 pad;  // 32 bytes: a set is one cache line
};

struct rule_memo_set {
	struct rule_memo way[2];
} __attribute__((aligned(64)));

struct user_walk {
	__u64 pc, sp, bp;
	__u64 hash; // of the frames so far, as hash_stack computes it
	__u32 pid;
	__u32 frames; // walked so far
	__u32 cache;  // the process's slot of scratch.ranges
	__u32 status; // how the walk ended
	__u32 seg, at; // where the next frame goes in segs
	__u32 generation; // ranges_generation + 1 at the walk's start
	__u32 pad;
	struct stack segs[USER_SEGMENTS];
};

// A stack this CPU stored in the stacks map of the current buffer: most
// samples repeat a recent stack, and this saves the map lookup that would
// find it there (a hashed 1 KiB element, cold at 99 Hz).
#define RECENT_STACKS 32

struct recent_stack {
	__u64 hash;
	__u64 first_pc, last_pc; // what store_stack compares to tell a collision
	__u32 shape;		 // len | status << 8
	__u32 generation;	 // active_generation + 1 when stored (0: empty)
};

struct scratch {
	struct stack kernel;
	struct user_walk user;
	struct recent_stack recent[RECENT_STACKS];
	struct range_cache ranges[RANGE_CACHE_SLOTS];
	struct rule_memo_set memo[RULE_MEMO_SETS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

const volatile bool include_idle = false;
const volatile bool filter_pids = false;
// Add the children of filtered processes to the filter as they fork.
const volatile bool follow_forks = false;
// Walk user stacks with Ember's unwinder where ranges are installed.
const volatile bool unwind_user = false;
// Where the dynamic loader's struct r_debug (_r_debug) lies from its
// _dl_debug_state, the function on_libs_loaded is attached to.
const volatile __s64 r_debug_from_probe = 0;

// Bumped by user space at each drain; its low bit is the set of maps the
// program writes into, which user space then does not touch.
volatile __u32 active_generation = 0;
// Bumped by user space after it changes unwind_ranges or unwind_procs.
volatile __u32 ranges_generation = 0;

static __always_inline void count_stat(__u32 buffer, __u32 which)
{
	which += buffer * STAT_MAX;
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += 1; // per-CPU: no atomic needed
}

static __always_inline void add_stat(__u32 buffer, __u32 which, __u64 n)
{
	which += buffer * STAT_MAX;
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += n;
}

static __always_inline bool notify(__u32 buffer, __u32 type, __u32 pid, __u32 exec_seq,
				   __u64 start_code)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_stat(buffer, STAT_EVENTS_LOST);
		return false;
	}
	e->start_code = start_code;
	e->type = type;
	e->pid = pid;
	e->exec_seq = exec_seq;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return true;
}

// current_image returns the process's exec sequence number, telling user
// space about the image at its first sample.
static __always_inline __u32 current_image(__u32 buffer, struct task_struct *task, __u32 pid)
{
	struct proc_state *st = bpf_map_lookup_elem(&procs, &pid);
	if (!st) {
		// Past on_exit (do_exit still runs in the old address space): a
		// fresh entry would claim the image before the first execve.
		if (task->flags & PF_EXITING)
			return EXEC_SEQ_EXITED;
		struct proc_state fresh = {};
		bpf_map_update_elem(&procs, &pid, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&procs, &pid);
		if (!st)
			return 0;
	}
	// Two threads sampled at once may both notify; user space dedupes.
	// If the ring is full, the next sample tries again.
	if (!st->notified) {
		st->start_code = task->mm ? task->mm->start_code : 0;
		if (notify(buffer, EVENT_NEW_PROCESS, pid, st->exec_seq, st->start_code))
			st->notified = 1;
	}
	return st->exec_seq;
}

static __always_inline __u64 hash_pc(__u64 h, __u64 pc)
{
	h ^= pc;
	h *= 0x100000001b3ULL; // FNV-1a prime, on whole words
	return h ^ (h >> 29);
}

#define HASH_BASIS 0xcbf29ce484222325ULL

static __always_inline __u64 hash_finish(__u64 h, __u32 len, __u32 status)
{
	return hash_pc(h ^ len, status);
}

// hash_stack hashes a stack of one segment.
static __always_inline __u64 hash_stack(struct stack *s)
{
	__u64 h = HASH_BASIS;
	for (int i = 0; i < STACK_SEGMENT; i++) {
		if (i >= s->len)
			break;
		h = hash_pc(h, s->pcs[i]);
	}
	return hash_finish(h, s->len, s->status);
}

// store_stack puts a stack into the stacks map under its hash and returns 0,
// or -EEXIST when a different stack has the same hash (a collision, counted),
// or -ENOMEM when the map is full. recent is this CPU's cache of stacks it
// stored in this generation's map.
static __always_inline long store_stack(void *stacks, __u64 hash, struct stack *s,
					struct recent_stack *recent, __u32 generation)
{
	// A 64-bit hash makes a real collision rare; compare what is cheap.
	__u32 len = s->len;
	__u64 last = (__u64)len - 1; // an empty stack: no last
	// Keep the check on last itself, which the verifier needs to see.
	asm volatile("" : "+r"(last));
	__u64 first_pc = 0, last_pc = 0;
	if (last < STACK_SEGMENT) {
		first_pc = s->pcs[0];
		last_pc = s->pcs[last];
	}
	__u32 shape = len | s->status << 8;
	struct recent_stack *seen = &recent[hash & (RECENT_STACKS - 1)];
	if (seen->generation == generation + 1 && seen->hash == hash) {
		if (seen->shape != shape || seen->first_pc != first_pc || seen->last_pc != last_pc)
			return -EEXIST;
		return 0;
	}
	struct stack *old = bpf_map_lookup_elem(stacks, &hash);
	if (old) {
		if ((old->len | old->status << 8) != shape)
			return -EEXIST;
		if (last < STACK_SEGMENT && (old->pcs[0] != first_pc || old->pcs[last] != last_pc))
			return -EEXIST;
	} else {
		long err = bpf_map_update_elem(stacks, &hash, s, BPF_NOEXIST);
		// -EEXIST: another CPU stored it first.
		if (err && err != -EEXIST)
			return -ENOMEM;
	}
	seen->hash = hash;
	seen->first_pc = first_pc;
	seen->last_pc = last_pc;
	seen->shape = shape;
	seen->generation = generation + 1;
	return 0;
}

// table_block returns the block holding word i of the table space, or NULL
// when its chunk is not there (a table being dropped).
static __always_inline struct table_block *table_block(__u32 i)
{
	__u32 c = i >> CHUNK_SHIFT;
	void *chunk = bpf_map_lookup_elem(&unwind_chunks, &c);
	if (!chunk)
		return NULL;
	__u32 blk = (i >> BLOCK_SHIFT) & (CHUNK_BLOCKS - 1);
	return bpf_map_lookup_elem(chunk, &blk);
}

// table_word returns word i of the table space, or 0 when its chunk is not
// there: a row of rule 0, which user space reserves for a gap, so the walk
// stops there.
static __always_inline __u32 table_word(__u32 i)
{
	struct table_block *b = table_block(i);
	return b ? b->words[i & (BLOCK_WORDS - 1)] : 0;
}

// below is 1 when a row word's pc is at or below off, else 0. The search
// steps move by it, not by a branch: a branch per step multiplies the
// paths the verifier walks past its limit.
static __always_inline __u32 below(__u32 row, __u32 off)
{
	return ((row & 0xffff) - off - 1) >> 31;
}

static __always_inline struct unwind_rule *rule_of(__u32 row)
{
	__u32 id = row >> 16;
	return bpf_map_lookup_elem(&unwind_rules, &id);
}

// find_rule returns the rule of the row holding a table-relative pc: two
// index words give the rows of its bucket, a binary search of those (about
// 65 on average, a few cache lines) the row. Words are read straight from
// their 4 KiB block: a map lookup per block, not per word, as each lookup
// in a chunk is a helper call.
static __always_inline struct unwind_rule *find_rule(struct unwind_range *r, __u64 rel)
{
	__u64 b = rel >> BUCKET_SHIFT;
	if (b >= r->buckets)
		return NULL;
	__u32 ix = r->table + b;
	struct table_block *blk = table_block(ix);
	if (!blk)
		return NULL;
	__u32 lo = blk->words[ix & (BLOCK_WORDS - 1)];
	__u32 next = (ix + 1) & (BLOCK_WORDS - 1); // 0: in the next block
	__u32 hi = next ? blk->words[next] : table_word(ix + 1);
	__u32 rows = r->table + r->buckets + 1;
	__u32 off = rel & 0xffff;
	if (lo > hi || hi - lo > (1 << BUCKET_SHIFT))
		return NULL; // a table being replaced under the walk
	// Find the last of rows [lo, hi) whose pc <= off, if row lo's is.
	__u32 first = rows + lo, at = 0, n = hi - lo, row;
	if (n == 0) {
		row = 0;
	} else if (first >> BLOCK_SHIFT == (rows + hi - 1) >> BLOCK_SHIFT) {
		// The bucket's rows are in one block, as nearly always.
		blk = table_block(first);
		if (!blk)
			return NULL;
		__u32 base = first & (BLOCK_WORDS - 1);
		row = blk->words[base];
		if (below(row, off)) {
			for (int i = 0; i < BUCKET_ROW_STEPS; i++) {
				if (n <= 1)
					break;
				__u32 half = n / 2;
				at += half & -below(blk->words[(base + at + half) & (BLOCK_WORDS - 1)], off);
				n -= half;
			}
			return rule_of(blk->words[(base + at) & (BLOCK_WORDS - 1)]);
		}
	} else {
		row = table_word(first);
		if (below(row, off)) {
			for (int i = 0; i < BUCKET_ROW_STEPS; i++) {
				if (n <= 1)
					break;
				__u32 half = n / 2;
				at += half & -below(table_word(first + at + half), off);
				n -= half;
			}
			return rule_of(table_word(first + at));
		}
	}
	// The row holding pc starts before this bucket.
	if (lo == 0)
		return NULL;
	return rule_of(table_word(first - 1));
}

// user_stack_hash is the hash a walked stack is stored under: of all its
// frames, their number and how the walk ended.
static __always_inline __u64 user_stack_hash(struct user_walk *st)
{
	return hash_finish(st->hash, st->frames, st->status);
}

// segment_hash is the hash segment k > 0 of a stack is stored under.
static __always_inline __u64 segment_hash(__u64 stack_hash, __u32 k)
{
	return hash_pc(stack_hash, k);
}

static __always_inline struct user_walk *unwind_scratch(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	return s ? &s->user : NULL;
}

// memo_set spreads addresses over the memo. Functions of one size in a row
// put return addresses at a fixed stride, which a plain multiplicative hash
// maps onto a few slots; this mixes every bit first (MurmurHash3's finalizer).
static __always_inline __u32 memo_set(__u64 pc)
{
	pc ^= pc >> 33;
	pc *= 0xff51afd7ed558ccdULL;
	pc ^= pc >> 33;
	return pc & (RULE_MEMO_SETS - 1);
}

// unwind_step records the current frame and moves to its caller. It returns
// 1 (stop) with stack.status set when the walk ends.
static long unwind_step(__u32 index, void *ctx)
{
	__u32 zero = 0;
	struct scratch *scr = bpf_map_lookup_elem(&scratch, &zero);
	if (!scr)
		return 1;
	struct user_walk *st = &scr->user;
	struct range_cache *rc = &scr->ranges[st->cache & (RANGE_CACHE_SLOTS - 1)];
	__u32 n = st->frames;
	if (n >= MAX_USER_DEPTH) {
		st->status = UNWIND_END_DEPTH;
		return 1;
	}
	__u64 pc = st->pc;
	// Where frame n goes, kept as the walk goes rather than divided out,
	// which the verifier would not follow.
	__u32 seg = st->seg, at = st->at;
	if (seg >= USER_SEGMENTS || at >= STACK_SEGMENT)
		return 1;
	st->segs[seg].pcs[at] = pc;
	st->frames = n + 1;
	if (at + 1 < STACK_SEGMENT) {
		st->at = at + 1;
	} else {
		st->at = 0;
		st->seg = seg + 1;
	}
	st->hash = hash_pc(st->hash, pc);

	// A return address points after the call; the call is what matters.
	__u64 lookup = n > 0 ? pc - 1 : pc;
	struct rule_memo_set *set = &scr->memo[memo_set(lookup)];
	struct unwind_rule rule = {};
	__u32 kind;
	struct rule_memo *hit = NULL;
	for (int w = 0; w < 2; w++) {
		struct rule_memo *m = &set->way[w];
		if (m->generation == st->generation && m->pc == lookup && m->pid == st->pid) {
			hit = m;
			break;
		}
	}
	if (hit) {
		rule = hit->rule;
		kind = hit->kind;
	} else {
		struct unwind_range *r = NULL;
		for (int i = 0; i < WALK_RANGES; i++) {
			if (lookup >= rc->ranges[i].start && lookup < rc->ranges[i].limit) {
				r = &rc->ranges[i];
				break;
			}
		}
		if (!r) {
			struct range_key key = {
				.prefixlen = 96,
				.pid_be = bpf_htonl(st->pid),
				.addr_be = bpf_cpu_to_be64(lookup),
			};
			struct unwind_range *found = bpf_map_lookup_elem(&unwind_ranges, &key);
			if (!found) {
				st->status = UNWIND_END_NO_MAPPING;
				return 1;
			}
			r = &rc->ranges[rc->next_range++ & (WALK_RANGES - 1)];
			*r = *found;
		}
		kind = r->kind;
		if (kind == RANGE_NO_TABLE) {
			st->status = UNWIND_END_NO_TABLE;
			return 1;
		}
		if (kind != RANGE_FP) {
			__u64 rel = lookup - r->bias;
			if (rel > 0xffffffffULL) {
				st->status = UNWIND_END_NO_ROW;
				return 1;
			}
			struct unwind_rule *row = find_rule(r, rel);
			if (!row) {
				st->status = UNWIND_END_NO_ROW;
				return 1;
			}
			rule = *row;
		}
		set->way[1] = set->way[0];
		set->way[0].pc = lookup;
		set->way[0].pid = st->pid;
		set->way[0].generation = st->generation;
		set->way[0].rule = rule;
		set->way[0].kind = kind;
	}

	__u64 cfa, ra = 0, bp = st->bp;
	if (kind == RANGE_FP) {
		if (st->bp == 0) {
			st->status = UNWIND_END_COMPLETE; // the outermost frame
			return 1;
		}
		// A frame pointer below the stack pointer, or a frame of more than
		// 8 MiB, is not one: code without them keeps other values in RBP.
		if (st->bp < st->sp || st->bp - st->sp > (8 << 20)) {
			st->status = UNWIND_END_BAD_FRAME;
			return 1;
		}
		// The saved frame pointer and the return address, in one read.
		__u64 frame[2];
		if (bpf_probe_read_user(frame, sizeof(frame), (void *)st->bp)) {
			st->status = UNWIND_END_READ_FAILED;
			return 1;
		}
		bp = frame[0];
		ra = frame[1];
		cfa = st->bp + 16;
	} else {
		__u8 how = rule.kind;
		switch (how & 0x0f) {
		case CFA_SP:
			cfa = st->sp + rule.cfa_offset;
			break;
		case CFA_FP:
			if (st->bp == 0) {
				st->status = UNWIND_END_BAD_FRAME;
				return 1;
			}
			cfa = st->bp + rule.cfa_offset;
			break;
		case CFA_PLT11:
			cfa = st->sp + 8 + ((pc & 15) >= 11 ? 8 : 0);
			break;
		case CFA_PLT10:
			cfa = st->sp + 8 + ((pc & 15) >= 10 ? 8 : 0);
			break;
		case CFA_END:
			st->status = UNWIND_END_COMPLETE;
			return 1;
		case CFA_GAP:
			st->status = UNWIND_END_NO_ROW;
			return 1;
		default:
			st->status = UNWIND_END_UNSUPPORTED;
			return 1;
		}
		if (cfa <= st->sp) {
			st->status = UNWIND_END_BAD_FRAME;
			return 1;
		}
		if ((how >> 4) == RBP_AT_CFA && rule.rbp_offset == -2) {
			// RBP saved right below the return address (push %rbp first,
			// as every frame-pointer prologue does): one read for both.
			__u64 frame[2];
			if (bpf_probe_read_user(frame, sizeof(frame), (void *)(cfa - 16))) {
				st->status = UNWIND_END_READ_FAILED;
				return 1;
			}
			bp = frame[0];
			ra = frame[1];
		} else if (bpf_probe_read_user(&ra, sizeof(ra), (void *)(cfa - 8))) {
			st->status = UNWIND_END_READ_FAILED;
			return 1;
		}
		switch (how >> 4) {
		case RBP_AT_CFA:
			if (rule.rbp_offset == -2)
				break; // read with the return address
			if (bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + (__s64)rule.rbp_offset * 8))) {
				st->status = UNWIND_END_READ_FAILED;
				return 1;
			}
			break;
		case RBP_UNKNOWN:
			bp = 0; // frames that need it stop instead of reading garbage
			break;
		}
	}
	if (ra == 0) {
		st->status = UNWIND_END_COMPLETE; // thread entry points end with a zero return address
		return 1;
	}
	st->pc = ra;
	st->sp = cfa;
	st->bp = bp;
	return 0;
}

static __always_inline void stack_error_stat(__u32 buffer, long err, __u32 collision, __u32 full,
					     __u32 other)
{
	if (err == -EEXIST)
		count_stat(buffer, collision);
	else if (err == -ENOMEM)
		count_stat(buffer, full);
	else
		count_stat(buffer, other);
}

// ctx_reg reads a register of the sample's pt_regs; the context only allows
// whole 8-byte loads, and cs is declared narrower.
#define ctx_reg(ctx, field) \
	(*(volatile __u64 *)((char *)&(ctx)->regs + __builtin_offsetof(struct pt_regs, field)))

// in_user_mode: the sample interrupted user code (CPL 3).
static __always_inline bool in_user_mode(struct bpf_perf_event_data *ctx)
{
	return ctx_reg(ctx, cs) & 3;
}

// unwind_user walks the user stack with Ember's unwinder into scratch. It
// returns NULL when the process has no ranges installed for this image.
static __always_inline struct stack *unwind_user_stack(__u32 buffer, struct bpf_perf_event_data *ctx,
						       struct task_struct *task, __u32 pid,
						       __u32 exec_seq)
{
	// Read before the maps it vouches for: a change after this read makes
	// the next walk drop what this one keeps.
	__u32 ranges_gen = ranges_generation + 1;
	__u32 zero = 0;
	struct scratch *scr = bpf_map_lookup_elem(&scratch, &zero);
	if (!scr)
		return NULL;
	struct user_walk *st = &scr->user;
	__u32 slot = pid & (RANGE_CACHE_SLOTS - 1);
	struct range_cache *rc = &scr->ranges[slot];
	if (rc->generation != ranges_gen || rc->pid != pid || rc->exec_seq != exec_seq) {
		// Installed for this image? (A cached slot says so without a lookup.)
		struct unwind_proc *up = bpf_map_lookup_elem(&unwind_procs, &pid);
		if (!up || up->exec_seq != exec_seq)
			return NULL;
		rc->pid = pid;
		rc->exec_seq = exec_seq;
		rc->generation = ranges_gen;
		rc->next_range = 0;
		for (int i = 0; i < WALK_RANGES; i++)
			rc->ranges[i].limit = 0;
	}
	if (in_user_mode(ctx)) {
		st->pc = ctx_reg(ctx, ip);
		st->sp = ctx_reg(ctx, sp);
		st->bp = ctx_reg(ctx, bp);
	} else {
		// In the kernel: the user registers were saved at its entry. The
		// helper wants a trusted task pointer, which only the BTF variant gives.
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
		st->pc = regs->ip;
		st->sp = regs->sp;
		st->bp = regs->bp;
	}
	st->hash = HASH_BASIS;
	st->pid = pid;
	st->generation = ranges_gen;
	st->frames = 0;
	st->cache = slot;
	st->seg = 0;
	st->at = 0;
	st->status = UNWIND_END_DEPTH;
	bpf_loop(MAX_USER_DEPTH + 1, unwind_step, NULL, 0);
	__u32 frames = st->frames;
	add_stat(buffer, STAT_UNWIND_FRAMES, frames);
	__u32 end = st->status;
	// Segments: each names the next by the hash record() stores it under.
	__u64 hash = user_stack_hash(st);
	for (int k = 0; k < USER_SEGMENTS; k++) {
		__u32 first = k * STACK_SEGMENT;
		if (k > 0 && frames <= first)
			break; // not used: leave its cache lines alone
		__u32 len = frames > first ? frames - first : 0;
		st->segs[k].len = len < STACK_SEGMENT ? len : STACK_SEGMENT;
		st->segs[k].status = end;
		st->segs[k].next = len > STACK_SEGMENT ? segment_hash(hash, k + 1) : 0;
	}
	if (end < UNWIND_END_MAX)
		count_stat(buffer, STAT_UNWIND_END_BASE + end);
	if (end == UNWIND_END_NO_MAPPING) {
		// Ask user space to read the mappings again, at most once a second.
		__u64 now = bpf_ktime_get_ns();
		struct unwind_proc *up = bpf_map_lookup_elem(&unwind_procs, &pid);
		if (up && now - up->miss_reported_ns > 1000000000ULL) {
			up->miss_reported_ns = now;
			notify(buffer, EVENT_NEEDS_MAPPINGS, pid, exec_seq, 0);
		}
	}
	return &st->segs[0];
}

// The program's own code, where a frame-pointer walk is believed.
struct code_range {
	__u64 start, end;
};

// check_frame keeps frame index+1 of the scratch user stack if it is in the
// program's code, and cuts the stack there otherwise.
static long check_frame(__u32 index, void *data)
{
	struct code_range *code = data;
	struct user_walk *w = unwind_scratch();
	if (!w)
		return 1;
	__u32 i = index + 1;
	if (i >= w->segs[0].len)
		return 1;
	// Keep the compiler from folding the bound into the check above,
	// which would hide it from the verifier.
	asm volatile("" : "+r"(i));
	if (i >= STACK_SEGMENT)
		return 1;
	__u64 pc = w->segs[0].pcs[i];
	if (pc < code->start || pc >= code->end) {
		w->segs[0].len = i;
		w->segs[0].status = UNWIND_END_NO_MAPPING;
		return 1;
	}
	return 0;
}

// cut_at_foreign_code ends the kernel's frame-pointer walk (in scratch) at
// its first return address outside the program's own code. It is used
// before a process's tables are in: through code without frame pointers
// (the dynamic loader, Debian's libc) that walk reads garbage, and the
// program's code range is all that is known yet. What is cut is marked.
static __always_inline void cut_at_foreign_code(struct task_struct *task)
{
	struct code_range code = {
		.start = task->mm->start_code,
		.end = task->mm->end_code,
	};
	bpf_loop(STACK_SEGMENT, check_frame, &code, 0);
}

static __always_inline int record(struct bpf_perf_event_data *ctx, __u32 generation, __u32 buffer, void *counts,
				  void *stacks, struct task_struct *task, __u32 pid, __u32 tid,
				  __u32 exec_seq)
{
	struct sample_key key = {
		.pid = pid,
		.tid = tid,
		.exec_seq = exec_seq,
		.user_stack_source = USER_STACK_KERNEL_FP,
	};
	__u32 zero = 0;
	struct scratch *scr = bpf_map_lookup_elem(&scratch, &zero);
	if (!scr)
		return 0;

	// Sampled in user mode there is no kernel stack to ask for.
	long n = in_user_mode(ctx) ? -EFAULT : bpf_get_stack(ctx, scr->kernel.pcs, sizeof(scr->kernel.pcs), 0);
	if (n > 0) {
		scr->kernel.len = (__u64)n / 8;
		scr->kernel.status = UNWIND_END_UNKNOWN;
		scr->kernel.next = 0;
		key.kernel_stack_hash = hash_stack(&scr->kernel);
		long err = store_stack(stacks, key.kernel_stack_hash, &scr->kernel, scr->recent, generation);
		if (err)
			stack_error_stat(buffer, err, STAT_KERNEL_COLLISION, STAT_KERNEL_MAP_FULL,
					 STAT_KERNEL_OTHER);
		key.kernel_stack_err = err;
	} else if (n == 0 || n == -EFAULT) {
		key.kernel_stack_err = -EFAULT; // sampled in user mode: no kernel stack
	} else {
		stack_error_stat(buffer, n, STAT_KERNEL_COLLISION, STAT_KERNEL_MAP_FULL, STAT_KERNEL_OTHER);
		key.kernel_stack_err = n;
	}

	if (task->flags & PF_KTHREAD) {
		count_stat(buffer, STAT_USER_KERNEL_THREAD);
		key.user_stack_err = STACK_ID_KERNEL_THREAD;
	} else if (!task->mm || exec_seq == EXEC_SEQ_EXITED) {
		count_stat(buffer, STAT_USER_EXITING);
		key.user_stack_err = STACK_ID_EXITING;
	} else {
		struct stack *user = NULL;
		if (unwind_user)
			user = unwind_user_stack(buffer, ctx, task, pid, exec_seq);
		if (user) {
			key.user_stack_source = USER_STACK_UNWOUND;
			key.user_stack_hash = user_stack_hash(&scr->user);
		} else {
			user = &scr->user.segs[0];
			long m = bpf_get_stack(ctx, user->pcs, sizeof(user->pcs), BPF_F_USER_STACK);
			user->len = m > 0 ? (__u64)m / 8 : 0;
			user->status = UNWIND_END_UNKNOWN;
			user->next = 0;
			if (unwind_user) {
				count_stat(buffer, STAT_USER_KERNEL_FP);
				cut_at_foreign_code(task);
			}
			if (m < 0) {
				count_stat(buffer, STAT_USER_OTHER);
				key.user_stack_err = m;
				user = NULL;
			} else {
				key.user_stack_hash = hash_stack(user);
			}
		}
		if (user) {
			long err = store_stack(stacks, key.user_stack_hash, user, scr->recent, generation);
			// A deep walk's outer segments, each under the hash the one
			// before names.
			for (int k = 1; k < USER_SEGMENTS && !err; k++) {
				__u64 next = scr->user.segs[k - 1].next;
				if (!next)
					break;
				err = store_stack(stacks, next, &scr->user.segs[k], scr->recent, generation);
			}
			if (err)
				stack_error_stat(buffer, err, STAT_USER_COLLISION, STAT_USER_MAP_FULL,
						 STAT_USER_OTHER);
			key.user_stack_err = err;
		}
	}

	struct sample_value *value = bpf_map_lookup_elem(counts, &key);
	if (!value) {
		struct sample_value fresh = { .count = 0 };
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
		long err = bpf_map_update_elem(counts, &key, &fresh, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			count_stat(buffer, STAT_COUNT_MAP_FULL);
			return 0;
		}
		value = bpf_map_lookup_elem(counts, &key);
		if (!value) {
			count_stat(buffer, STAT_COUNT_MAP_FULL);
			return 0;
		}
	}
	__sync_fetch_and_add(&value->count, 1);
	count_stat(buffer, STAT_RECORDED);
	return 0;
}

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	// Read once: every count of this sample goes to the same buffer.
	__u32 generation = active_generation;
	__u32 buffer = generation & 1;
	count_stat(buffer, STAT_TAKEN);

	// A trusted pointer: its fields are read directly, not through a
	// helper call each.
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32;
	__u32 tid = (__u32)id;
	__u32 exec_seq = 0;

	if (tid == 0) {
		if (!include_idle) {
			count_stat(buffer, STAT_IDLE);
			return 0;
		}
	} else {
		if (filter_pids) {
			__u8 *want = bpf_map_lookup_elem(&pid_filter, &pid);
			if (!want || *want != PID_SAMPLE) {
				count_stat(buffer, STAT_FILTERED);
				return 0;
			}
		}
		if (!(task->flags & PF_KTHREAD))
			exec_seq = current_image(buffer, task, pid);
	}

	// Each branch names its maps as constants, which the verifier requires.
	if (buffer)
		return record(ctx, generation, 1, &counts_1, &stacks_1, task, pid, tid, exec_seq);
	return record(ctx, generation, 0, &counts_0, &stacks_0, task, pid, tid, exec_seq);
}

// A new program image replaces the address space: later samples belong to a
// new image, which user space reads at its first sample. execve runs with
// the other threads of the process gone, so nothing races this update.
SEC("raw_tracepoint/sched_process_exec")
int on_exec(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct proc_state *st = bpf_map_lookup_elem(&procs, &pid);
	if (st) {
		st->exec_seq++;
		st->notified = 0;
	} else {
		struct proc_state fresh = { .exec_seq = 1 };
		bpf_map_update_elem(&procs, &pid, &fresh, BPF_ANY);
	}
	return 0;
}

// A child forked by a followed process is followed from its first
// instruction, before it can exec or fork again; threads share their
// process's entry.
SEC("raw_tracepoint/sched_process_fork")
int on_fork(struct bpf_raw_tracepoint_args *ctx)
{
	if (!follow_forks)
		return 0;
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 parent_pid = BPF_CORE_READ(parent, tgid);
	__u32 child_pid = BPF_CORE_READ(child, tgid);
	if (child_pid == parent_pid || !bpf_map_lookup_elem(&pid_filter, &parent_pid))
		return 0;
	__u8 sample = PID_SAMPLE;
	if (bpf_map_update_elem(&pid_filter, &child_pid, &sample, BPF_ANY))
		count_stat(active_generation & 1, STAT_FORK_UNFOLLOWED);
	return 0;
}

// The dynamic loader calls _dl_debug_state once it has mapped a program's
// libraries (r_state RT_CONSISTENT), before main. Telling user space about
// the image then, rather than at its first sample, lets it install the
// image's ranges before the samples come: a process living a fraction of a
// second is unwound from its first sample instead of losing them to the
// kernel's walk. Later calls (dlopen) are left to EVENT_NEEDS_MAPPINGS.
#define RT_CONSISTENT 0
SEC("uprobe")
int on_libs_loaded(struct pt_regs *ctx)
{
	__s32 state = -1;
	__u64 r_state = ctx->ip + r_debug_from_probe + 24; // r_version, r_map, r_brk
	if (bpf_probe_read_user(&state, sizeof(state), (void *)r_state) || state != RT_CONSISTENT)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (filter_pids && !bpf_map_lookup_elem(&pid_filter, &pid))
		return 0;
	current_image(active_generation & 1, bpf_get_current_task_btf(), pid);
	return 0;
}

// The last thread of a process is gone when signal->live drops to zero, which
// do_exit does before this tracepoint on every kernel (only recent ones pass
// group_dead as an argument).
SEC("raw_tracepoint/sched_process_exit")
int on_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (follow_forks)
		bpf_map_delete_elem(&pid_filter, &pid); // its PID may be reused outside the tree
	struct proc_state *st = bpf_map_lookup_elem(&procs, &pid);
	if (!st)
		return 0;
	__u32 exec_seq = st->exec_seq;
	bpf_map_delete_elem(&procs, &pid);
	notify(active_generation & 1, EVENT_EXIT, pid, exec_seq, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
