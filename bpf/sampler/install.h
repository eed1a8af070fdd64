// SPDX-License-Identifier: GPL-2.0
// The sampler gives a new process image its ranges itself: at exec (the
// program and its loader) and when the loader has mapped the libraries, it
// walks the task's executable mappings and installs a range for each: from
// its file's table when user space has one in (file_unwinds), else walked
// by frame pointer until it has. A program that lives a few milliseconds
// is then unwound from its first sample, with no /proc read.
// What it installed is kept per process (images) for user space to delete
// at exit and to name the frames of images it never read.
#ifndef EMBER_SAMPLER_INSTALL_H
#define EMBER_SAMPLER_INSTALL_H

#include "maps.h"

#define VM_EXEC 0x00000004
#define MAX_RANGE_PREFIXES 128 // a range splits into at most ~2 * 48 prefixes

// Weak: a kernel without them (before 6.7) loads the sampler all the same,
// and its images are installed by user space alone.
extern int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, struct task_struct *task,
				 __u64 addr) __ksym __weak;
extern struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it) __ksym __weak;
extern void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it) __ksym __weak;
#define kfunc_exists(sym) (!!(sym))

// Where each power of two lands under a de Bruijn multiply: log2 without
// a branch, which the verifier would otherwise follow down every path.
#define DEBRUIJN64 0x022fdd63cc95386dULL
static const __u8 debruijn_log2[64] = {
	0,  1,	2,  53, 3,  7,	54, 27, 4,  38, 41, 8,	34, 55, 48, 28, 62, 5,	39, 46, 44, 42,
	22, 9,	24, 35, 59, 56, 49, 18, 29, 11, 63, 52, 6,  26, 37, 40, 33, 47, 61, 45, 43, 21,
	23, 58, 17, 10, 51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12,
};

static __always_inline __u32 log2_pow2(__u64 p)
{
	return debruijn_log2[((p * DEBRUIJN64) >> 58) & 63];
}

// high_bit is the highest power of two in v > 0.
static __always_inline __u64 high_bit(__u64 v)
{
	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	v |= v >> 16;
	v |= v >> 32;
	return v - (v >> 1);
}

struct prefix_walk {
	struct unwind_range r;
	__u64 at; // the next address to cover
	__u32 pid;
	__u32 remove; // delete the prefixes instead of putting them
	__u32 failed;
	__u32 pad;
};

// The walk's state lives in a map, not on the stack: the verifier then
// knows nothing of its values and checks put_prefix once, rather than
// once per value of the address it has reached.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct prefix_walk);
} prefix_scratch SEC(".maps");

// put_prefix puts (or deletes) the next aligned prefix of [at, r.limit):
// the same split as rangeKeys in Go, so that user space can delete them.
static long put_prefix(__u32 index, void *data)
{
	__u32 zero = 0;
	struct prefix_walk *w = bpf_map_lookup_elem(&prefix_scratch, &zero);
	if (!w)
		return 1;
	__u64 start = w->at, limit = w->r.limit;
	if (start >= limit)
		return 1;
	// The largest aligned block at start that fits.
	__u64 size = high_bit(limit - start);
	__u64 align = start & -start;
	if (start && align < size)
		size = align;
	struct range_key key = {
		.prefixlen = 96 - log2_pow2(size),
		.pid_be = bpf_htonl(w->pid),
		.addr_be = bpf_cpu_to_be64(start),
	};
	if (w->remove)
		bpf_map_delete_elem(&unwind_ranges, &key);
	else if (bpf_map_update_elem(&unwind_ranges, &key, &w->r, BPF_ANY))
		w->failed++;
	w->at = start + size;
	return 0;
}

// put_range puts or deletes all the prefixes of one range, and returns how
// many it could not put.
static __always_inline __u32 put_range(__u32 pid, struct unwind_range *r, bool remove)
{
	__u32 zero = 0;
	struct prefix_walk *w = bpf_map_lookup_elem(&prefix_scratch, &zero);
	if (!w)
		return 1;
	w->r = *r;
	w->at = r->start;
	w->pid = pid;
	w->remove = remove;
	w->failed = 0;
	bpf_loop(MAX_RANGE_PREFIXES, put_prefix, NULL, 0);
	return w->failed;
}

struct record_walk {
	struct image_record *rec;
	__u32 pid;
};

// drop_range deletes entry index of a record's installed ranges.
static long drop_range(__u32 index, void *data)
{
	struct record_walk *w = data;
	if (index >= w->rec->ranges)
		return 1;
	struct image_range *ir = &w->rec->r[index & (IMAGE_RANGES - 1)];
	if (ir->installed) {
		struct unwind_range r = { .start = ir->start, .limit = ir->limit };
		put_range(w->pid, &r, true);
	}
	return 0;
}

// file_bias is what to subtract from a runtime pc of a mapping at file
// offset off, as loadBias finds it in Go: the segment starting at that
// page first, else the one holding it.
static __always_inline bool file_bias(struct file_unwind *fu, __u64 start, __u64 off, __u64 *bias)
{
	int found = -1;
	for (int i = 0; i < FILE_SEGMENTS; i++) {
		if (i < fu->segments && fu->seg[i].page_off == off) {
			found = i;
			break;
		}
	}
	if (found < 0) {
		for (int i = 0; i < FILE_SEGMENTS; i++) {
			if (i < fu->segments && off >= fu->seg[i].page_off && off < fu->seg[i].end_off) {
				found = i;
				break;
			}
		}
	}
	if (found < 0 || found >= FILE_SEGMENTS)
		return false;
	*bias = start - off + fu->seg[found].delta;
	return true;
}

struct install_walk {
	struct image_record *rec;
	__u32 pid;
	__u32 buffer;
};

// install_range installs entry index of a record: from its file's table when
// that is in, else by frame pointer until it is.
static long install_range(__u32 index, void *data)
{
	struct install_walk *w = data;
	struct image_record *rec = w->rec;
	if (index >= rec->ranges)
		return 1;
	struct image_range *ir = &rec->r[index & (IMAGE_RANGES - 1)];
	struct unwind_range r = { .start = ir->start, .limit = ir->limit };
	struct file_unwind *fu = bpf_map_lookup_elem(&file_unwinds, &ir->file);
	if (fu) {
		r.table = fu->table;
		r.buckets = fu->buckets;
		r.kind = fu->kind;
	}
	if (!fu || (fu->kind == RANGE_ROWS && !file_bias(fu, r.start, ir->offset, &r.bias))) {
		// No table yet (user space reads the image and builds one): its
		// frames are walked by frame pointer where they look like frames,
		// as the kernel's walk would, and the walk goes on into the files
		// that have tables. A table of no buckets has no rows. Walks
		// through it ask for the mappings: user space may have read them
		// before this file was mapped (dlopen), and would never know it.
		rec->unknown++;
		r.table = 0;
		r.buckets = 0;
		r.kind = RANGE_FP_UNREAD;
	}
	ir->table = r.table;
	ir->installed = 1;
	__u32 failed = put_range(w->pid, &r, false);
	if (failed)
		add_stat(w->buffer, STAT_IMAGE_RANGES_FAILED, failed);
	return 0;
}

// install_image gives the current task's image the ranges of its executable
// mappings, replacing what it installed for an earlier image of the
// process. Called at exec and from the loader probe,
// in process context, where the mappings can be walked.
static __always_inline void install_image(__u32 buffer, struct task_struct *task, __u32 pid,
					  __u32 exec_seq)
{
	if (!unwind_user || !task->mm || !kfunc_exists(bpf_iter_task_vma_new))
		return;
	__u32 zero = 0;
	struct image_record *rec = bpf_map_lookup_elem(&images, &pid);
	if (rec && rec->exec_seq != exec_seq) {
		// An earlier image's ranges: gone with it.
		struct record_walk w = { .rec = rec, .pid = pid };
		bpf_loop(IMAGE_RANGES, drop_range, &w, 0);
		rec = NULL;
	}
	if (!rec) {
		struct image_record *blank = bpf_map_lookup_elem(&blank_image, &zero);
		if (!blank || bpf_map_update_elem(&images, &pid, blank, BPF_ANY))
			return;
		rec = bpf_map_lookup_elem(&images, &pid);
		if (!rec)
			return;
	}
	// Recorded afresh each time: the loader's call sees the program's
	// mappings again, and puts the same prefixes again.
	rec->exec_seq = exec_seq;
	rec->ranges = 0;
	rec->overflow = 0;
	rec->unknown = 0;
	rec->start_code = task->mm->start_code;
	__u64 vdso = (__u64)task->mm->context.vdso;

	// First the mappings, with as few branches as can be: the verifier
	// checks this loop's body until its states repeat.
	struct bpf_iter_task_vma it;
	struct vm_area_struct *vma;
	bpf_iter_task_vma_new(&it, task, 0);
	while ((vma = bpf_iter_task_vma_next(&it))) {
		if (!(vma->vm_flags & VM_EXEC))
			continue;
		struct file *f = vma->vm_file;
		if (!f && vma->vm_start != vdso)
			continue; // code without a file: user space reads it
		__u32 n = rec->ranges;
		if (n >= IMAGE_RANGES) {
			rec->overflow = 1;
			break;
		}
		struct image_range *ir = &rec->r[n & (IMAGE_RANGES - 1)];
		ir->start = vma->vm_start;
		ir->limit = vma->vm_end;
		// The vDSO reads as {0, 0}: BPF_CORE_READ of a NULL file gives 0.
		ir->offset = (__u64)vma->vm_pgoff << 12;
		ir->file.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
		ir->file.ino = BPF_CORE_READ(f, f_inode, i_ino);
		ir->table = 0;
		ir->installed = 0;
		rec->ranges = n + 1;
	}
	bpf_iter_task_vma_destroy(&it);

	struct install_walk w = { .rec = rec, .pid = pid, .buffer = buffer };
	bpf_loop(IMAGE_RANGES, install_range, &w, 0);
	if (rec->ranges == rec->unknown)
		return; // nothing known: the kernel's walk until user space reads it

	struct unwind_proc up = { .exec_seq = exec_seq };
	bpf_map_update_elem(&unwind_procs, &pid, &up, BPF_ANY);
	// A CPU may keep rules of the image this one replaced, under this pid.
	__sync_fetch_and_add(&installs_generation, 1);
	count_stat(buffer, STAT_IMAGES_INSTALLED);
}

#endif // EMBER_SAMPLER_INSTALL_H
