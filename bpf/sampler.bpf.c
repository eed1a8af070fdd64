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
#include <bpf/bpf_tracing.h>

// The parts, by concern (sampler/*.h): the types and constants shared with
// Go, the maps, process tracking and its events, stack storage, and the
// unwinder. This file holds the sampling program itself.
#include "sampler/types.h"
#include "sampler/maps.h"
#include "sampler/process.h"
#include "sampler/stacks.h"
#include "sampler/unwind.h"
#include "sampler/offcpu.h"

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
	} else if (in_execve(task)) {
		count_stat(buffer, STAT_USER_EXECVE);
		key.user_stack_err = STACK_ID_EXECVE;
	} else {
		struct stack *user = NULL;
		if (unwind_user && in_user_mode(ctx)) {
			user = unwind_user_stack(buffer, ctx_reg(ctx, ip), ctx_reg(ctx, sp), ctx_reg(ctx, bp), pid,
						 exec_seq);
		} else if (unwind_user) {
			// In the kernel: the user registers were saved at its entry. The
			// helper wants a trusted task pointer, which only the BTF variant gives.
			struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
			user = unwind_user_stack(buffer, regs->ip, regs->sp, regs->bp, pid, exec_seq);
		}
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
			exec_seq = current_image(buffer, task, pid, true);
	}

	// Each branch names its maps as constants, which the verifier requires.
	if (buffer)
		return record(ctx, generation, 1, &counts_1, &stacks_1, task, pid, tid, exec_seq);
	return record(ctx, generation, 0, &counts_0, &stacks_0, task, pid, tid, exec_seq);
}

// Off-CPU time (sampler/offcpu.h), attached only when it is asked for. In
// sched_switch current is prev: stacks are taken as a thread leaves.
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u32 generation = active_generation;
	__u32 buffer = generation & 1;
	__u64 now = bpf_ktime_get_ns();
	// Each branch names its maps as constants, which the verifier requires.
	if (buffer) {
		offcpu_leave(ctx, generation, 1, &stacks_1, preempt, prev, prev_state, now);
		offcpu_arrive(1, &offcpu_1, next, now);
	} else {
		offcpu_leave(ctx, generation, 0, &stacks_0, preempt, prev, prev_state, now);
		offcpu_arrive(0, &offcpu_0, next, now);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
