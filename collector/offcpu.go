package collector

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/schema"
)

// stackIDPreempted is both stack errors of a wait that began with a
// preemption: its stacks are not taken (bpf/sampler/offcpu.h).
const stackIDPreempted = -int32(bpf.SamplerNoUserStackNO_USER_STACK_PREEMPTED)

// DefaultOffCPUMinWait is the shortest wait recorded by default: shorter
// ones are counted in the stats only. A pipe ping-pong's waits are 5-20 µs.
const DefaultOffCPUMinWait = 5 * time.Microsecond

// ThreadState is model.ThreadState as the BPF side numbers it, plus one.
var (
	_ = [1]struct{}{}[model.ThreadState(bpf.SamplerOffcpuStateOFFCPU_RUNNABLE+1)-model.StateRunnable]
	_ = [1]struct{}{}[model.ThreadState(bpf.SamplerOffcpuStateOFFCPU_SLEEPING+1)-model.StateSleeping]
	_ = [1]struct{}{}[model.ThreadState(bpf.SamplerOffcpuStateOFFCPU_DISK+1)-model.StateDisk]
	_ = [1]struct{}{}[model.ThreadState(bpf.SamplerOffcpuStateOFFCPU_OTHER+1)-model.StateOther]
)

// offCPUValueTypes are the values of an off-CPU sample, in Sample.Values.
var offCPUValueTypes = func() []model.ValueType {
	var out []model.ValueType
	for _, t := range schema.OffCPUSampleTypes {
		out = append(out, model.ValueType{Type: t.Type, Unit: t.Unit})
	}
	return out
}()

func (c *Config) offCPUDefaults() {
	if c.OffCPUMinWait == 0 {
		c.OffCPUMinWait = DefaultOffCPUMinWait
	}
	if c.OffCPUThreads == 0 {
		c.OffCPUThreads = 32768
	}
}

func (c *Config) validateOffCPU() error {
	if c.NoCPU && !c.OffCPU {
		return &ConfigError{"type", "neither CPU nor off-CPU time to record"}
	}
	if c.OffCPUMinWait < 0 || c.OffCPUMinWait > time.Second {
		return &ConfigError{"offcpu-min-wait", fmt.Sprintf("%s is out of range 0..1s", c.OffCPUMinWait)}
	}
	if c.OffCPUThreads < 64 || c.OffCPUThreads > 1<<22 {
		return &ConfigError{"offcpu-threads", fmt.Sprintf("%d is out of range 64..4194304", c.OffCPUThreads)}
	}
	return nil
}

// loadOffCPU sizes the off-CPU maps and sets its settings in the spec.
func (c *Collector) loadOffCPU(spec *ebpf.CollectionSpec) error {
	for _, name := range []string{"offcpu_0", "offcpu_1"} {
		spec.Maps[name].MaxEntries = c.cfg.CountMapEntries
	}
	threads := c.cfg.OffCPUThreads
	if !c.cfg.OffCPU {
		threads = 1 // not attached: no need for the memory
		for _, name := range []string{"offcpu_0", "offcpu_1"} {
			spec.Maps[name].MaxEntries = 1 // drained, always empty: 4.5 MiB saved
		}
		// Nor for its code: with the unwinder and the Python walk in it,
		// the verifier took 3 s of a 4 s start to check it.
		spec.Programs["on_switch"].Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	}
	spec.Maps["offcpu_threads"].MaxEntries = threads
	if err := spec.Variables["offcpu_min_wait_ns"].Set(uint64(c.cfg.OffCPUMinWait)); err != nil {
		return fmt.Errorf("set offcpu_min_wait_ns: %w", err)
	}
	if err := spec.Variables["offcpu_include_idle"].Set(c.cfg.OffCPUIncludeIdle); err != nil {
		return fmt.Errorf("set offcpu_include_idle: %w", err)
	}
	return nil
}

// attachOffCPU starts tracking context switches.
func (c *Collector) attachOffCPU() error {
	l, err := link.AttachTracing(link.TracingOptions{Program: c.objs.OnSwitch, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("attach to tp_btf/sched_switch: %w", err)
	}
	c.offCPULink = l
	c.stacks = newStackMemory()
	return nil
}

// readOffCPU drains the off-CPU counts of a buffer into samples, with
// their stacks from stored or, for waits that began before an earlier
// drain, from the stacks the collector remembers.
// It also returns how many waits found a stack gone.
func (c *Collector) readOffCPU(counts *ebpf.Map, stored map[uint64]storedStack) ([]model.Sample, uint64, error) {
	keys, values, err := takeAll[bpf.SamplerOffcpuKey, bpf.SamplerOffcpuValue](counts, nil, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("read off-CPU counts: %w", err)
	}
	var gone uint64
	samples := make([]model.Sample, 0, len(keys))
	for i, k := range keys {
		if k.Sample.KernelStackErr == 0 {
			c.stacks.fill(stored, k.Sample.KernelStackHash)
		}
		if k.Sample.UserStackErr == 0 {
			c.stacks.fill(stored, k.Sample.UserStackHash)
		}
		s := c.sampleOf(k.Sample, stored)
		if k.Sample.UserStackErr == stackIDPreempted {
			s.KernelLost, s.UserLost = model.LostNone, model.LostPreempted
		}
		s.Comm = commString(values[i].Comm)
		s.State = model.ThreadState(k.State + 1)
		s.Values = []int64{int64(values[i].Nanos), int64(values[i].Waits)}
		if s.UserLost == model.LostDrained || s.KernelLost == model.LostDrained {
			gone += values[i].Waits
		}
		samples = append(samples, s)
	}
	return samples, gone, nil
}

// rememberStacks keeps, past this drain, the stacks that threads off the
// CPU or likely to leave from the same place will name: each thread's
// last stacks, and this drain's for one drain more.
func (c *Collector) rememberStacks(stored map[uint64]storedStack) error {
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]uint32, takeBatch)
		vals   = make([]bpf.SamplerOffcpuThread, takeBatch)
		named  []uint64
	)
	for {
		n, err := c.objs.OffcpuThreads.BatchLookup(&cursor, keys, vals, nil)
		for _, th := range vals[:n] {
			if th.Key.KernelStackErr == 0 {
				named = append(named, th.Key.KernelStackHash)
			}
			if th.Key.UserStackErr == 0 {
				named = append(named, th.Key.UserStackHash)
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("read off-CPU threads: %w", err)
		}
	}
	c.stacks.advance(stored, named)
	return nil
}

// readOffCPUStats sums and zeroes the off-CPU counters of a buffer.
func (c *Collector) readOffCPUStats(buffer uint32, st *model.OffCPUStats) error {
	var now [bpf.SamplerOffcpuStatOFFCPU_STAT_MAX]uint64
	var perCPU []uint64
	zeros := make([]uint64, c.possibleCPUs)
	for i := range now {
		key := buffer*uint32(bpf.SamplerOffcpuStatOFFCPU_STAT_MAX) + uint32(i)
		if err := c.objs.OffcpuStats.Lookup(key, &perCPU); err != nil {
			return fmt.Errorf("read off-CPU stats: %w", err)
		}
		for _, v := range perCPU {
			now[i] += v
		}
		if err := c.objs.OffcpuStats.Put(key, zeros); err != nil {
			return fmt.Errorf("reset off-CPU stats: %w", err)
		}
	}
	*st = model.OffCPUStats{
		Left:             now[bpf.SamplerOffcpuStatOFFCPU_STAT_LEFT],
		Arrived:          now[bpf.SamplerOffcpuStatOFFCPU_STAT_ARRIVED],
		Recorded:         now[bpf.SamplerOffcpuStatOFFCPU_STAT_RECORDED],
		Short:            now[bpf.SamplerOffcpuStatOFFCPU_STAT_SHORT],
		ShortNanos:       now[bpf.SamplerOffcpuStatOFFCPU_STAT_SHORT_NS],
		CountMapFull:     now[bpf.SamplerOffcpuStatOFFCPU_STAT_COUNT_MAP_FULL],
		Missed:           now[bpf.SamplerOffcpuStatOFFCPU_STAT_MISSED],
		Filtered:         now[bpf.SamplerOffcpuStatOFFCPU_STAT_FILTERED],
		Idle:             now[bpf.SamplerOffcpuStatOFFCPU_STAT_IDLE],
		Reused:           now[bpf.SamplerOffcpuStatOFFCPU_STAT_REUSED],
		Walked:           now[bpf.SamplerOffcpuStatOFFCPU_STAT_WALKED],
		UserLost:         now[bpf.SamplerOffcpuStatOFFCPU_STAT_USER_LOST],
		KernelLost:       now[bpf.SamplerOffcpuStatOFFCPU_STAT_KERNEL_LOST],
		Preempted:        now[bpf.SamplerOffcpuStatOFFCPU_STAT_PREEMPTED],
		StacksRemembered: uint64(len(c.stacks.byHash)),
	}
	return nil
}

// stackMemory keeps stacks past the drain that read them. A thread's
// stacks are stored once, in the buffer of the moment it left the CPU,
// and named again by waits that end in later drains: by every wait that
// spans a drain, and by later waits from the same place, which reuse them.
type stackMemory struct {
	byHash map[uint64]rememberedStack
	drain  uint64
}

type rememberedStack struct {
	stack storedStack
	drain uint64 // the last drain that needed it
}

func newStackMemory() *stackMemory {
	return &stackMemory{byHash: make(map[uint64]rememberedStack)}
}

// fill puts the stack under hash, and the segments it names, into stored
// where stored lacks them.
func (m *stackMemory) fill(stored map[uint64]storedStack, hash uint64) {
	for range userSegments {
		if hash == 0 {
			return
		}
		st, ok := stored[hash]
		if !ok {
			r, ok := m.byHash[hash]
			if !ok {
				return
			}
			st = r.stack
			stored[hash] = st
		}
		hash = st.next
	}
}

// advance takes a drain's stacks and keeps those still named, with their
// segments: by threads (named), or read in this drain or the one before.
func (m *stackMemory) advance(stored map[uint64]storedStack, named []uint64) {
	m.drain++
	for h, st := range stored {
		m.byHash[h] = rememberedStack{stack: st, drain: m.drain}
	}
	for _, h := range named {
		for range userSegments {
			r, ok := m.byHash[h]
			if !ok {
				break
			}
			r.drain = m.drain
			m.byHash[h] = r
			if h = r.stack.next; h == 0 {
				break
			}
		}
	}
	for h, r := range m.byHash {
		if r.drain+1 < m.drain {
			delete(m.byHash, h)
		}
	}
}
