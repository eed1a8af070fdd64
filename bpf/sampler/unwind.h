// SPDX-License-Identifier: GPL-2.0
// Ember's user-stack unwinder: finds the range and table of each pc, the
// row and rule for it, and steps to the caller, within the verifier's
// bounds (bpf_loop, one frame per call).
#ifndef EMBER_SAMPLER_UNWIND_H
#define EMBER_SAMPLER_UNWIND_H

#include "maps.h"
#include "process.h"
#include "stacks.h"
#include "python.h"
#include "jit.h"

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
	return ((row & ROW_PC_MASK) - off - 1) >> 31;
}

static __always_inline struct unwind_rule *rule_of(__u32 row)
{
	__u32 id = row >> ROW_PC_BITS;
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
	__u32 off = rel & ROW_PC_MASK;
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

// return_plausible reports whether ra, the return address a guessed frame
// pointer gives, is code of the process: in a known range, or in JIT code
// mapped since the last read (a builtin called from it), which the VMA
// lookup vouches for as it would for a pc. A global function: the
// verifier checks it once, not once per way the step reaches it.
__attribute__((noinline)) int return_plausible(__u32 pid, __u64 ra)
{
	struct jit_walk *j = jit_scratch();
	if (!j)
		return 0;
	j->ra_key.prefixlen = 96;
	j->ra_key.pid_be = bpf_htonl(pid);
	j->ra_key.addr_be = bpf_cpu_to_be64(ra - 1);
	return bpf_map_lookup_elem(&unwind_ranges, &j->ra_key) != NULL || jit_code(ra - 1);
}

// go_switch reads where the goroutine that a Go stack switch left stopped:
// g (at the thread pointer + its offset; on g0 here), g.m, m.curg and
// curg.sched, at the offsets packed in the rule (GO_*_SHIFT). It returns 0
// with sched's sp, pc and bp, or how the walk ends.
static __always_inline __u32 go_switch(__s32 packed, __u64 *sp, __u64 *pc, __u64 *bp)
{
	__u32 v = packed;
	__u64 curg_off = ((v >> GO_CURG_SHIFT) & 0xff) * 8;
	__u64 bp_off = ((v >> GO_GOBUF_BP_SHIFT) & 0xf) * 8;
	__u64 tls_off = ((v >> GO_TLS_G_SHIFT) & 0xf) * 8;
	__u64 m_off = ((v >> GO_G_M_SHIFT) & 0xf) * 8;
	__u64 sched_off = (v >> GO_G_SCHED_SHIFT) * 8;
	// Both callers walk the task running now, whose FS base is its own.
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 g = 0, m = 0, curg = 0, curg_m = 0, sched[2];
	if (bpf_probe_read_user(&g, sizeof(g), (void *)(task->thread.fsbase - tls_off)) ||
	    bpf_probe_read_user(&m, sizeof(m), (void *)(g + m_off)) ||
	    bpf_probe_read_user(&curg, sizeof(curg), (void *)(m + curg_off)))
		return UNWIND_END_READ_FAILED;
	if (!curg)
		return UNWIND_END_COMPLETE; // no goroutine: newstack descheduled it
	if (curg == g)
		return UNWIND_END_BAD_FRAME; // not on g0 after all
	if (bpf_probe_read_user(&curg_m, sizeof(curg_m), (void *)(curg + m_off)) ||
	    bpf_probe_read_user(sched, sizeof(sched), (void *)(curg + sched_off)) ||
	    bpf_probe_read_user(bp, sizeof(*bp), (void *)(curg + sched_off + bp_off)))
		return UNWIND_END_READ_FAILED;
	// The runtime's own profiler checks the same: a goroutine on this M,
	// stopped (systemstack clears sched.sp on its way back).
	if (curg_m != m || !sched[0])
		return UNWIND_END_BAD_FRAME;
	*sp = sched[0];
	*pc = sched[1];
	return 0;
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
	__u64 hash = st->hash;
	st->hash = hash_pc(hash, pc);

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
				if (!jit_code(lookup)) {
					st->status = UNWIND_END_NO_MAPPING;
					return 1;
				}
				// Into the range cache, and this frame again from
				// there: a path of its own through the rest of the
				// step would double the verifier's work.
				jit_range(&rc->ranges[rc->next_range++ & (WALK_RANGES - 1)]);
				st->frames = n;
				st->seg = seg;
				st->at = at;
				st->hash = hash;
				return 0;
			}
			r = &rc->ranges[rc->next_range++ & (WALK_RANGES - 1)];
			*r = *found;
		}
		kind = r->kind;
		if (kind == RANGE_NO_TABLE) {
			st->status = UNWIND_END_NO_TABLE;
			return 1;
		}
		if (kind != RANGE_FP && kind != RANGE_FP_LATE && kind != RANGE_FP_UNREAD) {
			__u64 rel = lookup - r->bias;
			struct unwind_rule *row = rel <= 0xffffffffULL ? find_rule(r, rel) : NULL;
			if (row && (row->kind & ((1 << RBP_KIND_SHIFT) - 1)) != CFA_GAP)
				rule = *row;
			else
				kind = RANGE_FP_GUESS; // no row: try its frame pointer
		}
		set->way[1] = set->way[0];
		set->way[0].pc = lookup;
		set->way[0].pid = st->pid;
		set->way[0].generation = st->generation;
		set->way[0].rule = rule;
		set->way[0].kind = kind;
	}
	if (kind == RANGE_FP_LATE) {
		struct jit_walk *j = jit_scratch();
		if (j)
			j->frames++;
		kind = RANGE_FP;
	} else if (kind == RANGE_FP_UNREAD) {
		struct jit_walk *j = jit_scratch();
		if (j)
			j->unread++;
		kind = RANGE_FP_GUESS;
	}

	__u64 cfa, ra = 0, bp = st->bp;
	if (kind == RANGE_FP || kind == RANGE_FP_GUESS) {
		if (st->bp == 0) {
			st->status = UNWIND_END_COMPLETE; // the outermost frame
			return 1;
		}
		// A frame pointer below the stack pointer, or a frame of more than
		// 8 MiB, is not one: code without them keeps other values in RBP.
		// Where there was no row, that ends the walk for the want of one.
		if (st->bp < st->sp || st->bp - st->sp > (8 << 20) || (kind == RANGE_FP_GUESS && (st->bp & 7))) {
			st->status = kind == RANGE_FP ? UNWIND_END_BAD_FRAME : UNWIND_END_NO_ROW;
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
		if (kind == RANGE_FP_GUESS && ra && !return_plausible(st->pid, ra)) {
			st->status = UNWIND_END_NO_ROW; // not a frame after all
			return 1;
		}
	} else {
		__u8 how = rule.kind, cfa_kind = how & ((1 << RBP_KIND_SHIFT) - 1);
		switch (cfa_kind) {
		case CFA_SP:
			cfa = st->sp + rule.cfa_offset;
			break;
		case CFA_FP:
		case CFA_FP_SWITCHED:
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
		case CFA_GO_CGO: {
			__u64 saved[2], hi = 0;
			if (bpf_probe_read_user(saved, sizeof(saved), (void *)st->sp)) {
				st->status = UNWIND_END_READ_FAILED;
				return 1;
			}
			if (saved[1]) {
				// g.stack.hi: g starts with its stack bounds.
				if (bpf_probe_read_user(&hi, sizeof(hi), (void *)(saved[1] + 8))) {
					st->status = UNWIND_END_READ_FAILED;
					return 1;
				}
				saved[0] = hi - saved[0];
			}
			cfa = saved[0] + rule.cfa_offset; // past what it pushed there
			break;
		}
		case CFA_GO_SYSTEMSTACK:
		case CFA_GO_MORESTACK: {
			__u64 gsp = 0, gpc = 0, gbp = 0;
			__u32 end = go_switch(rule.cfa_offset, &gsp, &gpc, &gbp);
			if (end) {
				st->status = end;
				return 1;
			}
			if (cfa_kind == CFA_GO_MORESTACK) {
				// The function whose prologue called morestack is next.
				if (!gpc) {
					st->status = UNWIND_END_BAD_FRAME;
					return 1;
				}
				st->pc = gpc;
				st->sp = gsp;
				st->bp = gbp;
				return 0;
			}
			// systemstack's own frame, on the goroutine's stack.
			cfa = gsp + (rule.cfa_offset & 0xff);
			break;
		}
		case CFA_SIGFRAME: {
			// uc_mcontext is 40 bytes into the ucontext; rbp, rsp and rip
			// are 80, 120 and 128 bytes into it. Read straight into the
			// walk's state: the stack has no room left.
			__u64 mc = st->sp + rule.cfa_offset + 40;
			if (bpf_probe_read_user(&st->pc, sizeof(st->pc), (void *)(mc + 128)) ||
			    bpf_probe_read_user(&st->sp, sizeof(st->sp), (void *)(mc + 120)) ||
			    bpf_probe_read_user(&st->bp, sizeof(st->bp), (void *)(mc + 80))) {
				st->status = UNWIND_END_READ_FAILED;
				return 1;
			}
			// The interrupted pc is no return address: one past it is kept,
			// so that the lookup (and the naming) at pc - 1 finds it.
			st->pc += 1;
			return 0;
		}
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
		// Back on the goroutine's stack, which may lie below g0's.
		if (cfa <= st->sp && cfa_kind != CFA_GO_CGO && cfa_kind != CFA_GO_SYSTEMSTACK && cfa_kind != CFA_FP_SWITCHED) {
			st->status = UNWIND_END_BAD_FRAME;
			return 1;
		}
		if ((how >> RBP_KIND_SHIFT) == RBP_AT_CFA && rule.rbp_offset == -2) {
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
		switch (how >> RBP_KIND_SHIFT) {
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


// ranges_owner returns the process whose ranges walk the current task's
// stack: its own, when installed for its image; else its parent's, when
// it is a child that has not exec'd since the fork (a shell's subshell, a
// server's worker), whose address space is laid out as the parent's; else
// 0. A global function: the verifier checks it once, not once for each
// way the walk below is reached.
__attribute__((noinline)) int ranges_owner(__u32 pid, __u32 exec_seq)
{
	struct unwind_proc *up = bpf_map_lookup_elem(&unwind_procs, &pid);
	if (up)
		return up->exec_seq == exec_seq ? pid : 0;
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	if (ppid == pid)
		return 0;
	up = bpf_map_lookup_elem(&unwind_procs, &ppid);
	struct proc_state *parent = bpf_map_lookup_elem(&procs, &ppid);
	if (!up || !parent || up->exec_seq != parent->exec_seq)
		return 0;
	// Both randomised at exec: equal only for a fork of the same image.
	if (BPF_CORE_READ(task, mm, start_code) != BPF_CORE_READ(task, real_parent, mm, start_code) ||
	    BPF_CORE_READ(task, mm, mmap_base) != BPF_CORE_READ(task, real_parent, mm, mmap_base))
		return 0;
	return ppid;
}

// unwind_user walks the user stack with Ember's unwinder into scratch,
// from the user registers given (a sample's, or those saved at entry to
// the kernel). It returns NULL when the process has no ranges installed
// for this image.
static __always_inline struct stack *unwind_user_stack(__u32 buffer, __u64 pc, __u64 sp, __u64 bp,
						       __u32 pid, __u32 exec_seq)
{
	// Read before the maps it vouches for: a change after this read makes
	// the next walk drop what this one keeps.
	__u32 ranges_gen = ranges_generation + installs_generation + 1;
	__u32 zero = 0;
	struct scratch *scr = bpf_map_lookup_elem(&scratch, &zero);
	if (!scr)
		return NULL;
	struct user_walk *st = &scr->user;
	__u32 slot = pid & (RANGE_CACHE_SLOTS - 1);
	struct range_cache *rc = &scr->ranges[slot];
	if (rc->generation != ranges_gen || rc->pid != pid || rc->exec_seq != exec_seq) {
		// Installed for this image? (A cached slot says so without a lookup.)
		__u32 owner = ranges_owner(pid, exec_seq);
		if (!owner)
			return NULL;
		rc->owner = owner;
		rc->pid = pid;
		rc->exec_seq = exec_seq;
		rc->generation = ranges_gen;
		rc->next_range = 0;
		for (int i = 0; i < WALK_RANGES; i++)
			rc->ranges[i].limit = 0;
	}
	st->pc = pc;
	st->sp = sp;
	st->bp = bp;
	st->hash = HASH_BASIS;
	st->pid = rc->owner;
	st->generation = ranges_gen;
	st->frames = 0;
	st->cache = slot;
	st->seg = 0;
	st->at = 0;
	st->status = UNWIND_END_DEPTH;
	// No path without it: the verifier walks the loops below once for each
	// way of reaching them.
	struct jit_walk *jit = jit_scratch();
	if (!jit)
		return NULL;
	jit->looked = 0;
	jit->start = 0;
	jit->end = 0;
	jit->frames = 0;
	jit->busy = 0;
	jit->unread = 0;
	bpf_loop(MAX_USER_DEPTH + 1, unwind_step, NULL, 0);
	// Both callers walk the task running now: a sample's, or the one a
	// context switch takes off the CPU.
	python_walk(bpf_get_current_task_btf(), pid, exec_seq); // appends the Python frames, if any
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
	add_stat(buffer, STAT_UNWIND_JIT_FRAMES, jit->frames);
	add_stat(buffer, STAT_UNWIND_JIT_BUSY, jit->busy);
	if (end == UNWIND_END_NO_MAPPING || jit->looked || jit->frames || jit->unread) {
		// A pc outside the known ranges, JIT code or not, or in a file the
		// sampler mapped before user space had its table: ask user space
		// to read the mappings again, at most four times a second (V8
		// maps JIT pages one after another as it warms up; user space
		// backs off where reads find nothing new).
		__u64 now = bpf_ktime_get_ns();
		struct unwind_proc *up = bpf_map_lookup_elem(&unwind_procs, &pid);
		if (up && now - up->miss_reported_ns > 250000000ULL) {
			up->miss_reported_ns = now;
			notify(buffer, EVENT_NEEDS_MAPPINGS, pid, exec_seq, 0, false);
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

#endif // EMBER_SAMPLER_UNWIND_H
