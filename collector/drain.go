package collector

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// The user_stack_err of tasks without a user stack, as sampler.bpf.c
// stores them: negated, as an errno is.
const (
	stackIDKernelThread = -int32(bpf.SamplerNoUserStackNO_USER_STACK_KERNEL_THREAD)
	stackIDExiting      = -int32(bpf.SamplerNoUserStackNO_USER_STACK_EXITING)
	stackIDExecve       = -int32(bpf.SamplerNoUserStackNO_USER_STACK_EXECVE)
)

// inFlightGrace is how long a sampling program that read the old buffer index
// may still be writing after the flip; programs run for microseconds.
const inFlightGrace = 2 * time.Millisecond

// Drain switches the sampler to the other set of maps, reads everything the
// previous set collected since the last drain, and empties it. Call it
// regularly (every second or so): stack maps fill up with distinct stacks.
// Drain and Close must not be called concurrently.
func (c *Collector) Drain() (*model.Batch, error) {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()

	// A new generation, not just the other buffer: the sampler's per-CPU
	// record of stacks it stored is only good within one generation.
	prevGen := c.generation
	if err := c.objs.ActiveGeneration.Set(prevGen + 1); err != nil {
		return nil, fmt.Errorf("switch sampler buffers: %w", err)
	}
	c.generation = prevGen + 1
	prev := prevGen & 1
	end := time.Now()
	if stopped := c.stopTime(); !stopped.IsZero() && stopped.Before(end) {
		end = stopped // nothing was sampled since
	}
	time.Sleep(inFlightGrace)

	counts, stacks := c.objs.Counts0, c.objs.Stacks0
	if prev == 1 {
		counts, stacks = c.objs.Counts1, c.objs.Stacks1
	}
	batch := &model.Batch{
		Start:       c.lastDrain,
		End:         end,
		FrequencyHz: c.cfg.FrequencyHz,
		PeriodNanos: int64(time.Second) / int64(c.cfg.FrequencyHz),
	}
	c.lastDrain = end

	stored, err := readStacks(stacks)
	if err != nil {
		return nil, err
	}
	if batch.Samples, err = c.readSamples(counts, stored); err != nil {
		return nil, err
	}
	if err := c.readStats(prev, &batch.Stats); err != nil {
		return nil, err
	}
	if c.cfg.OffCPU {
		offcpu := c.objs.Offcpu0
		if prev == 1 {
			offcpu = c.objs.Offcpu1
		}
		more, gone, err := c.readOffCPU(offcpu, stored)
		if err != nil {
			return nil, err
		}
		batch.Samples = append(batch.Samples, more...)
		batch.ValueTypes = offCPUValueTypes
		if err := c.rememberStacks(stored); err != nil {
			return nil, err
		}
		if err := c.readOffCPUStats(prev, &batch.Stats.OffCPU); err != nil {
			return nil, err
		}
		batch.Stats.OffCPU.StacksGone = gone
	}
	for _, s := range batch.Samples {
		if s.KernelTruncated || s.UserTruncated {
			batch.Stats.Truncated += s.Count
		}
		if s.UserLost == model.LostDrained {
			batch.Stats.UserLost[model.LostDrained] += s.Count
		}
		if s.KernelLost == model.LostDrained {
			batch.Stats.KernelLost[model.LostDrained] += s.Count
		}
	}
	// Before the processes are looked up: frame words are no addresses.
	for _, in := range c.interpreters {
		in.name(batch.Samples, &batch.Stats)
	}
	reads := c.images.total()
	batch.Stats.ImageReads = reads.Minus(c.imageReadsBefore)
	c.imageReadsBefore = reads
	var hold *fileHold
	batch.Processes, hold = c.tracker.processesFor(batch.Samples, c.cfg.HoldBatchFiles)
	if hold != nil {
		batch.HoldUntilRelease(hold)
	}
	c.tracker.advance()
	if c.unwind != nil {
		c.unwind.retain(c.tracker.alive)
		for _, key := range c.unwind.dueRefreshes() {
			c.images.pushSampled(imageRead{key: key})
		}
		batch.Stats.Unwind.Tables = c.unwind.advance()
	}
	return batch, nil
}

func (c *Collector) readSamples(counts *ebpf.Map, stored map[uint64]storedStack) ([]model.Sample, error) {
	var (
		key     bpf.SamplerSampleKey
		value   bpf.SamplerSampleValue
		keys    []bpf.SamplerSampleKey
		values  []bpf.SamplerSampleValue
		samples []model.Sample
	)
	keys, values, err := takeAll(counts, keys, values)
	if errors.Is(err, ebpf.ErrNotSupported) {
		it := counts.Iterate()
		for it.Next(&key, &value) {
			keys = append(keys, key)
			values = append(values, value)
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read sample counts: %w", err)
		}
		if err := deleteKeys(counts, keys); err != nil {
			return nil, fmt.Errorf("clear sample counts: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read sample counts: %w", err)
	}
	for i, k := range keys {
		s := c.sampleOf(k, stored)
		s.Comm = commString(values[i].Comm)
		s.Count = values[i].Count
		samples = append(samples, s)
	}
	return samples, nil
}

// sampleOf is the sample a key names, with its stacks from stored.
func (c *Collector) sampleOf(k bpf.SamplerSampleKey, stored map[uint64]storedStack) model.Sample {
	s := model.Sample{PID: k.Pid, TID: k.Tid, ExecSeq: k.ExecSeq}
	switch err := k.KernelStackErr; {
	case err == 0:
		if st, ok := stored[k.KernelStackHash]; ok {
			s.Kernel = st.pcs
			s.KernelTruncated = len(st.pcs) >= c.maxDepth
		} else {
			s.KernelLost = model.LostDrained
		}
	case err == -int32(unix.EFAULT): // sampled in user mode
	default:
		s.KernelLost = lossReason(err)
	}
	switch err := k.UserStackErr; {
	case err == 0:
		st, ok := userStack(stored, k.UserStackHash)
		if !ok {
			s.UserLost = model.LostDrained
			break
		}
		s.User = st.pcs
		if k.UserStackSource == uint32(bpf.SamplerUserStackSourceUSER_STACK_UNWOUND) {
			s.UserSource = model.SourceUnwinder
			s.UserEnd = st.end
			s.UserTruncated = st.end != model.UnwindComplete
		} else {
			// Cut where the walk left executable memory, or at the limit.
			s.UserEnd = st.end
			s.UserTruncated = len(st.pcs) >= c.maxDepth || st.end == model.UnwindNoMapping
		}
	case err == stackIDKernelThread:
		s.UserLost = model.LostKernelThread
	case err == stackIDExiting:
		s.UserLost = model.LostExiting
	case err == stackIDExecve:
		s.UserLost = model.LostExecve
	default:
		s.UserLost = lossReason(err)
	}
	return s
}

type storedStack struct {
	pcs  []uint64
	end  model.UnwindEnd
	next uint64 // hash of the segment with the outer frames; 0: none
}

// userSegments is the most segments a stack is stored in.
const userSegments = int(bpf.SamplerStackLayoutUSER_SEGMENTS)

// userStack joins a stack's segments, from the one stored under hash, and
// keeps the joined stack there. A
// segment missing from the drain loses the stack, as a missing first one
// does: the program stores them in the same buffer, so that would be a bug.
func userStack(stored map[uint64]storedStack, hash uint64) (storedStack, bool) {
	st, ok := stored[hash]
	if !ok || st.next == 0 {
		return st, ok
	}
	out := storedStack{pcs: slices.Clone(st.pcs), end: st.end}
	for range userSegments - 1 {
		if st.next == 0 {
			break
		}
		if st, ok = stored[st.next]; !ok {
			return storedStack{}, false
		}
		out.pcs = append(out.pcs, st.pcs...)
	}
	stored[hash] = out // joined once for every sample of the stack
	return out, true
}

// readStacks reads every stack of a drained buffer by hash and empties it;
// stacks whose sample found the counts map full go too.
func readStacks(stacks *ebpf.Map) (map[uint64]storedStack, error) {
	out := make(map[uint64]storedStack)
	var (
		hash uint64
		raw  bpf.SamplerStack
		keys []uint64
	)
	hashes, raws, err := takeAll[uint64, bpf.SamplerStack](stacks, nil, nil)
	if err == nil {
		for i, raw := range raws {
			out[hashes[i]] = newStoredStack(&raw)
		}
		return out, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("read stacks: %w", err)
	}
	it := stacks.Iterate()
	for it.Next(&hash, &raw) {
		out[hash] = newStoredStack(&raw)
		keys = append(keys, hash)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read stacks: %w", err)
	}
	if len(keys) == 0 {
		return out, nil
	}
	if _, err := stacks.BatchDelete(keys, nil); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return nil, fmt.Errorf("clear stacks: %w", err)
		}
		for _, k := range keys {
			if err := stacks.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil, fmt.Errorf("clear stack %#x: %w", k, err)
			}
		}
	}
	return out, nil
}

func newStoredStack(raw *bpf.SamplerStack) storedStack {
	n := min(int(raw.Len), len(raw.Pcs))
	end := model.UnwindEnd(raw.Status)
	if !end.Valid() {
		end = model.UnwindUnknown
	}
	return storedStack{pcs: slices.Clone(raw.Pcs[:n]), end: end, next: raw.Next}
}

// takeBatch is how many entries takeAll moves per system call.
const takeBatch = 256

// takeAll appends every entry of the hash map m to keys and values and
// deletes them, takeBatch at a time: iterating by key took two system
// calls an entry (next key, lookup) and the deletes on top, which was most
// of a drain's cost on a host with many distinct stacks. It returns an
// error wrapping ebpf.ErrNotSupported, with nothing taken, where the
// kernel has no batch operations.
func takeAll[K, V any](m *ebpf.Map, keys []K, values []V) ([]K, []V, error) {
	kbuf, vbuf := make([]K, takeBatch), make([]V, takeBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookupAndDelete(&cursor, kbuf, vbuf, nil)
		keys = append(keys, kbuf[:n]...)
		values = append(values, vbuf[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, values, nil // the last batch
		}
		if err != nil {
			return keys, values, err
		}
	}
}

func lossReason(err int32) model.LossReason {
	switch -err {
	case int32(unix.EEXIST):
		return model.LostCollision
	case int32(unix.ENOMEM):
		return model.LostMapFull
	}
	return model.LostOther
}

func deleteKeys(m *ebpf.Map, keys []bpf.SamplerSampleKey) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := m.BatchDelete(keys, nil); err == nil {
		return nil
	} else if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// readStats sums and zeroes the per-CPU counters of the drained buffer.
func (c *Collector) readStats(buffer uint32, st *model.Stats) error {
	var now [bpf.SamplerSamplerStatSTAT_MAX]uint64
	var perCPU []uint64
	zeros := make([]uint64, c.possibleCPUs)
	for i := range now {
		key := buffer*uint32(bpf.SamplerSamplerStatSTAT_MAX) + uint32(i)
		if err := c.objs.Stats.Lookup(key, &perCPU); err != nil {
			return fmt.Errorf("read sampler stats: %w", err)
		}
		for _, v := range perCPU {
			now[i] += v
		}
		if err := c.objs.Stats.Put(key, zeros); err != nil {
			return fmt.Errorf("reset sampler stats: %w", err)
		}
	}
	d := func(s bpf.SamplerSamplerStat) uint64 { return now[s] }
	st.Taken = d(bpf.SamplerSamplerStatSTAT_TAKEN)
	st.Idle = d(bpf.SamplerSamplerStatSTAT_IDLE)
	st.Filtered = d(bpf.SamplerSamplerStatSTAT_FILTERED)
	st.Recorded = d(bpf.SamplerSamplerStatSTAT_RECORDED)
	st.CountMapFull = d(bpf.SamplerSamplerStatSTAT_COUNT_MAP_FULL)
	st.EventsLost = d(bpf.SamplerSamplerStatSTAT_EVENTS_LOST)
	st.ForksUnfollowed = d(bpf.SamplerSamplerStatSTAT_FORK_UNFOLLOWED)
	st.Unwind.Frames = d(bpf.SamplerSamplerStatSTAT_UNWIND_FRAMES)
	st.Unwind.KernelFP = d(bpf.SamplerSamplerStatSTAT_USER_KERNEL_FP)
	st.Unwind.SamplerInstalls = d(bpf.SamplerSamplerStatSTAT_IMAGES_INSTALLED)
	st.Unwind.SamplerRangeErrors = d(bpf.SamplerSamplerStatSTAT_IMAGE_RANGES_FAILED)
	st.Unwind.LateJITFrames = d(bpf.SamplerSamplerStatSTAT_UNWIND_JIT_FRAMES)
	st.Unwind.LateJITBusy = d(bpf.SamplerSamplerStatSTAT_UNWIND_JIT_BUSY)
	st.Unwind.Ends = map[model.UnwindEnd]uint64{}
	for e := model.UnwindComplete; e.Valid(); e++ {
		if n := now[int(bpf.SamplerSamplerStatSTAT_UNWIND_END_BASE)+int(e)]; n > 0 {
			st.Unwind.Ends[e] = n
		}
	}
	st.UserLost = map[model.LossReason]uint64{
		model.LostCollision:    d(bpf.SamplerSamplerStatSTAT_USER_COLLISION),
		model.LostMapFull:      d(bpf.SamplerSamplerStatSTAT_USER_MAP_FULL),
		model.LostKernelThread: d(bpf.SamplerSamplerStatSTAT_USER_KERNEL_THREAD),
		model.LostExiting:      d(bpf.SamplerSamplerStatSTAT_USER_EXITING),
		model.LostExecve:       d(bpf.SamplerSamplerStatSTAT_USER_EXECVE),
		model.LostOther:        d(bpf.SamplerSamplerStatSTAT_USER_OTHER),
	}
	st.KernelLost = map[model.LossReason]uint64{
		model.LostCollision: d(bpf.SamplerSamplerStatSTAT_KERNEL_COLLISION),
		model.LostMapFull:   d(bpf.SamplerSamplerStatSTAT_KERNEL_MAP_FULL),
		model.LostOther:     d(bpf.SamplerSamplerStatSTAT_KERNEL_OTHER),
	}
	return nil
}

func commString(raw [16]int8) string {
	b := make([]byte, 0, len(raw))
	for _, ch := range raw {
		if ch == 0 {
			break
		}
		b = append(b, byte(ch))
	}
	return string(b)
}
