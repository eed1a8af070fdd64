// SPDX-License-Identifier: GPL-2.0
// The CPython walker. For a process that user space found to run CPython
// (py_procs), it finds the sampled thread's PyThreadState and appends its
// Python frames, leaf first, to the walked user stack: one word a frame,
// with bit PY_WORD_MARK set (no user address has it), so stacks are stored
// as they are and user space splices the frames into the native ones.
#ifndef EMBER_SAMPLER_PYTHON_H
#define EMBER_SAMPLER_PYTHON_H

#include "maps.h"
#include "stacks.h"

// How a version chains its frames (py_proc.frames).
enum py_frames {
	PY_FRAMES_NONE = 0,
	PY_FRAMES_OBJECT = 1,	  // 3.8-3.10: PyFrameObject, f_lasti; one eval call each
	PY_FRAMES_ENTRY_FLAG = 2, // 3.11: _PyInterpreterFrame; is_entry ends an eval call's run
	PY_FRAMES_SHIM = 3,	  // 3.12+: a frame owned by the C stack ends a run
};

// A frame word: bit PY_WORD_MARK says it is one, bit PY_WORD_RUN_END that
// it is the outermost frame one call of the eval loop ran (user space puts
// the run in place of that native frame), the instruction offset in code
// units (3.8/3.9: f_lasti in bytes) above PY_WORD_CODE_BITS, and the code
// object's address, shifted right by 3 (objects are 8-aligned), below.
enum py_layout {
	PY_WORD_MARK = 63,
	PY_WORD_RUN_END = 62,
	PY_WORD_CODE_BITS = 44,
	PY_WORD_OFFSET_BITS = 18,
	PY_MAX_FRAMES = 192,	// frames walked per sample
	PY_MAX_THREADS = 256,	// thread states searched for the sampled thread
	PY_OWNER_CSTACK = 3,	// _PyInterpreterFrame.owner of 3.12+'s entry shims
	PY_FRAME_READ = 128,	// bytes of a frame read at once
	PY_PLACE_UNKNOWN = 1,	// py_place: the thread's Python frames are not known
};

// What the walker needs to know of a process's CPython: where _PyRuntime
// is and the offsets of its version (offsets into the structures named).
struct py_proc {
	__u64 runtime;	 // address of _PyRuntime
	__u64 code_type; // address of PyCode_Type, which checks a first frame
	__u32 exec_seq;
	__u8 frames; // enum py_frames
	__u8 cframe; // tstate->frame is a _PyCFrame holding current_frame (3.11, 3.12)
	__u16 runtime_interp_head; // _PyRuntimeState.interpreters.head
	__u16 interp_next, interp_threads;
	__u16 tstate_next, tstate_thread_id, tstate_frame;
	__u16 cframe_frame;    // _PyCFrame.current_frame
	__u16 cframe_previous; // _PyCFrame.previous
	__u16 frame_previous, frame_code, frame_instr;
	__u16 frame_flag;    // is_entry (3.11) or owner (3.12+)
	__u16 code_adaptive; // PyCodeObject.co_code_adaptive (3.11+)
	__u16 frame_read;    // bytes of a frame to read: the last field's end
};

// Why a Python walk ended early (py_stats).
enum py_stat {
	PY_STAT_WALKS,	     // samples of CPython processes
	PY_STAT_NO_THREAD,   // the thread has no PyThreadState (not a Python thread)
	PY_STAT_NO_FRAME,    // the thread runs no Python code
	PY_STAT_READ_FAILED, // interpreter memory could not be read
	PY_STAT_FRAMES,	     // Python frames recorded
	PY_STAT_DEPTH,	     // walks cut at PY_MAX_FRAMES or the stack's depth
	PY_STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u32); // tgid
	__type(value, struct py_proc);
} py_procs SEC(".maps");

// The thread state a thread had at its last sample: checked, not trusted,
// so a list walk per sample is saved.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); // tid
	__type(value, __u64);
} py_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} py_stats SEC(".maps");

struct py_walk {
	struct py_proc proc;
	__u64 fsbase; // the thread's pthread_self(), which CPython keeps as thread_id
	__u64 interp, tstate, frame;
	__u64 first; // the first state of the thread found, with a frame or not
	__u64 depth; // py_stack_depth of the state in frame
	__u32 interp_count, pad2;
	// Where to start instead when no frame was read before one that
	// cannot be: the caller's cframe's. An eval loop entering sets
	// tstate->cframe before its frames' links, stack garbage until then.
	__u64 fallback;
	__u64 pending; // the last frame's word, held until the next says where its run ends
	__u32 status;  // enum py_stat: why it ended, PY_STAT_WALKS if it did not
	__u32 emitted; // frames recorded
	__u8 buf[PY_FRAME_READ + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_walk);
} py_scratch SEC(".maps");

const struct py_proc *unused_py_proc __attribute__((unused));
const enum py_frames *unused_py_frames __attribute__((unused));
const enum py_layout *unused_py_layout __attribute__((unused));
const enum py_stat *unused_py_stat __attribute__((unused));

static __always_inline void py_stat(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&py_stats, &which);
	if (v)
		*v += n;
}

static __always_inline struct py_walk *py_scratch_walk(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&py_scratch, &zero);
}

// py_read reads a pointer at addr + off in the process.
static __always_inline __u64 py_read(__u64 addr, __u16 off)
{
	__u64 v = 0;
	if (!addr || bpf_probe_read_user(&v, sizeof(v), (void *)(addr + off)))
		return 0;
	return v;
}

// py_buf_word is the 8 bytes at off of the frame read into w->buf.
static __always_inline __u64 py_buf_word(struct py_walk *w, __u16 off)
{
	__u32 o = off & (PY_FRAME_READ - 1);
	return *(__u64 *)&w->buf[o];
}

// py_current_frame is the frame a thread state runs, or 0.
static __always_inline __u64 py_current_frame(struct py_proc *p, __u64 tstate)
{
	__u64 frame = py_read(tstate, p->tstate_frame);
	return p->cframe ? py_read(frame, p->cframe_frame) : frame;
}

// py_stack_depth orders a thread's states by how recently they were
// entered: the address of the C stack an eval loop of theirs runs on, lower
// for the state the thread runs now (the stack grows down). 3.11 and 3.12
// keep their cframe there; 3.13 its entry shim frame. ~0 when unknown.
static __always_inline __u64 py_stack_depth(struct py_proc *p, __u64 tstate)
{
	__u64 frame = py_read(tstate, p->tstate_frame);
	if (p->cframe || !frame)
		return frame ? frame : ~0ULL;
	if (p->frames != PY_FRAMES_SHIM)
		return 0; // one interpreter's frames are as good as another's
	for (int i = 0; i < 8 && frame; i++) {
		__u8 owner = 0;
		if (bpf_probe_read_user(&owner, 1, (void *)(frame + p->frame_flag)))
			break;
		if (owner == PY_OWNER_CSTACK)
			return frame;
		frame = py_read(frame, p->frame_previous);
	}
	return ~0ULL;
}

// py_find_thread is one step of the search of every interpreter's thread
// list for the state of the sampled thread: by its thread_id, and among
// the thread's states (one in each interpreter it ran in) the one it runs.
static long py_find_thread(__u32 index, void *ctx)
{
	struct py_walk *w = py_scratch_walk();
	if (!w)
		return 1;
	struct py_proc *p = &w->proc;
	if (!w->tstate) {
		w->interp = py_read(w->interp, p->interp_next);
		if (!w->interp)
			return 1; // no interpreter left
		w->interp_count++;
		w->tstate = py_read(w->interp, p->interp_threads);
		return 0;
	}
	if (py_read(w->tstate, p->tstate_thread_id) == w->fsbase) {
		if (!w->first)
			w->first = w->tstate;
		if (py_current_frame(p, w->tstate)) {
			__u64 depth = py_stack_depth(p, w->tstate);
			if (!w->frame || depth < w->depth) {
				w->frame = w->tstate;
				w->depth = depth;
			}
		}
	}
	w->tstate = py_read(w->tstate, p->tstate_next);
	return 0;
}

// py_emit appends a frame word to the walked stack; 1 when it is full.
static __always_inline int py_emit(__u64 word)
{
	__u32 zero = 0;
	struct scratch *scr = bpf_map_lookup_elem(&scratch, &zero);
	if (!scr)
		return 1;
	struct user_walk *st = &scr->user;
	__u32 n = st->frames, seg = st->seg, at = st->at;
	if (n >= MAX_USER_DEPTH || seg >= USER_SEGMENTS || at >= STACK_SEGMENT)
		return 1;
	st->segs[seg].pcs[at] = word;
	st->frames = n + 1;
	if (at + 1 < STACK_SEGMENT) {
		st->at = at + 1;
	} else {
		st->at = 0;
		st->seg = seg + 1;
	}
	st->hash = hash_pc(st->hash, word);
	return 0;
}

// py_frame_step reads one frame and moves to the one that called it.
static long py_frame_step(__u32 index, void *ctx)
{
	struct py_walk *w = py_scratch_walk();
	if (!w)
		return 1;
	struct py_proc *p = &w->proc;
	if (!w->frame) {
		w->status = PY_STAT_WALKS; // the outermost frame was walked
		return 1;
	}
	__u32 size = p->frame_read;
	if (size > PY_FRAME_READ)
		size = PY_FRAME_READ;
	if (bpf_probe_read_user(w->buf, size, (void *)w->frame)) {
		if (w->fallback && !w->pending) {
			w->frame = w->fallback;
			w->fallback = 0;
			return 0;
		}
		w->status = PY_STAT_READ_FAILED;
		return 1;
	}
	__u64 code = py_buf_word(w, p->frame_code);
	__u64 offset = 0, run_end = 0;
	__u8 flag = w->buf[p->frame_flag & (PY_FRAME_READ - 1)];
	bool shim = p->frames == PY_FRAMES_SHIM && flag == PY_OWNER_CSTACK;
	if (!w->pending && w->fallback && p->code_type && !shim && py_read(code, 8) != p->code_type) {
		// A frame being set up: its code is not there yet.
		w->frame = w->fallback;
		w->fallback = 0;
		return 0;
	}
	w->frame = py_buf_word(w, p->frame_previous);
	switch (p->frames) {
	case PY_FRAMES_OBJECT: {
		__s32 lasti = (__s32)py_buf_word(w, p->frame_instr);
		offset = lasti > 0 ? lasti : 0;
		run_end = 1;
		break;
	}
	case PY_FRAMES_SHIM:
		if (shim) {
			if (w->pending)
				w->pending |= 1ULL << PY_WORD_RUN_END;
			return 0;
		}
		// fallthrough
	case PY_FRAMES_ENTRY_FLAG: {
		__u64 instr = py_buf_word(w, p->frame_instr), start = code + p->code_adaptive;
		offset = instr > start ? (instr - start) / 2 : 0;
		run_end = p->frames == PY_FRAMES_ENTRY_FLAG && flag;
		break;
	}
	default:
		return 1;
	}
	if (w->pending) {
		if (py_emit(w->pending)) {
			w->pending = 0;
			w->status = PY_STAT_DEPTH;
			return 1;
		}
		w->emitted++;
	}
	if (offset >= 1ULL << PY_WORD_OFFSET_BITS)
		offset = (1ULL << PY_WORD_OFFSET_BITS) - 1;
	w->pending = 1ULL << PY_WORD_MARK | run_end << PY_WORD_RUN_END | offset << PY_WORD_CODE_BITS |
		     ((code >> 3) & ((1ULL << PY_WORD_CODE_BITS) - 1));
	return 0;
}

// python_walk appends the sampled thread's Python frames to the user stack
// being walked in scratch, when the process runs a CPython user space set
// up (py_procs).
static __always_inline void python_walk(struct task_struct *task, __u32 pid, __u32 exec_seq)
{
	__u32 tid = task->pid;
	struct py_proc *p = bpf_map_lookup_elem(&py_procs, &pid);
	if (!p || p->exec_seq != exec_seq)
		return;
	struct py_walk *w = py_scratch_walk();
	if (!w)
		return;
	py_stat(PY_STAT_WALKS, 1);
	w->proc = *p;
	w->fsbase = task->thread.fsbase;
	w->frame = 0;
	w->pending = 0;
	w->emitted = 0;
	w->status = PY_STAT_DEPTH;
	// The state a thread had at its last sample is its state now while
	// the process has one interpreter; with more, it may have one in each.
	__u64 *cached = bpf_map_lookup_elem(&py_threads, &tid);
	__u64 head = py_read(p->runtime, p->runtime_interp_head);
	if (cached && *cached && !py_read(head, p->interp_next) &&
	    py_read(*cached, p->tstate_thread_id) == w->fsbase && py_current_frame(p, *cached)) {
		w->frame = *cached;
	} else {
		// interp_next from this address is interpreters.head.
		w->interp = p->runtime + p->runtime_interp_head - p->interp_next;
		w->tstate = 0;
		w->first = 0;
		w->interp_count = 0;
		bpf_loop(PY_MAX_THREADS, py_find_thread, NULL, 0);
		if (!w->frame)
			w->frame = w->first; // a state with no frame: counted below
		if (!w->frame) {
			py_stat(PY_STAT_NO_THREAD, 1);
			return;
		}
		__u64 tstate = w->frame;
		bpf_map_update_elem(&py_threads, &tid, &tstate, BPF_ANY);
	}
	__u64 frame = py_read(w->frame, p->tstate_frame);
	w->fallback = 0;
	if (p->cframe) {
		__u64 cframe = frame;
		frame = py_read(cframe, p->cframe_frame);
		w->fallback = py_read(py_read(cframe, p->cframe_previous), p->cframe_frame);
	}
	if (!frame) {
		py_stat(PY_STAT_NO_FRAME, 1);
		return;
	}
	w->frame = frame;
	bpf_loop(PY_MAX_FRAMES, py_frame_step, NULL, 0);
	if (w->pending) {
		if (py_emit(w->pending | 1ULL << PY_WORD_RUN_END))
			w->status = PY_STAT_DEPTH;
		else
			w->emitted++;
	}
	py_stat(PY_STAT_FRAMES, w->emitted);
	if (w->status != PY_STAT_WALKS)
		py_stat(w->status, 1);
}

// Where a thread is in its Python code, for the off-CPU reuse of its last
// stacks (offcpu.h): since 3.11 the eval loop does not recurse natively, so
// the native stack at a blocking call is the same from any Python caller.
// py_place_step hashes a frame's address, code and instruction, and moves
// to its caller, into w->pending.
static long py_place_step(__u32 index, void *ctx)
{
	struct py_walk *w = py_scratch_walk();
	if (!w)
		return 1;
	struct py_proc *p = &w->proc;
	if (!w->frame)
		return 1;
	__u32 size = p->frame_read;
	if (size > PY_FRAME_READ)
		size = PY_FRAME_READ;
	if (bpf_probe_read_user(w->buf, size, (void *)w->frame)) {
		w->pending = hash_pc(w->pending, 0); // as it was read at the walk
		return 1;
	}
	w->pending = hash_pc(w->pending, w->frame);
	w->pending = hash_pc(w->pending, py_buf_word(w, p->frame_code));
	w->pending = hash_pc(w->pending, py_buf_word(w, p->frame_instr));
	w->frame = py_buf_word(w, p->frame_previous);
	return 0;
}

// py_place returns a hash of the Python frames the task runs, 0 when it
// runs none (not a CPython process of this image), or PY_PLACE_UNKNOWN when
// its thread state is not known yet: only a walk finds it.
static __always_inline __u64 py_place(struct task_struct *task, __u32 pid)
{
	__u32 tid = task->pid;
	// py_procs first: every switch-out asks, and most are not CPython's.
	struct py_proc *p = bpf_map_lookup_elem(&py_procs, &pid);
	if (!p)
		return 0;
	struct proc_state *image = bpf_map_lookup_elem(&procs, &pid);
	if (!image || p->exec_seq != image->exec_seq)
		return 0;
	struct py_walk *w = py_scratch_walk();
	if (!w)
		return PY_PLACE_UNKNOWN;
	__u64 *cached = bpf_map_lookup_elem(&py_threads, &tid);
	__u64 tstate = cached ? *cached : 0;
	if (!tstate || py_read(tstate, p->tstate_thread_id) != task->thread.fsbase)
		return PY_PLACE_UNKNOWN;
	w->proc = *p;
	w->frame = py_current_frame(p, tstate);
	w->pending = HASH_BASIS;
	bpf_loop(PY_MAX_FRAMES, py_place_step, NULL, 0);
	// Never PY_PLACE_UNKNOWN or 0, which say otherwise.
	return w->pending | 2;
}

#endif // EMBER_SAMPLER_PYTHON_H
