package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/bytesize"
	"github.com/ember-profiler/ember/model"
	"github.com/ember-profiler/ember/pipeline"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/symbolizer"
)

type recordOptions struct {
	duration      time.Duration
	untilExit     bool // with a command and no --duration: until it exits
	drainInterval time.Duration
	output        string
	format        string
	pids          []uint
	command       []string // `record -- CMD args...`
	profileType   string   // --type: cpu, offcpu or both
	collector     collector.Config
	python        bool // walk CPython's frames (collector.Config.NoPython unset)
	symbols       symbolizer.Options
	onSampling    func() // called once sampling runs; for tests
}

func newRecordCommand() *cobra.Command {
	var opts recordOptions
	cmd := &cobra.Command{
		Use:   "record [flags] [-- COMMAND [ARGS...]]",
		Short: "Profile the whole host, or a command, for a while and write a pprof or folded-stack file",
		Long: `Samples the kernel and user stacks of every CPU at a fixed frequency for the
given duration (Ctrl-C ends early and still writes the file), then writes a
gzipped pprof profile for 'go tool pprof', or folded stacks for flamegraph.pl
and speedscope.

With a command after the flags, Ember starts it and profiles it and every
process it forks until it exits (or --duration ends). Signals sent to Ember
are passed on to it; Ctrl-C at a terminal reaches it directly. Ember exits
0 once the profile is written and prints the command's exit status.

The output is written under a temporary name and renamed into place at the
end: on any error an existing file of the same name is kept.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.command = args
			opts.untilExit = len(args) > 0 && !cmd.Flags().Changed("duration")
			if err := opts.validate(); err != nil {
				return &usageError{err}
			}
			ctx := cmd.Context()
			if len(opts.command) == 0 {
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			return record(ctx, opts, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	// Flags after the command's name are the command's.
	f.SetInterspersed(false)
	f.DurationVarP(&opts.duration, "duration", "d", 30*time.Second, "how long to sample (with a command: until it exits)")
	f.IntVarP(&opts.collector.FrequencyHz, "frequency", "F", 99, "samples per second on each CPU")
	f.UintSliceVarP(&opts.pids, "pid", "p", nil, "sample only these processes (repeat the flag or separate with commas)")
	f.StringVarP(&opts.output, "output", "o", "", `file to write, "-" for standard output (default "ember.pb.gz", or "ember.folded" with --format folded)`)
	f.StringVar(&opts.format, "format", recordFormats()[0].name, "output format: "+recordFormatNames())
	f.BoolVar(&opts.collector.IncludeIdle, "include-idle", false, "keep samples of the idle task")
	f.StringVar(&opts.profileType, "type", profileCPU, `what to record: "cpu" (samples on the CPU), "offcpu" (time off the CPU, from context switches, by stack and thread state) or "both"`)
	f.DurationVar(&opts.collector.OffCPUMinWait, "offcpu-min-wait", collector.DefaultOffCPUMinWait, "shortest time off the CPU recorded; shorter waits are only counted")
	f.BoolVar(&opts.collector.OffCPUIncludeIdle, "offcpu-include-idle", false, "track the idle task's time off the CPU too")
	f.Uint32Var(&opts.collector.StackMapEntries, "stack-map-entries", 4096, "distinct stacks each of the two BPF stack maps holds per drain")
	f.StringVar(&opts.collector.Unwind, "unwind", collector.UnwindDWARF, `how user stacks are walked: "dwarf" (.eh_frame and Go .gopclntab tables in BPF, frame pointers where a file has none) or "fp" (the kernel's frame-pointer walk)`)
	opts.collector.UnwindTableBytes = 64 << 20
	f.Var((*bytesize.Size)(&opts.collector.UnwindTableBytes), "unwind-table-size", "BPF memory for .eh_frame unwind tables (4 bytes a row, taken in 256KiB chunks as tables load); tables beyond it are reported and their stacks marked")
	f.StringVar(&opts.collector.UnwindCacheDir, "unwind-cache-dir", "", "keep built unwind tables here by build ID, so the next run does not rebuild them (default: none)")
	f.BoolVar(&opts.python, "python", true, pythonFlagHelp)
	f.Uint32Var(&opts.collector.CountMapEntries, "count-map-entries", 16384, "entries in each of the two BPF sample count maps")
	f.DurationVar(&opts.drainInterval, "drain-interval", time.Second, "how often the BPF maps are read and emptied")
	f.StringArrayVar(&opts.symbols.DebugDirs, "debug-dir", nil, "also look for separate debug files under this folder, laid out like /usr/lib/debug (repeatable)")
	opts.symbols.MaxCacheBytes = 256 << 20
	f.Var((*bytesize.Size)(&opts.symbols.MaxCacheBytes), "symbol-cache-size", "memory budget of parsed symbol tables, DWARF and perf maps")
	return cmd
}

// validate checks every setting before anything is opened or loaded, so a
// mistake costs nothing and names its flag.
func (o *recordOptions) validate() error {
	if o.duration <= 0 {
		return fmt.Errorf("--duration must be positive, got %s", o.duration)
	}
	if o.collector.FrequencyHz <= 0 {
		return fmt.Errorf("--frequency must be positive, got %d", o.collector.FrequencyHz)
	}
	if o.drainInterval < 100*time.Millisecond || o.drainInterval > time.Minute {
		return fmt.Errorf("--drain-interval must be between 100ms and 1m, got %s", o.drainInterval)
	}
	format, ok := findRecordFormat(o.format)
	if !ok {
		return fmt.Errorf("--format must be %s, got %q", recordFormatNames(), o.format)
	}
	if o.output == "" {
		o.output = format.defaultOutput
	}
	switch o.profileType {
	case "", profileCPU: // "": options built without the flags
	case profileOffCPU:
		o.collector.OffCPU, o.collector.NoCPU = true, true
	case profileBoth:
		o.collector.OffCPU = true
	default:
		return fmt.Errorf("--type must be cpu, offcpu or both, got %q", o.profileType)
	}
	if len(o.command) > 0 && len(o.pids) > 0 {
		return errors.New("--pid and a command: give one or the other")
	}
	o.collector.PIDs = nil
	for _, pid := range o.pids {
		if pid == 0 || pid > 1<<22 {
			return fmt.Errorf("--pid %d is not a valid process ID", pid)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return fmt.Errorf("--pid %d: %w", pid, collector.ErrNoSuchProcess)
		}
		o.collector.PIDs = append(o.collector.PIDs, uint32(pid))
	}
	if err := o.collector.Validate(); err != nil {
		return flagError(err)
	}
	if len(o.command) > 0 {
		if _, err := exec.LookPath(o.command[0]); err != nil {
			return fmt.Errorf("command %s: %w", o.command[0], err)
		}
	}
	return nil
}

// Values of record's --type.
const (
	profileCPU    = "cpu"
	profileOffCPU = "offcpu"
	profileBoth   = "both"
)

// defaultSampleType is what a viewer of a recording shows first: CPU time,
// or time off the CPU when that is all there is.
func defaultSampleType(profileType string) string {
	switch profileType {
	case profileOffCPU:
		return schema.OffCPU.Type
	case profileBoth:
		return schema.CPU.Type
	}
	return "" // a CPU profile stays as it was
}

// flagError names the flag behind a collector setting.
func flagError(err error) error {
	var ce *collector.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	name := ce.Field
	if name == "unwind-table-bytes" {
		name = "unwind-table-size"
	}
	return fmt.Errorf("--%s: %s", name, ce.Msg)
}

// recordTotals adds up what every batch said, for the summary line.
type recordTotals struct {
	stats     model.Stats
	processes map[uint32]string
	unread    map[model.ProcessKey]bool
}

// totalingSource adds every batch drained to the totals.
type totalingSource struct {
	pipeline.Source
	totals *recordTotals
}

func (s totalingSource) Drain() (*model.Batch, error) {
	b, err := s.Source.Drain()
	if err == nil {
		s.totals.add(b)
	}
	return b, err
}

func (t *recordTotals) add(b *model.Batch) {
	t.stats.Add(b.Stats)
	for key, p := range b.Processes {
		t.processes[key.PID] = p.Comm
		if p.SnapshotErr != nil {
			t.unread[key] = true
		}
	}
}

func record(ctx context.Context, opts recordOptions, stderr io.Writer) error {
	format, ok := findRecordFormat(opts.format)
	if !ok {
		return &usageError{fmt.Errorf("--format must be %s, got %q", recordFormatNames(), opts.format)}
	}
	// Before any work: an unwritable place should not cost a 30 s run.
	// Nothing is written to the output itself until the profile is whole.
	out, err := openOutput(opts.output)
	if err != nil {
		return &usageError{fmt.Errorf("--output: %w", err)}
	}
	defer out.abort()

	// The collector first: its errors (privileges, kernel features) are the
	// ones a user must fix before anything else matters.
	if len(opts.command) > 0 {
		opts.collector.ForkParent = uint32(os.Getpid())
	}
	// Batches are named out of step with draining (see pipeline.Run).
	opts.collector.HoldBatchFiles = true
	opts.collector.NoPython = !opts.python
	col, err := collector.New(opts.collector)
	if err != nil {
		return err
	}
	defer col.Close()
	// Sampling runs from here: loading the programs can take seconds on a
	// busy host, and --duration is the time sampled, not the time waited.
	sampling := time.Now()
	sym, err := symbolizer.New(opts.symbols)
	if err != nil {
		return err
	}
	// Sampling stops at the deadline itself, even while a slow drain or
	// naming (cold symbol caches) holds up the pipeline; sampled then ends,
	// and the pipeline drains the last of it and writes the file.
	sampled, stopped := context.WithCancel(context.WithoutCancel(ctx))
	defer stopped()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			if err := col.Stop(); err != nil {
				slog.Warn("stop sampling", slog.Any("err", err))
			}
			stopped()
		})
	}
	if !opts.untilExit {
		timer := time.AfterFunc(time.Until(sampling.Add(opts.duration)), stop)
		defer timer.Stop()
	}
	defer context.AfterFunc(ctx, stop)()
	if opts.onSampling != nil {
		opts.onSampling()
	}
	var child *childCommand
	if len(opts.command) > 0 {
		if child, err = startChild(opts.command); err != nil {
			return err
		}
		defer child.stopForwarding()
		go func() {
			<-child.exited
			stop()
		}()
	}

	totals := recordTotals{processes: map[uint32]string{}, unread: map[model.ProcessKey]bool{}}
	file := &fileSink{out: out, name: opts.output, encode: format.write, defaultType: defaultSampleType(opts.profileType)}
	// The whole recording is one interval, written when sampling stops;
	// every sample drawn is kept, and any error ends the run.
	pipe, err := pipeline.New(pipeline.Config{
		Source: totalingSource{col, &totals}, Namer: sym, Sinks: []pipeline.SinkConfig{{Sink: file}},
		DrainInterval: opts.drainInterval, MaxBatchSamples: int(opts.collector.CountMapEntries),
		WaitWhenBehind: true, FailFast: true, Logger: slog.Default(),
	})
	if err != nil {
		return err
	}
	if opts.untilExit {
		slog.Info("recording until the command exits", slog.Int("hz", opts.collector.FrequencyHz))
	} else {
		slog.Info("recording", slog.Duration("duration", opts.duration), slog.Int("hz", opts.collector.FrequencyHz))
	}
	if err := pipe.Run(sampled); err != nil {
		return err
	}
	elapsed := file.elapsed
	line := summary(totals, elapsed, opts)
	if child != nil {
		select {
		case <-child.exited:
		default:
			// --duration ended first: the profile is written, and the
			// command runs on to its end, as it would without Ember.
			fmt.Fprintln(stderr, line+"; waiting for "+child.cmd.Args[0]+" to exit")
			line = "ember:"
		}
		line += "; " + child.wait()
	}
	fmt.Fprintln(stderr, line)
	return nil
}
