// SPDX-License-Identifier: GPL-2.0
// Off-CPU time, from sched_switch: a thread leaving the CPU notes when, in
// which state and with which stacks (offcpu_threads); when it is switched
// back in, the time it was away and one wait are added to those stacks in
// the current buffer's offcpu counts. Nothing goes to user space per switch.
//
// In sched_switch current is prev, so stacks can only be taken as a thread
// leaves. A full walk per switch costs microseconds; a thread that leaves
// again from the same place (user pc, sp, bp where it is a frame pointer,
// the two words at sp, the same system call, and in CPython the same
// Python frames) reuses the stacks it had then. Their hashes stay good
// across drains: user space remembers the stacks it read (collector).
//
// A thread that leaves still runnable (preempted in the kernel, with the
// preempt flag; on its way back to user mode, without it, in state 0; or
// yielding) takes no stacks: its kernel stack is the preemption path and
// its user stack is where it was running, which the CPU profile shows.
// Each such switch lands at a new place, so walking them cost 6.5 µs a
// switch and the daemon the naming of a new stack each time. Its wait is
// counted per thread under NO_USER_STACK_PREEMPTED instead, and its last
// stacks stay for its next block from the same place.
#ifndef EMBER_SAMPLER_OFFCPU_H
#define EMBER_SAMPLER_OFFCPU_H

#include "maps.h"
#include "process.h"
#include "stacks.h"
#include "unwind.h"

// Why a thread left the CPU (the profile's thread_state label).
enum offcpu_state {
	OFFCPU_RUNNABLE = 0, // preempted: waiting for a CPU
	OFFCPU_SLEEPING = 1, // interruptible sleep (S): a timer, a pipe, a lock, the network
	OFFCPU_DISK = 2,     // uninterruptible (D): mostly I/O
	OFFCPU_OTHER = 3,    // stopped, traced, parked
};

// Counters per buffer (buffer * OFFCPU_STAT_MAX + stat). Per drain:
// ARRIVED = RECORDED + SHORT + COUNT_MAP_FULL, and
// LEFT = REUSED + WALKED + PREEMPTED.
enum offcpu_stat {
	OFFCPU_STAT_LEFT,	    // switch-outs noted
	OFFCPU_STAT_ARRIVED,	    // switch-ins of a noted thread: waits that ended
	OFFCPU_STAT_RECORDED,	    // waits added to the counts
	OFFCPU_STAT_SHORT,	    // waits under the minimum, left out
	OFFCPU_STAT_SHORT_NS,	    // and their time
	OFFCPU_STAT_COUNT_MAP_FULL, // waits lost: the counts map was full
	OFFCPU_STAT_MISSED,	    // switch-ins of a thread not seen leaving (started before, or evicted)
	OFFCPU_STAT_FILTERED,	    // switches of threads outside the PID filter
	OFFCPU_STAT_IDLE,	    // switches of the idle task, left out
	OFFCPU_STAT_REUSED,	    // switch-outs that reused the thread's last stacks
	OFFCPU_STAT_WALKED,	    // switch-outs that took their stacks
	OFFCPU_STAT_USER_LOST,	    // walks whose user stack was not stored (collision, map full, error)
	OFFCPU_STAT_KERNEL_LOST,    // the same for the kernel stack
	OFFCPU_STAT_PREEMPTED,	    // switch-outs of runnable threads (preempted), which take no stacks
	OFFCPU_STAT_MAX,
};

struct offcpu_key {
	struct sample_key sample;
	__u32 state; // enum offcpu_state
	__u32 pad;
};

struct offcpu_value {
	__u64 nanos; // time off the CPU
	__u64 waits; // times the thread left
	char comm[TASK_COMM_LEN];
};

// A thread as it last left the CPU.
struct offcpu_thread {
	__u64 left_ns; // when; 0 once it is back
	struct sample_key key;
	__u32 state;
	__u32 reusable; // the stacks may be reused if it leaves from the same place
	// Where it left from: its user registers, the two words at sp and its
	// system call.
	__u64 pc, sp, bp, syscall;
	__u64 top[2];
	// The wait under way began with a preemption: it goes to the thread's
	// stackless key, of image preempt_exec_seq, not to key.
	__u32 preempted;
	__u32 preempt_exec_seq;
	// Stacks cut short (the process's tables not in yet) are reused until
	// then, and walked again after; 0: whole, reused for good.
	__u64 cut_until_ns;
	// Where it was in its Python code (py_place), 0 outside CPython.
	__u64 py_place;
};

enum {
	// How far above sp a frame pointer may point: the default 8 MiB stack.
	OFFCPU_FRAME_SPAN = 8 << 20,
	// How long a cut stack is reused. A new process's tables take seconds
	// to come in on a loaded host; walking each of its switches meanwhile
	// cost 4 µs a switch in the storm.
	OFFCPU_REWALK_NS = 10 * 1000 * 1000,
};

// Kernel values that vmlinux.h lacks (include/linux/sched.h).
enum {
	KERNEL_TASK_INTERRUPTIBLE = 0x1,
	KERNEL_TASK_UNINTERRUPTIBLE = 0x2,
	KERNEL_TASK_DEAD = 0x80,
	KERNEL_TASK_NOLOAD = 0x400,
};

struct offcpu_counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct offcpu_key);
	__type(value, struct offcpu_value);
};

struct offcpu_counts_map offcpu_0 SEC(".maps");
struct offcpu_counts_map offcpu_1 SEC(".maps");

// Threads by tid (the idle tasks, all tid 0, by CPU above 1 << 31). LRU:
// a thread that exits without a last switch (none do) or one crowded out
// shows up as a missed switch-in.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct offcpu_thread);
} offcpu_threads SEC(".maps");

// A blank thread entry to create one from, kept off the stack: this
// program and the unwinder's and Python walk's callbacks share 512 bytes.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct offcpu_thread);
} offcpu_blank SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * OFFCPU_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} offcpu_stats SEC(".maps");

// Waits shorter than this are counted in the stats only.
const volatile __u64 offcpu_min_wait_ns = 0;
// Track the idle tasks too (their time off the CPU is the CPU's busy time).
const volatile bool offcpu_include_idle = false;

const struct offcpu_key *unused_offcpu_key __attribute__((unused));
const struct offcpu_value *unused_offcpu_value __attribute__((unused));
const enum offcpu_stat *unused_offcpu_stat __attribute__((unused));
const enum offcpu_state *unused_offcpu_state __attribute__((unused));

static __always_inline void offcpu_stat(__u32 buffer, __u32 which, __u64 n)
{
	which += buffer * OFFCPU_STAT_MAX;
	__u64 *v = bpf_map_lookup_elem(&offcpu_stats, &which);
	if (v)
		*v += n; // per-CPU: no atomic needed
}

static __always_inline __u32 offcpu_thread_key(__u32 tid)
{
	return tid ? tid : (1u << 31) | bpf_get_smp_processor_id();
}

static __always_inline __u32 offcpu_state_of(bool preempt, __u32 state)
{
	if (preempt || state == 0)
		return OFFCPU_RUNNABLE;
	if ((state & KERNEL_TASK_UNINTERRUPTIBLE) && !(state & KERNEL_TASK_NOLOAD))
		return OFFCPU_DISK;
	if (state & (KERNEL_TASK_INTERRUPTIBLE | KERNEL_TASK_UNINTERRUPTIBLE))
		return OFFCPU_SLEEPING; // TASK_IDLE (D | NOLOAD) too: kernel threads waiting for work
	return OFFCPU_OTHER;
}

// offcpu_stacks takes the leaving thread's kernel and user stacks into the
// current buffer's stacks map and sets their hashes or errors in key, as
// record() does for a CPU sample.
static __always_inline void offcpu_stacks(void *ctx, __u32 generation, __u32 buffer, void *stacks,
					  struct task_struct *task, struct pt_regs *regs,
					  struct sample_key *key)
{
	__u32 zero = 0;
	struct scratch *scr = bpf_map_lookup_elem(&scratch, &zero);
	if (!scr)
		return;
	offcpu_stat(buffer, OFFCPU_STAT_WALKED, 1);
	key->user_stack_source = USER_STACK_KERNEL_FP;
	key->kernel_stack_hash = 0;
	key->user_stack_hash = 0;
	// The first two frames are this program and the tracepoint's caller
	// of it (bpf_trace_run4); __schedule follows.
	long n = bpf_get_stack(ctx, scr->kernel.pcs, sizeof(scr->kernel.pcs), 2 & BPF_F_SKIP_FIELD_MASK);
	if (n > 0) {
		scr->kernel.len = (__u64)n / 8;
		scr->kernel.status = UNWIND_END_UNKNOWN;
		scr->kernel.next = 0;
		key->kernel_stack_hash = hash_stack(&scr->kernel);
		n = store_stack(stacks, key->kernel_stack_hash, &scr->kernel, scr->recent, generation);
	} else if (n == 0) {
		n = -EFAULT;
	}
	if (n)
		offcpu_stat(buffer, OFFCPU_STAT_KERNEL_LOST, 1);
	key->kernel_stack_err = n;

	if (!regs) {
		key->user_stack_err = STACK_ID_KERNEL_THREAD;
		return;
	}
	if (!task->mm || key->exec_seq == EXEC_SEQ_EXITED) {
		key->user_stack_err = STACK_ID_EXITING;
		return;
	}
	if (in_execve(task)) {
		key->user_stack_err = STACK_ID_EXECVE;
		return;
	}
	struct stack *user = NULL;
	if (unwind_user)
		user = unwind_user_stack(buffer, regs->ip, regs->sp, regs->bp, key->pid, key->exec_seq);
	if (user) {
		key->user_stack_source = USER_STACK_UNWOUND;
		key->user_stack_hash = user_stack_hash(&scr->user);
	} else {
		user = &scr->user.segs[0];
		long m = bpf_get_stack(ctx, user->pcs, sizeof(user->pcs), BPF_F_USER_STACK);
		user->len = m > 0 ? (__u64)m / 8 : 0;
		user->status = UNWIND_END_UNKNOWN;
		user->next = 0;
		if (unwind_user)
			cut_at_foreign_code(task);
		if (m < 0) {
			offcpu_stat(buffer, OFFCPU_STAT_USER_LOST, 1);
			key->user_stack_err = m;
			return;
		}
		key->user_stack_hash = hash_stack(user);
	}
	long err = store_stack(stacks, key->user_stack_hash, user, scr->recent, generation);
	for (int k = 1; k < USER_SEGMENTS && !err; k++) {
		__u64 next = scr->user.segs[k - 1].next;
		if (!next)
			break;
		err = store_stack(stacks, next, &scr->user.segs[k], scr->recent, generation);
	}
	if (err)
		offcpu_stat(buffer, OFFCPU_STAT_USER_LOST, 1);
	key->user_stack_err = err;
}

// offcpu_leave notes prev leaving the CPU.
static __always_inline void offcpu_leave(void *ctx, __u32 generation, __u32 buffer, void *stacks,
					 bool preempt, struct task_struct *prev, __u32 prev_state,
					 __u64 now)
{
	__u32 tid = prev->pid;
	__u32 pid = prev->tgid;
	__u32 tkey = offcpu_thread_key(tid);
	if (prev_state & KERNEL_TASK_DEAD) {
		bpf_map_delete_elem(&offcpu_threads, &tkey); // its last switch
		return;
	}
	if (tid == 0 && !offcpu_include_idle) {
		offcpu_stat(buffer, OFFCPU_STAT_IDLE, 1);
		return;
	}
	if (tid != 0 && filter_pids) {
		__u8 *want = bpf_map_lookup_elem(&pid_filter, &pid);
		if (!want || *want != PID_SAMPLE) {
			offcpu_stat(buffer, OFFCPU_STAT_FILTERED, 1);
			return;
		}
	}
	struct offcpu_thread *th = bpf_map_lookup_elem(&offcpu_threads, &tkey);
	if (!th) {
		__u32 zero = 0;
		struct offcpu_thread *blank = bpf_map_lookup_elem(&offcpu_blank, &zero);
		if (!blank)
			return;
		bpf_map_update_elem(&offcpu_threads, &tkey, blank, BPF_NOEXIST);
		th = bpf_map_lookup_elem(&offcpu_threads, &tkey);
		if (!th)
			return;
	}
	bool user = tid != 0 && !(prev->flags & PF_KTHREAD);
	if (offcpu_state_of(preempt, prev_state) == OFFCPU_RUNNABLE) {
		th->preempted = 1;
		// The image as known, without telling user space of a sample:
		// with no stack to name, reading the process (its tables built
		// for the unwinder) would be work for nothing.
		struct proc_state *st = user ? bpf_map_lookup_elem(&procs, &pid) : NULL;
		th->preempt_exec_seq = st ? st->exec_seq : 0;
		th->state = OFFCPU_RUNNABLE;
		th->left_ns = now;
		offcpu_stat(buffer, OFFCPU_STAT_PREEMPTED, 1);
		offcpu_stat(buffer, OFFCPU_STAT_LEFT, 1);
		return;
	}
	th->preempted = 0;
	struct pt_regs *regs = NULL;
	__u64 pc = 0, sp = 0, bp = 0, syscall = 0, top[2] = {};
	if (user) {
		regs = (struct pt_regs *)bpf_task_pt_regs(prev);
		pc = regs->ip;
		sp = regs->sp;
		bp = regs->bp;
		syscall = regs->orig_ax;
		bpf_probe_read_user(top, sizeof(top), (void *)sp);
		// bp names the caller's frame only as a frame pointer, into the
		// stack above sp; in code built without them it is any value (a
		// loop counter in bench/switchstorm), which made every block new.
		if (bp - sp >= OFFCPU_FRAME_SPAN)
			bp = 0;
	}
	// A thread that blocks again in the same call has the same stacks. A
	// CPython thread's native stack does not say from which Python code
	// since 3.11: its Python frames have to be the same too.
	__u64 py = regs ? py_place(prev, pid) : 0;
	if (regs && th->reusable && (th->cut_until_ns == 0 || now < th->cut_until_ns) && th->key.pid == pid &&
	    th->pc == pc && th->sp == sp && th->bp == bp && th->syscall == syscall && th->top[0] == top[0] &&
	    th->top[1] == top[1] && th->py_place == py && py != PY_PLACE_UNKNOWN) {
		offcpu_stat(buffer, OFFCPU_STAT_REUSED, 1);
	} else {
		struct sample_key key = { .pid = pid, .tid = tid };
		if (user)
			key.exec_seq = current_image(buffer, prev, pid, true);
		offcpu_stacks(ctx, generation, buffer, stacks, prev, regs, &key);
		th->key = key;
		th->pc = pc;
		th->sp = sp;
		th->bp = bp;
		th->syscall = syscall;
		th->top[0] = top[0];
		th->top[1] = top[1];
		th->py_place = py;
		th->reusable = regs && key.kernel_stack_err == 0 && key.user_stack_err == 0;
		// A stack cut short by missing tables is walked again, once they
		// may be in.
		bool whole = key.user_stack_source == USER_STACK_UNWOUND || !unwind_user;
		th->cut_until_ns = whole ? 0 : now + OFFCPU_REWALK_NS;
	}
	th->state = offcpu_state_of(preempt, prev_state);
	th->left_ns = now;
	offcpu_stat(buffer, OFFCPU_STAT_LEFT, 1);
}

// offcpu_arrive adds the wait of next, back on the CPU, to its stacks.
static __always_inline void offcpu_arrive(__u32 buffer, void *counts, struct task_struct *next, __u64 now)
{
	__u32 tid = next->pid;
	if (tid == 0 && !offcpu_include_idle)
		return; // counted as it left
	__u32 tkey = offcpu_thread_key(tid);
	struct offcpu_thread *th = bpf_map_lookup_elem(&offcpu_threads, &tkey);
	if (!th || !th->left_ns) {
		__u32 pid = next->tgid;
		__u8 *want = filter_pids && tid != 0 ? bpf_map_lookup_elem(&pid_filter, &pid) : NULL;
		if (filter_pids && tid != 0 && (!want || *want != PID_SAMPLE))
			offcpu_stat(buffer, OFFCPU_STAT_FILTERED, 1);
		else
			offcpu_stat(buffer, OFFCPU_STAT_MISSED, 1);
		return;
	}
	__u64 left = th->left_ns;
	th->left_ns = 0;
	offcpu_stat(buffer, OFFCPU_STAT_ARRIVED, 1);
	__u64 away = now > left ? now - left : 0;
	if (away < offcpu_min_wait_ns) {
		offcpu_stat(buffer, OFFCPU_STAT_SHORT, 1);
		offcpu_stat(buffer, OFFCPU_STAT_SHORT_NS, away);
		return;
	}
	struct offcpu_key key = { .sample = th->key, .state = th->state };
	if (th->preempted) {
		struct sample_key stackless = {
			.pid = next->tgid,
			.tid = tid,
			.exec_seq = th->preempt_exec_seq,
			.kernel_stack_err = -NO_USER_STACK_PREEMPTED,
			.user_stack_err = -NO_USER_STACK_PREEMPTED,
		};
		key.sample = stackless;
	}
	struct offcpu_value *value = bpf_map_lookup_elem(counts, &key);
	if (!value) {
		struct offcpu_value fresh = {};
		bpf_probe_read_kernel(fresh.comm, sizeof(fresh.comm), next->comm);
		long err = bpf_map_update_elem(counts, &key, &fresh, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			offcpu_stat(buffer, OFFCPU_STAT_COUNT_MAP_FULL, 1);
			return;
		}
		value = bpf_map_lookup_elem(counts, &key);
		if (!value) {
			offcpu_stat(buffer, OFFCPU_STAT_COUNT_MAP_FULL, 1);
			return;
		}
	}
	__sync_fetch_and_add(&value->nanos, away);
	__sync_fetch_and_add(&value->waits, 1);
	offcpu_stat(buffer, OFFCPU_STAT_RECORDED, 1);
}

#endif // EMBER_SAMPLER_OFFCPU_H
