package collector

// The table space is one run of words that tables are carved out of; the
// allocator only does the arithmetic, so that the chunks behind it can be
// created and dropped by whoever owns the BPF maps.

// shard is a run of words in the table space.
type shard struct{ start, count uint32 }

// shardAllocator hands out runs of the table space, first fit, merging
// freed neighbours.
type shardAllocator struct {
	free []shard // sorted by start, never adjacent
}

func (a *shardAllocator) take(n uint32) (shard, bool) {
	for i, f := range a.free {
		if f.count < n {
			continue
		}
		s := shard{f.start, n}
		if f.count == n {
			a.free = append(a.free[:i], a.free[i+1:]...)
		} else {
			a.free[i] = shard{f.start + n, f.count - n}
		}
		return s, true
	}
	return shard{}, false
}

// largest is the longest free run.
func (a *shardAllocator) largest() uint32 {
	var n uint32
	for _, f := range a.free {
		n = max(n, f.count)
	}
	return n
}

func (a *shardAllocator) release(s shard) {
	i := 0
	for i < len(a.free) && a.free[i].start < s.start {
		i++
	}
	a.free = append(a.free, shard{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = s
	// Merge with the next, then the previous.
	if i+1 < len(a.free) && a.free[i].start+a.free[i].count == a.free[i+1].start {
		a.free[i].count += a.free[i+1].count
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].start+a.free[i-1].count == a.free[i].start {
		a.free[i-1].count += a.free[i].count
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
}
