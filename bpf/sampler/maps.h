// SPDX-License-Identifier: GPL-2.0
// The sampler's maps and global variables, the per-CPU scratch space its
// walks work in, and the per-buffer counters every loss is counted in.
#ifndef EMBER_SAMPLER_MAPS_H
#define EMBER_SAMPLER_MAPS_H

#include "types.h"

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
// Followed children leave at exit, so it holds the live tree only
// (values: enum pid_filter_value).
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
	__uint(max_entries, EVENTS_RING_BYTES);
} events SEC(".maps");


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

// Files whose tables are in, by (device, inode): what lets the sampler
// give a new image its ranges at exec and once its libraries are loaded,
// before user space could read /proc (install.h).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct file_key);
	__type(value, struct file_unwind);
} file_unwinds SEC(".maps");

// What the sampler installed per process; user space deletes an entry and
// its ranges at the process's exit.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct image_record);
} images SEC(".maps");

// A zeroed record to start one from: it is too large for the stack.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct image_record);
} blank_image SEC(".maps");

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
	__u32 owner;	  // whose ranges: pid, or its parent's (ranges_owner)
	__u32 pad;
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
	__u32 kind; // RANGE_ROWS (rule), RANGE_FP, RANGE_FP_GUESS or RANGE_FP_UNREAD
	__u32 pad;  // 32 bytes: a set is one cache line
};
_Static_assert(sizeof(struct rule_memo) == 32, "a memo set must stay one cache line");

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
// Bumped by the sampler when it gives a new image ranges: a CPU's kept
// ranges and rules are good while the sum of both stays the same.
volatile __u32 installs_generation = 0;

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

#endif // EMBER_SAMPLER_MAPS_H
