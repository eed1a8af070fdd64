// SPDX-License-Identifier: GPL-2.0
// Stacks as stored: hashed, in segments, in the current buffer's stacks
// map, with a per-CPU memory of recent stores; and the sample's registers.
#ifndef EMBER_SAMPLER_STACKS_H
#define EMBER_SAMPLER_STACKS_H

#include "maps.h"

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

#endif // EMBER_SAMPLER_STACKS_H
