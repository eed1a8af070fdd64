// Package collector samples every CPU with Ember's eBPF program: it opens one
// cpu-clock perf event per online CPU, loads and attaches the programs from
// package bpf, tracks the processes it sees, and drains the maps into plain
// Batches for the symbolizer.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// Config says what to sample. The zero value of a field means its default.
type Config struct {
	FrequencyHz int      // samples per second per CPU; default 99
	PIDs        []uint32 // sample only these processes; empty means all
	// ForkParent, when set, samples every process it forks after New and
	// their descendants (threads included), from their fork on, but not
	// ForkParent itself: `ember record -- CMD` passes its own PID, so CMD
	// is followed before its first instruction. Processes in PIDs are
	// followed into their children too. A followed process leaves the
	// filter when it exits.
	ForkParent  uint32
	IncludeIdle bool // keep samples of the idle task
	// StackMapEntries is the size of each of the two stack maps, allocated
	// up front at about 1 KiB an entry; a distinct stack beyond it in one
	// drain is lost (counted, never silent). Default 4096.
	StackMapEntries uint32
	// CountMapEntries bounds distinct (pid, tid, stacks) per drain. Default 16384.
	CountMapEntries uint32
	// MaxOpenFiles bounds the mapped files held open for symbolization. Default 8192.
	MaxOpenFiles int
	// Unwind says how user stacks are walked: "dwarf" (default) unwinds
	// with .eh_frame tables in the BPF program, falling back to frame
	// pointers per file (Go, no CFI); "fp" leaves it to the kernel's
	// frame-pointer walk.
	Unwind string
	// UnwindTableBytes bounds the BPF memory for unwind tables (4 bytes a
	// row, plus 4 per 4 KiB of a file's code for its index), allocated in
	// chunks of 256 KiB as tables load. Tables that do not fit are counted
	// in Stats.Unwind.NotLoaded. Default 64 MiB, which holds every table
	// of a Debian /usr.
	UnwindTableBytes int64
	// UnwindCacheDir keeps built tables on disk by build ID; empty means
	// no disk cache.
	UnwindCacheDir string
	// NoPython turns off the walk of CPython's frames (on by default with
	// Unwind "dwarf"): CPython processes then show the interpreter's own
	// frames.
	NoPython bool
	// HoldBatchFiles keeps each batch's mapped files open until the batch
	// is released (Batch.Release), for callers that name batches out of
	// step with draining. Without it a batch's files close two drains
	// later, and a batch not named by then loses the files of processes
	// that have exited.
	HoldBatchFiles bool
	// OffCPU records time off the CPU from context switches: per stack and
	// thread state, nanoseconds and waits (Sample.Values, Batch.ValueTypes).
	OffCPU bool
	// NoCPU leaves CPU sampling off, for off-CPU time alone.
	NoCPU bool
	// EventsInSyscall waits for process events in the ring reader's own
	// epoll_wait rather than Go's network poller (events.go). A goroutine
	// blocked in a system call keeps its P, which kept the runtime's sysmon
	// polling: a third of the daemon's CPU under churn, a fifth with the
	// poller (docs/benchmarks.md).
	EventsInSyscall bool
	// OffCPUMinWait is the shortest wait recorded; shorter ones are counted
	// in Stats.OffCPU only. Default DefaultOffCPUMinWait.
	OffCPUMinWait time.Duration
	// OffCPUIncludeIdle tracks the idle tasks too.
	OffCPUIncludeIdle bool
	// OffCPUThreads bounds the threads tracked at once. Default 32768.
	OffCPUThreads uint32
	Logger        *slog.Logger
}

// Unwind modes.
const (
	UnwindDWARF = "dwarf"
	UnwindFP    = "fp"
)

func (c *Config) setDefaults() {
	if c.FrequencyHz == 0 {
		c.FrequencyHz = 99
	}
	if c.StackMapEntries == 0 {
		c.StackMapEntries = 4096
	}
	if c.Unwind == "" {
		c.Unwind = UnwindDWARF
	}
	if c.UnwindTableBytes == 0 {
		c.UnwindTableBytes = 64 << 20
	}
	if c.CountMapEntries == 0 {
		c.CountMapEntries = 16384
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.offCPUDefaults()
}

func (c *Config) validate() error {
	if c.FrequencyHz < 1 || c.FrequencyHz > 10000 {
		return &ConfigError{"frequency", fmt.Sprintf("%d Hz is out of range 1..10000", c.FrequencyHz)}
	}
	if c.StackMapEntries < 64 || c.StackMapEntries > 1<<22 {
		return &ConfigError{"stack-map-entries", fmt.Sprintf("%d is out of range 64..4194304", c.StackMapEntries)}
	}
	if c.CountMapEntries < 64 || c.CountMapEntries > 1<<22 {
		return &ConfigError{"count-map-entries", fmt.Sprintf("%d is out of range 64..4194304", c.CountMapEntries)}
	}
	if c.Unwind != UnwindDWARF && c.Unwind != UnwindFP {
		return &ConfigError{"unwind", fmt.Sprintf("%q is not dwarf or fp", c.Unwind)}
	}
	if c.UnwindTableBytes < wordBytes || c.UnwindTableBytes/wordBytes > 1<<28 {
		return &ConfigError{"unwind-table-bytes", fmt.Sprintf("%d is out of range 4..1GiB", c.UnwindTableBytes)}
	}
	if len(c.PIDs) > 1024 {
		return &ConfigError{"pid", "at most 1024 PIDs"}
	}
	return c.validateOffCPU()
}

// Validate checks the configuration as New would, without loading
// anything, so that a caller can reject a bad setting before doing work.
func (c Config) Validate() error {
	c.setDefaults()
	return c.validate()
}

// filtering reports whether only some processes are sampled.
func (c *Config) filtering() bool { return len(c.PIDs) > 0 || c.ForkParent != 0 }

// Collector owns the loaded programs, the perf events and the process tracker.
type Collector struct {
	cfg    Config
	log    *slog.Logger
	objs   bpf.SamplerObjects
	events []*perfEvent
	links  []link.Link
	// offCPULink is the sched_switch program's, nil when off-CPU time is
	// not recorded; stacks keeps the stacks its waits name across drains.
	offCPULink link.Link
	stacks     *stackMemory
	ring       *ringbuf.Reader
	ringWait   *ringWaiter // nil: ring waits in epoll_wait (events.go)
	tracker    *processTracker
	unwind     *unwindTables // nil when Unwind is "fp"
	maxDepth   int

	// interpreters walk the frames of interpreters (CPython; none when
	// Unwind is "fp"), each hooked into the native walk.
	interpreters []interpreter
	// plain are files no interpreter wants, for leaving out the /proc
	// reads of images the sampler installed (unwinder_images.go).
	plain plainFiles

	// images queues the /proc reads of new images; imageReadsBefore is
	// its total at the previous drain.
	images           *imageQueue
	imageReadsBefore model.ImageReads

	// loaderProbe is where new images are heard of once their libraries
	// are mapped; empty when not found.
	loaderProbe loaderProbe

	cancel    context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// stopMu guards events against Stop running while Close does, and
	// stoppedAt, when Stop ended sampling.
	stopMu    sync.Mutex
	stoppedAt time.Time

	drainMu      sync.Mutex
	generation   uint32 // active_generation; its low bit is the buffer being written
	lastDrain    time.Time
	possibleCPUs int
}

// New loads and attaches the sampler; sampling starts before it returns.
func New(cfg Config) (*Collector, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, pid := range cfg.PIDs {
		if !processExists("/proc", pid) {
			return nil, fmt.Errorf("pid %d: %w", pid, ErrNoSuchProcess)
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, ErrNoBTF
	}
	if os.Geteuid() != 0 && !hasCapabilities() {
		return nil, ErrNotPermitted
	}
	// On kernels that charge BPF memory to the cgroup this is a no-op; on
	// older ones it is needed, and failing it is reported by the load below.
	_ = rlimit.RemoveMemlock()

	possibleCPUs, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	c := &Collector{
		possibleCPUs: possibleCPUs,
		cfg:          cfg,
		log:          cfg.Logger,
		maxDepth:     maxStackDepth(),
	}
	if err := c.load(); err != nil {
		c.objs.Close()
		return nil, err
	}
	c.tracker = newProcessTracker("/proc", cfg.MaxOpenFiles, cfg.Logger, c.currentImage)
	c.images = newImageQueue()
	if cfg.Unwind == UnwindDWARF {
		if c.unwind, err = newUnwindTables(&c.objs, c.wordCapacity(), cfg.UnwindCacheDir, cfg.Logger, c.currentImage); err != nil {
			c.objs.Close()
			return nil, err
		}
		c.tracker.samplerImage = func(pid uint32) (recordedImage, bool) {
			rec, ok := c.unwind.maps.image(pid)
			if !ok {
				return recordedImage{}, false
			}
			return recordedImageOf(rec), true
		}
		if !cfg.NoPython {
			c.interpreters = append(c.interpreters, newPythonUnwinder(&c.objs, cfg.Logger))
		}
		// Processes named up front get their tables before sampling starts,
		// so even their first samples are unwound.
		for _, pid := range cfg.PIDs {
			p := c.tracker.observe(model.ProcessKey{PID: pid}, 0)
			c.unwind.install(p, c.tracker.alive)
			for _, in := range c.interpreters {
				in.attach(p)
			}
		}
	}
	if err := c.attach(); err != nil {
		c.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		defer keepUp(c.log)()
		c.readEvents(ctx)
	}()
	for range imageReaders {
		c.done.Add(1)
		go func() {
			defer c.done.Done()
			defer keepUp(c.log)()
			c.readImages(ctx)
		}()
	}
	if c.unwind != nil {
		// Tables are built off the event loop, which must snapshot new
		// processes before they exit.
		c.done.Add(1)
		go func() {
			defer c.done.Done()
			c.unwind.run(ctx, c.tracker.alive)
		}()
	}
	c.lastDrain = time.Now()
	return c, nil
}

func (c *Collector) load() error {
	spec, err := bpf.LoadSampler()
	if err != nil {
		return fmt.Errorf("load sampler spec: %w", err)
	}
	for _, name := range []string{"counts_0", "counts_1"} {
		spec.Maps[name].MaxEntries = c.cfg.CountMapEntries
	}
	for _, name := range []string{"stacks_0", "stacks_1"} {
		spec.Maps[name].MaxEntries = c.cfg.StackMapEntries
	}
	if c.cfg.Unwind == UnwindDWARF {
		spec.Maps["unwind_chunks"].MaxEntries = chunksFor(c.wordCapacity())
	}
	if err := c.loadOffCPU(spec); err != nil {
		return err
	}
	if err := spec.Variables["unwind_user"].Set(c.cfg.Unwind == UnwindDWARF); err != nil {
		return fmt.Errorf("set unwind_user: %w", err)
	}
	if err := spec.Variables["include_idle"].Set(c.cfg.IncludeIdle); err != nil {
		return fmt.Errorf("set include_idle: %w", err)
	}
	if err := spec.Variables["filter_pids"].Set(c.cfg.filtering()); err != nil {
		return fmt.Errorf("set filter_pids: %w", err)
	}
	if !c.cfg.filtering() {
		spec.Maps["pid_filter"].MaxEntries = 1 // never read: 1.3 MiB saved
	}
	if err := spec.Variables["follow_forks"].Set(c.cfg.ForkParent != 0); err != nil {
		return fmt.Errorf("set follow_forks: %w", err)
	}
	if c.cfg.Unwind == UnwindDWARF {
		probe, err := findLoaderProbe(dynamicLoader)
		if err != nil {
			c.log.Info("new processes are unwound from their first sample on, not before", slog.Any("err", err))
		} else if err := spec.Variables["r_debug_from_probe"].Set(probe.rDebugFromProbe); err != nil {
			return fmt.Errorf("set r_debug_from_probe: %w", err)
		} else {
			c.loaderProbe = probe
		}
	}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		// The verifier's rejections come as EACCES too: say why first.
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) && len(verr.Log) > 0 {
			return fmt.Errorf("the kernel's verifier rejected the sampler: %w: %+v", err, verr)
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("load eBPF programs: %w", ErrNotPermitted)
		}
		return fmt.Errorf("load eBPF programs: %w", err)
	}
	// Values as in sampler.bpf.c: sample, or only follow the children.
	const sample, parentOnly = uint8(bpf.SamplerPidFilterValuePID_SAMPLE), uint8(bpf.SamplerPidFilterValuePID_PARENT_ONLY)
	for _, pid := range c.cfg.PIDs {
		if err := c.objs.PidFilter.Put(pid, sample); err != nil {
			return fmt.Errorf("add pid %d to the filter: %w", pid, err)
		}
	}
	if pid := c.cfg.ForkParent; pid != 0 && !slices.Contains(c.cfg.PIDs, pid) {
		if err := c.objs.PidFilter.Put(pid, parentOnly); err != nil {
			return fmt.Errorf("add pid %d to the filter: %w", pid, err)
		}
	}
	return nil
}

func (c *Collector) attach() error {
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{{"sched_process_exec", c.objs.OnExec}, {"sched_process_exit", c.objs.OnExit}, {"sched_process_fork", c.objs.OnFork}} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: tp.prog})
		if err != nil {
			return fmt.Errorf("attach to tracepoint %s: %w", tp.name, err)
		}
		c.links = append(c.links, l)
	}
	c.attachLoaderProbe(c.loaderProbe)
	if err := c.openEvents(); err != nil {
		return err
	}
	if c.cfg.OffCPU {
		if err := c.attachOffCPU(); err != nil {
			return err
		}
	}
	if c.cfg.NoCPU {
		return nil
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	for _, cpu := range cpus {
		ev, err := openCPUClock(cpu, c.cfg.FrequencyHz, c.objs.Sample)
		if err != nil {
			return err
		}
		c.events = append(c.events, ev)
	}
	c.log.Debug("sampling", slog.Int("cpus", len(cpus)), slog.Int("hz", c.cfg.FrequencyHz))
	return nil
}

// wordCapacity is how many table words (rows and index entries) the
// budget holds.
func (c *Collector) wordCapacity() uint32 { return uint32(c.cfg.UnwindTableBytes / wordBytes) }

// currentImage asks the BPF side which image a process runs now.
func (c *Collector) currentImage(pid uint32) (uint32, uint64, bool) {
	var st bpf.SamplerProcState
	if err := c.objs.Procs.Lookup(pid, &st); err != nil {
		return 0, 0, false
	}
	return st.ExecSeq, st.StartCode, true
}

// Close stops sampling and releases everything. Batches already returned
// stay valid but their files are closed. Calling it again does nothing.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

// Stop ends sampling at once and keeps everything else, so that the
// samples taken so far can still be drained and named: the next Drain ends
// at the moment of Stop, however late it runs. It is safe to call while a
// Drain runs, and again.
func (c *Collector) Stop() error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if !c.stoppedAt.IsZero() {
		return nil
	}
	c.stoppedAt = time.Now()
	var errs []error
	for _, ev := range c.events {
		errs = append(errs, ev.disable())
	}
	if c.offCPULink != nil {
		// Threads away now are not counted: their waits end after the stop.
		errs = append(errs, c.offCPULink.Close())
		c.offCPULink = nil
	}
	return errors.Join(errs...)
}

// stopTime is when Stop ended sampling, or zero.
func (c *Collector) stopTime() time.Time {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	return c.stoppedAt
}

func (c *Collector) close() error {
	c.stopMu.Lock()
	for _, ev := range c.events {
		ev.close()
	}
	c.events = nil
	if c.offCPULink != nil {
		c.offCPULink.Close()
		c.offCPULink = nil
	}
	c.stopMu.Unlock()
	for _, l := range c.links {
		l.Close()
	}
	c.links = nil
	if c.cancel != nil {
		c.cancel()
	}
	if c.ringWait != nil {
		// This ends the reader, which asks the ring for its size between
		// waits: the ring itself is closed once the reader is gone.
		c.ringWait.close()
	} else if c.ring != nil {
		c.ring.Close()
	}
	c.done.Wait()
	if c.ring != nil {
		c.ring.Close()
	}
	if c.tracker != nil {
		c.tracker.close()
	}
	if c.unwind != nil {
		c.unwind.close()
	}
	return c.objs.Close()
}

// maxStackDepth is the depth at which the kernel cuts stacks: a stack this
// deep is treated as truncated.
func maxStackDepth() int {
	const mapDepth = int(bpf.SamplerStackLayoutSTACK_SEGMENT) // what bpf_get_stack fills
	raw, err := os.ReadFile("/proc/sys/kernel/perf_event_max_stack")
	if err != nil {
		return mapDepth
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || n <= 0 || n > mapDepth {
		return mapDepth
	}
	return n
}

// hasCapabilities reports whether CAP_BPF and CAP_PERFMON are effective.
func hasCapabilities() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON)
}
