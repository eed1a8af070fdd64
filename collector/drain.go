package collector

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/bpf"
)

// Mirrors of STACK_ID_KERNEL_THREAD and STACK_ID_EXITING in sampler.bpf.c.
const (
	stackIDKernelThread = -1
	stackIDExiting      = -2
)

// inFlightGrace is how long a sampling program that read the old buffer index
// may still be writing after the flip; programs run for microseconds.
const inFlightGrace = 2 * time.Millisecond

// Drain switches the sampler to the other set of maps, reads everything the
// previous set collected since the last drain, and empties it. Call it
// regularly (every second or so): stack maps fill up with distinct stacks.
// Drain and Close must not be called concurrently.
func (c *Collector) Drain() (*Batch, error) {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()

	prev := c.active
	if err := c.objs.ActiveBuffer.Set(prev ^ 1); err != nil {
		return nil, fmt.Errorf("switch sampler buffers: %w", err)
	}
	c.active = prev ^ 1
	end := time.Now()
	time.Sleep(inFlightGrace)

	counts, stacks := c.objs.Counts0, c.objs.Stacks0
	if prev == 1 {
		counts, stacks = c.objs.Counts1, c.objs.Stacks1
	}
	batch := &Batch{
		Start:       c.lastDrain,
		End:         end,
		FrequencyHz: c.cfg.FrequencyHz,
		PeriodNanos: int64(time.Second) / int64(c.cfg.FrequencyHz),
	}
	c.lastDrain = end

	var err error
	if batch.Samples, err = c.readSamples(counts, stacks); err != nil {
		return nil, err
	}
	if err := c.readStats(prev, &batch.Stats); err != nil {
		return nil, err
	}
	for _, s := range batch.Samples {
		if s.KernelTruncated || s.UserTruncated {
			batch.Stats.Truncated += s.Count
		}
		if s.UserLost == LostDrained {
			batch.Stats.UserLost[LostDrained] += s.Count
		}
		if s.KernelLost == LostDrained {
			batch.Stats.KernelLost[LostDrained] += s.Count
		}
	}
	batch.Processes = c.tracker.processesFor(batch.Samples)
	c.tracker.advance()
	return batch, nil
}

func (c *Collector) readSamples(counts, stacks *ebpf.Map) ([]Sample, error) {
	var (
		key     bpf.SamplerSampleKey
		value   bpf.SamplerSampleValue
		keys    []bpf.SamplerSampleKey
		values  []bpf.SamplerSampleValue
		samples []Sample
	)
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

	frames := make(map[int32][]uint64)
	missing := make(map[int32]bool)
	stack := func(id int32) ([]uint64, bool) {
		if pcs, ok := frames[id]; ok {
			return pcs, true
		}
		if missing[id] {
			return nil, false
		}
		var raw [127]uint64
		if err := stacks.Lookup(uint32(id), &raw); err != nil {
			missing[id] = true
			return nil, false
		}
		n := len(raw)
		for n > 0 && raw[n-1] == 0 {
			n--
		}
		pcs := slices.Clone(raw[:n])
		frames[id] = pcs
		return pcs, true
	}

	for i, k := range keys {
		s := Sample{PID: k.Pid, TID: k.Tid, ExecSeq: k.ExecSeq, Comm: commString(values[i].Comm), Count: values[i].Count}
		switch id := k.KernelStackId; {
		case id >= 0:
			if pcs, ok := stack(id); ok {
				s.Kernel = pcs
				s.KernelTruncated = len(pcs) >= c.maxDepth
			} else {
				s.KernelLost = LostDrained
			}
		case id == -int32(unix.EFAULT): // sampled in user mode
		default:
			s.KernelLost = lossReason(id)
		}
		switch id := k.UserStackId; {
		case id >= 0:
			if pcs, ok := stack(id); ok {
				s.User = pcs
				s.UserTruncated = len(pcs) >= c.maxDepth
			} else {
				s.UserLost = LostDrained
			}
		case id == stackIDKernelThread:
			s.UserLost = LostKernelThread
		case id == stackIDExiting:
			s.UserLost = LostExiting
		default:
			s.UserLost = lossReason(id)
		}
		samples = append(samples, s)
	}
	if err := clearStacks(stacks, frames); err != nil {
		return nil, err
	}
	return samples, nil
}

func lossReason(stackID int32) LossReason {
	switch -stackID {
	case int32(unix.EEXIST):
		return LostCollision
	case int32(unix.ENOMEM):
		return LostMapFull
	}
	return LostOther
}

// clearStacks deletes the stacks read, then any left that no count refers to
// (their sample found the counts map full).
func clearStacks(stacks *ebpf.Map, read map[int32][]uint64) error {
	for id := range read {
		if err := stacks.Delete(uint32(id)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear stack %d: %w", id, err)
		}
	}
	var orphans []uint32
	var next uint32
	for err := stacks.NextKey(nil, &next); err == nil; err = stacks.NextKey(next, &next) {
		orphans = append(orphans, next)
	}
	for _, id := range orphans {
		if err := stacks.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear stack %d: %w", id, err)
		}
	}
	return nil
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
func (c *Collector) readStats(buffer uint32, st *Stats) error {
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
	st.UserLost = map[LossReason]uint64{
		LostCollision:    d(bpf.SamplerSamplerStatSTAT_USER_COLLISION),
		LostMapFull:      d(bpf.SamplerSamplerStatSTAT_USER_MAP_FULL),
		LostKernelThread: d(bpf.SamplerSamplerStatSTAT_USER_KERNEL_THREAD),
		LostExiting:      d(bpf.SamplerSamplerStatSTAT_USER_EXITING),
		LostOther:        d(bpf.SamplerSamplerStatSTAT_USER_OTHER),
	}
	st.KernelLost = map[LossReason]uint64{
		LostCollision: d(bpf.SamplerSamplerStatSTAT_KERNEL_COLLISION),
		LostMapFull:   d(bpf.SamplerSamplerStatSTAT_KERNEL_MAP_FULL),
		LostOther:     d(bpf.SamplerSamplerStatSTAT_KERNEL_OTHER),
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
