// SPDX-License-Identifier: GPL-2.0
// Process tracking: the image (exec sequence) of every sampled process,
// the events that tell user space to read a new image's mappings or to
// drop an exited one, and the PID filter's following of forks.
#ifndef EMBER_SAMPLER_PROCESS_H
#define EMBER_SAMPLER_PROCESS_H

#include "maps.h"
#include "install.h"

// in_execve: the task is inside execve. From the moment the new address
// space replaces the old one until sched_process_exec bumps the exec
// sequence, the registers hold the old image's addresses, the memory is
// the new image's, and the sequence still names the old one: a stack read
// then would mix two programs, and mappings read then would be the wrong
// image's. Kernels without the flag are read as before.
static __always_inline bool in_execve(struct task_struct *task)
{
	if (bpf_core_field_exists(task->in_execve))
		return BPF_CORE_READ_BITFIELD(task, in_execve);
	return false;
}

static __always_inline bool notify(__u32 buffer, __u32 type, __u32 pid, __u32 exec_seq,
				   __u64 start_code, bool wake)
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
	// A wakeup is an interrupt to the reader's CPU, dearer on a VM than
	// the rest of the event: user space reads on a short deadline instead,
	// and is woken only for an image's first sample (its read decides
	// whether it is named before it exits) or when the ring is filling.
	__u64 flags = wake || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > EVENTS_WAKE_BYTES
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	return true;
}

// current_image returns the process's exec sequence number, telling user
// space about the image: once when its libraries are loaded (sampled
// false, from the loader probe) and once at its first sample, so user
// space can read first the images that are being sampled.
static __always_inline __u32 current_image(__u32 buffer, struct task_struct *task, __u32 pid,
					   bool sampled)
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
	// Inside execve the image is changing hands: tell user space about
	// neither, a later sample will.
	if (in_execve(task))
		return st->exec_seq;
	// Two threads sampled at once may both notify; user space dedupes.
	// If the ring is full, the next sample tries again.
	__u32 bit = sampled ? NOTIFIED_SAMPLED : NOTIFIED_LOADED;
	if (!(st->notified & bit)) {
		if (!st->notified)
			st->start_code = task->mm ? task->mm->start_code : 0;
		if (notify(buffer, sampled ? EVENT_SAMPLED : EVENT_NEW_PROCESS, pid, st->exec_seq,
			   st->start_code, sampled))
			st->notified |= bit;
	}
	return st->exec_seq;
}

// A new program image replaces the address space: later samples belong to a
// new image, which user space reads at its first sample. execve runs with
// the other threads of the process gone, so nothing races this update.
SEC("raw_tracepoint/sched_process_exec")
int on_exec(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u32 exec_seq = 1;
	struct proc_state *st = bpf_map_lookup_elem(&procs, &pid);
	if (st) {
		exec_seq = ++st->exec_seq;
		st->notified = 0;
	} else {
		struct proc_state fresh = { .exec_seq = 1 };
		bpf_map_update_elem(&procs, &pid, &fresh, BPF_ANY);
	}
	if (!filter_pids || bpf_map_lookup_elem(&pid_filter, &pid))
		install_image(active_generation & 1, bpf_get_current_task_btf(), pid, exec_seq);
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
// kernel's walk. A later call (dlopen) asks for the mappings again
// (EVENT_NEEDS_MAPPINGS): user space read them before this library was
// mapped, and would name none of its frames.
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
	struct task_struct *task = bpf_get_current_task_btf();
	struct proc_state *st = bpf_map_lookup_elem(&procs, &pid);
	if (st && !in_execve(task)) {
		install_image(active_generation & 1, task, pid, st->exec_seq);
		if (st->notified & NOTIFIED_LOADED)
			notify(active_generation & 1, EVENT_NEEDS_MAPPINGS, pid, st->exec_seq, 0, false);
	}
	current_image(active_generation & 1, task, pid, false);
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
	notify(active_generation & 1, EVENT_EXIT, pid, exec_seq, 0, false);
	return 0;
}

#endif // EMBER_SAMPLER_PROCESS_H
