// Command bpffloor measures what the cheapest BPF programs cost per run on
// this machine, sampled the way Ember's sampler is: attached to a cpu-clock
// perf event on every CPU at the same rate. By default three run: one
// returns at once, one bumps a per-CPU counter (one map access), one runs
// 4 KiB of straight-line code. Run beside `ember record`, they show how much
// of a sample's cost any program pays there (kernel BPF stats; needs
// kernel.bpf_stats_enabled=1 and root). -probes adds programs that each do
// one kind of thing the sampler does (loads from pages, a hash lookup, reads
// of the user stack, clock reads); -only runs one program alone, which is
// how they are compared: programs on the same CPU fire in the same timer
// interrupts, and the first pays for what the others then find warm.
//
//	go run ./bench/bpffloor -hz 99 -for 15s
//	go run ./bench/bpffloor -probes -only floor_user_read_1 -for 8s
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

func main() {
	hz := flag.Int("hz", 99, "sampling rate")
	span := flag.Duration("for", 15*time.Second, "how long to measure")
	probes := flag.Bool("probes", false, "add the programs that each do one thing the sampler does")
	only := flag.String("only", "", "run only the program of this name")
	flag.Parse()
	if err := run(*hz, *span, *probes, *only); err != nil {
		slog.Error("bpffloor", "err", err)
		os.Exit(1)
	}
}

type program struct {
	name  string
	insns asm.Instructions
}

// builder makes the programs and owns the maps they use.
type builder struct {
	progs []program
	maps  []*ebpf.Map
}

func (b *builder) add(name string, insns ...asm.Instruction) {
	b.progs = append(b.progs, program{name, insns})
}

func (b *builder) newMap(spec *ebpf.MapSpec) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("map for the floor programs: %w", err)
	}
	b.maps = append(b.maps, m)
	return m, nil
}

func (b *builder) close() {
	for _, m := range b.maps {
		m.Close()
	}
}

// lookupZero calls bpf_map_lookup_elem(m, &0), leaving the value in R0.
func lookupZero(m *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
	}
}

func (b *builder) reference() error {
	b.add("floor_return", asm.Mov.Imm(asm.R0, 0), asm.Return())
	counter, err := b.newMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return err
	}
	count := append(lookupZero(counter),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return())
	b.add("floor_count", count...)
	// 4 KiB of straight-line code once jitted (an x86 add is 4 bytes): what
	// code that is cold at every sample costs.
	straight := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for range 1024 {
		straight = append(straight, asm.Add.Imm(asm.R0, 1))
	}
	b.add("floor_4k_code", append(straight, asm.Mov.Imm(asm.R0, 0), asm.Return())...)
	return nil
}

func (b *builder) probes() error {
	// Seven loads from seven cache lines of one page, from seven pages the
	// kernel maps with 4 KiB pages (an array map over 32 KiB is vmalloc'd),
	// and from seven pages of a 28 KiB map it kmallocs (the direct map, 2 MiB
	// pages): what a page costs a sample beyond a cache line.
	for _, v := range []struct {
		name            string
		valueSize, step uint32
	}{{"floor_7_lines", 4096, 64}, {"floor_7_pages_4k", 256 << 10, 4096}, {"floor_7_pages_2m", 28 << 10, 4096}} {
		m, err := b.newMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: v.valueSize, MaxEntries: 1})
		if err != nil {
			return err
		}
		insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
		for k := range uint32(7) {
			insns = append(insns,
				asm.LoadMapValue(asm.R1, m.FD(), k*v.step),
				asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),
				asm.Add.Reg(asm.R0, asm.R2))
		}
		b.add(v.name, append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())...)
	}
	// A hash map lookup by the current tgid, as the sampler's PID filter
	// makes: one that finds nothing, one that finds the process.
	for _, v := range []struct {
		name    string
		entries uint32
		fill    bool
	}{{"floor_hash_miss", 1024, false}, {"floor_hash_hit", 1 << 16, true}} {
		m, err := b.newMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: v.entries, Flags: unix.BPF_F_NO_PREALLOC})
		if err != nil {
			return err
		}
		if v.fill {
			if err := fillPids(m); err != nil {
				return err
			}
		}
		b.add(v.name,
			asm.FnGetCurrentPidTgid.Call(),
			asm.RSh.Imm(asm.R0, 32),
			asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return())
	}
	// Reads of the interrupted task's user stack (bpf_probe_read_user): one
	// word at its SP, eight words a cache line apart from there.
	for _, reads := range []int{1, 8} {
		insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
		for k := range reads {
			insns = append(insns,
				asm.Mov.Reg(asm.R1, asm.RFP),
				asm.Add.Imm(asm.R1, -8),
				asm.Mov.Imm(asm.R2, 8),
				asm.LoadMem(asm.R3, asm.R6, 152, asm.DWord), // pt_regs.sp
				asm.Add.Imm(asm.R3, int32(64*k)),
				asm.FnProbeReadUser.Call())
		}
		b.add(fmt.Sprintf("floor_user_read_%d", reads), append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())...)
	}
	// Ten reads of the clock (bpf_ktime_get_ns): what timing a program's
	// parts from inside costs.
	clock := asm.Instructions{}
	for range 10 {
		clock = append(clock, asm.FnKtimeGetNs.Call())
	}
	b.add("floor_clock_10", append(clock, asm.Mov.Imm(asm.R0, 0), asm.Return())...)
	return nil
}

func run(hz int, span time.Duration, probes bool, only string) error {
	var b builder
	defer b.close()
	if err := b.reference(); err != nil {
		return err
	}
	if probes {
		if err := b.probes(); err != nil {
			return err
		}
	}
	cpus := runtimeCPUs()
	var loaded []*ebpf.Program
	var names []string
	for _, p := range b.progs {
		if only != "" && p.name != only {
			continue
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: p.name, Type: ebpf.PerfEvent, License: "GPL", Instructions: p.insns})
		if err != nil {
			return fmt.Errorf("load %s: %w", p.name, err)
		}
		defer prog.Close()
		for cpu := range cpus {
			closeEvent, err := attach(cpu, hz, prog)
			if err != nil {
				return err
			}
			defer closeEvent()
		}
		loaded = append(loaded, prog)
		names = append(names, p.name)
	}
	if len(loaded) == 0 {
		return fmt.Errorf("no program named %q (see -probes)", only)
	}
	before := make([]*ebpf.ProgramStats, len(loaded))
	for i, p := range loaded {
		var err error
		if before[i], err = p.Stats(); err != nil {
			return err
		}
	}
	time.Sleep(span)
	for i, p := range loaded {
		after, err := p.Stats()
		if err != nil {
			return err
		}
		n := after.RunCount - before[i].RunCount
		if n == 0 {
			return fmt.Errorf("%s did not run: is kernel.bpf_stats_enabled=1?", names[i])
		}
		fmt.Printf("%s runs %d ns_per_run %.0f\n", names[i], n, float64(after.Runtime-before[i].Runtime)/float64(n))
	}
	return nil
}

// fillPids puts the tgids of the running processes into m.
func fillPids(m *ebpf.Map) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if err := m.Put(uint32(pid), uint8(1)); err != nil {
			return fmt.Errorf("fill pid map: %w", err)
		}
	}
	return nil
}

// attach opens a cpu-clock event on cpu at hz with prog attached.
func attach(cpu, hz int, prog *ebpf.Program) (func(), error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: uint64(hz),
		Bits:   unix.PerfBitFreq,
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perf event on cpu %d: %w", cpu, err)
	}
	l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: prog, Attach: ebpf.AttachPerfEvent})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attach on cpu %d: %w", cpu, err)
	}
	return func() { l.Close(); unix.Close(fd) }, nil
}

func runtimeCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return set.Count()
}
