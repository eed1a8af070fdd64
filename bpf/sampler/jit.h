// SPDX-License-Identifier: GPL-2.0
// JIT code the walk meets before user space has read it: found with the
// kernel's VMA lookup and walked by frame pointer (unwind.h).
#ifndef EMBER_SAMPLER_JIT_H
#define EMBER_SAMPLER_JIT_H

#include "maps.h"

// Also where the walk notes frames in files user space has not read
// (RANGE_FP_UNREAD), which ask for the mappings as JIT code does.
// Code in a page without a file that the process mapped after user space
// last read its mappings (V8 maps new JIT pages as it runs): the first pc
// of a walk outside every known range is looked up in the process's VMAs,
// once, as bpf_find_vma works once per sample (its irq_work). JIT code
// found is walked by frame pointer, as user space would have it, and its
// VMA kept in the CPU's range cache (RANGE_FP_LATE) until the mappings
// are read again.
struct jit_walk {
	__u64 start, end; // the anonymous executable VMA found; end 0: none
	__u32 looked;	  // bpf_find_vma was called in this walk
	__u32 frames;	  // frames walked by it
	__u32 busy;	  // bpf_find_vma refused (-EBUSY): its irq_work in use
	__u32 unread;	  // frames in ranges of files user space has not read
	// The key a return address is looked up with (unwind.h,
	// return_plausible), here as the stack under it is full.
	struct range_key ra_key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct jit_walk);
} jit_walks SEC(".maps");

// Kernel values that vmlinux.h lacks (include/linux/mm.h, errno.h).
enum {
	KERNEL_VM_EXEC = 0x4,
	KERNEL_EBUSY = 16,
};

// The key of jit_walks' one entry, kept off the stack: jit_vma runs two
// callbacks deep, where the 512 bytes of stack have no 16 left.
__u32 jit_walk_key = 0;

static __always_inline struct jit_walk *jit_scratch(void)
{
	return bpf_map_lookup_elem(&jit_walks, &jit_walk_key);
}

// jit_vma keeps the VMA holding the pc looked up if it is executable code
// without a file: JIT code. The vDSO has no file either, but it is no JIT.
static long jit_vma(struct task_struct *task, struct vm_area_struct *vma, void *ctx)
{
	struct jit_walk *j = jit_scratch();
	if (!j || vma->vm_file || !(vma->vm_flags & KERNEL_VM_EXEC) ||
	    vma->vm_start == (__u64)task->mm->context.vdso)
		return 0;
	j->start = vma->vm_start;
	j->end = vma->vm_end;
	return 0;
}

// jit_code reports whether pc, outside every known range of the walked
// process, is in JIT code it mapped since. The VMA is looked up once per
// walk; later pcs in the one found need no lookup (a builtin's return
// address checked, then walked to).
static __always_inline bool jit_code(__u64 pc)
{
	struct jit_walk *j = jit_scratch();
	if (!j)
		return false;
	if (!j->looked) {
		j->looked = 1;
		// Both callers walk the task running now.
		if (bpf_find_vma(bpf_get_current_task_btf(), pc, jit_vma, NULL, 0) == -KERNEL_EBUSY)
			j->busy = 1;
	}
	return pc >= j->start && pc < j->end;
}

// jit_range makes the range of the JIT code jit_code found, for the CPU's
// range cache, where it stays until user space has read the mappings.
static __always_inline void jit_range(struct unwind_range *r)
{
	struct jit_walk *j = jit_scratch();
	r->start = j ? j->start : 0;
	r->limit = j ? j->end : 0;
	r->bias = 0;
	r->table = 0;
	r->buckets = 0;
	r->kind = RANGE_FP_LATE;
}

#endif // EMBER_SAMPLER_JIT_H
