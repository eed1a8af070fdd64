//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Ember's sampler: runs on every cpu-clock perf event, records the interrupted
// task's kernel and user stacks in stack maps and counts each distinct
// (process, thread, user stack, kernel stack). Nothing is dropped silently:
// every failure is counted by reason in `stats`.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define MAX_STACK_DEPTH 127
#define TASK_COMM_LEN 16
#define PF_KTHREAD 0x00200000
#define EEXIST 17
#define ENOMEM 12
#define EFAULT 14

// user_stack_id values for tasks that have no user stack to read: kernel
// threads, and processes past exit_mm on their way out.
#define STACK_ID_KERNEL_THREAD (-1)
#define STACK_ID_EXITING (-2)

// Where a sample's user stack lives. Frame-pointer stacks come from
// bpf_get_stackid; a DWARF (.eh_frame) unwinder will add its own source.
enum user_stack_source {
	USER_STACK_STACKMAP = 0,
};

struct sample_key {
	__u32 pid; // tgid
	__u32 tid;
	// Which program image of the process the sample is from: samples taken
	// before and after an execve must be read against different mappings.
	__u32 exec_seq;
	// A stack map id when >= 0, otherwise the negative errno of bpf_get_stackid.
	__s32 kernel_stack_id;
	__s32 user_stack_id;
	__u32 user_stack_source;
};

struct sample_value {
	__u64 count;
	char comm[TASK_COMM_LEN];
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
	STAT_MAX,
};

enum event_type {
	EVENT_NEW_PROCESS = 1,
	EVENT_EXIT = 2,
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

// Two sets of maps: the program writes into the active one while user space
// drains the other, so a drain never races with samples of the same interval.
// Sizes are set by the loader from flags.
struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sample_key);
	__type(value, struct sample_value);
};

struct stacks_map {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
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

// Processes to sample when filtering by PID (tgid -> 1).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
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

const volatile bool include_idle = false;
const volatile bool filter_pids = false;

// Which set of maps the program writes into; flipped by user space.
volatile __u32 active_buffer = 0;

static __always_inline void count_stat(__u32 buffer, __u32 which)
{
	which += buffer * STAT_MAX;
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += 1; // per-CPU: no atomic needed
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
		struct proc_state fresh = {};
		bpf_map_update_elem(&procs, &pid, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&procs, &pid);
		if (!st)
			return 0;
	}
	// Two threads sampled at once may both notify; user space dedupes.
	// If the ring is full, the next sample tries again.
	if (!st->notified) {
		st->start_code = BPF_CORE_READ(task, mm, start_code);
		if (notify(buffer, EVENT_NEW_PROCESS, pid, st->exec_seq, st->start_code))
			st->notified = 1;
	}
	return st->exec_seq;
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

static __always_inline int record(struct bpf_perf_event_data *ctx, __u32 buffer, void *counts,
				  void *stacks, struct task_struct *task, __u32 pid, __u32 tid,
				  __u32 exec_seq)
{
	struct sample_key key = {
		.pid = pid,
		.tid = tid,
		.exec_seq = exec_seq,
		.user_stack_source = USER_STACK_STACKMAP,
	};

	long kid = bpf_get_stackid(ctx, stacks, 0);
	// -EFAULT: the sample landed in user mode, so there is no kernel stack.
	if (kid < 0 && kid != -EFAULT)
		stack_error_stat(buffer, kid, STAT_KERNEL_COLLISION, STAT_KERNEL_MAP_FULL, STAT_KERNEL_OTHER);
	key.kernel_stack_id = (__s32)kid;

	if (BPF_CORE_READ(task, flags) & PF_KTHREAD) {
		count_stat(buffer, STAT_USER_KERNEL_THREAD);
		key.user_stack_id = STACK_ID_KERNEL_THREAD;
	} else if (!BPF_CORE_READ(task, mm)) {
		count_stat(buffer, STAT_USER_EXITING);
		key.user_stack_id = STACK_ID_EXITING;
	} else {
		long uid = bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK);
		if (uid < 0)
			stack_error_stat(buffer, uid, STAT_USER_COLLISION, STAT_USER_MAP_FULL, STAT_USER_OTHER);
		key.user_stack_id = (__s32)uid;
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
	__u32 buffer = active_buffer & 1;
	count_stat(buffer, STAT_TAKEN);

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
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
		if (filter_pids && !bpf_map_lookup_elem(&pid_filter, &pid)) {
			count_stat(buffer, STAT_FILTERED);
			return 0;
		}
		if (!(BPF_CORE_READ(task, flags) & PF_KTHREAD))
			exec_seq = current_image(buffer, task, pid);
	}

	// Each branch names its maps as constants, which the verifier requires.
	if (buffer)
		return record(ctx, 1, &counts_1, &stacks_1, task, pid, tid, exec_seq);
	return record(ctx, 0, &counts_0, &stacks_0, task, pid, tid, exec_seq);
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
	struct proc_state *st = bpf_map_lookup_elem(&procs, &pid);
	if (!st)
		return 0;
	__u32 exec_seq = st->exec_seq;
	bpf_map_delete_elem(&procs, &pid);
	notify(active_buffer & 1, EVENT_EXIT, pid, exec_seq, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
