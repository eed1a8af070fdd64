// Command bpffloor measures what the cheapest BPF programs cost per run on
// this machine, sampled the way Ember's sampler is: attached to a cpu-clock
// perf event on every CPU at the same rate. One returns at once, one bumps
// a per-CPU counter (one map access), one runs 4 KiB of straight-line code. Run beside `ember record`, it
// shows how much of a sample's cost any program pays there (kernel BPF
// stats; needs kernel.bpf_stats_enabled=1 and root).
//
//	go run ./bench/bpffloor -hz 99 -for 15s
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
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
	flag.Parse()
	if err := run(*hz, *span); err != nil {
		slog.Error("bpffloor", "err", err)
		os.Exit(1)
	}
}

func run(hz int, span time.Duration) error {
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("counter map: %w", err)
	}
	defer counter.Close()
	progs := []struct {
		name  string
		insns asm.Instructions
	}{
		{"floor_return", asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		}},
		{"floor_count", asm.Instructions{
			// key = 0 on the stack; r0 = lookup(counter, &key); (*r0)++
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		}},
	}
	// 4 KiB of straight-line code once jitted (an x86 add is 4 bytes): what
	// code that is cold at every sample costs.
	straight := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for range 1024 {
		straight = append(straight, asm.Add.Imm(asm.R0, 1))
	}
	straight = append(straight, asm.Mov.Imm(asm.R0, 0), asm.Return())
	progs = append(progs, struct {
		name  string
		insns asm.Instructions
	}{"floor_4k_code", straight})
	cpus := runtimeCPUs()
	var loaded []*ebpf.Program
	for _, p := range progs {
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
	}
	before := make([]*ebpf.ProgramStats, len(loaded))
	for i, p := range loaded {
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
			return fmt.Errorf("%s did not run: is kernel.bpf_stats_enabled=1?", progs[i].name)
		}
		fmt.Printf("%s runs %d ns_per_run %.0f\n", progs[i].name, n, float64(after.Runtime-before[i].Runtime)/float64(n))
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
