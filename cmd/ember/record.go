package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
	"github.com/spf13/cobra"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/bytesize"
	"github.com/ember-profiler/ember/internal/folded"
	"github.com/ember-profiler/ember/symbolizer"
)

type recordOptions struct {
	duration      time.Duration
	drainInterval time.Duration
	output        string
	format        string
	pids          []uint
	collector     collector.Config
	symbols       symbolizer.Options
}

func newRecordCommand() *cobra.Command {
	var opts recordOptions
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Profile the whole host for a while and write a pprof or folded-stack file",
		Long: `Samples the kernel and user stacks of every CPU at a fixed frequency for the
given duration (Ctrl-C ends early and still writes the file), then writes a
gzipped pprof profile for 'go tool pprof', or folded stacks for flamegraph.pl
and speedscope.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.validate(cmd); err != nil {
				return &usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return record(ctx, opts, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&opts.duration, "duration", "d", 30*time.Second, "how long to sample")
	f.IntVarP(&opts.collector.FrequencyHz, "frequency", "F", 99, "samples per second on each CPU")
	f.UintSliceVarP(&opts.pids, "pid", "p", nil, "sample only these processes (repeat the flag or separate with commas)")
	f.StringVarP(&opts.output, "output", "o", "", `file to write, "-" for standard output (default "ember.pb.gz", or "ember.folded" with --format folded)`)
	f.StringVar(&opts.format, "format", "pprof", "output format: pprof or folded")
	f.BoolVar(&opts.collector.IncludeIdle, "include-idle", false, "keep samples of the idle task")
	f.Uint32Var(&opts.collector.StackMapEntries, "stack-map-entries", 4096, "distinct stacks each of the two BPF stack maps holds per drain")
	f.StringVar(&opts.collector.Unwind, "unwind", collector.UnwindDWARF, `how user stacks are walked: "dwarf" (.eh_frame tables in BPF, frame pointers where a file has none) or "fp" (the kernel's frame-pointer walk)`)
	opts.collector.UnwindTableBytes = 64 << 20
	f.Var((*bytesize.Size)(&opts.collector.UnwindTableBytes), "unwind-table-size", "BPF memory for .eh_frame unwind tables (4 bytes a row, taken in 256KiB chunks as tables load); tables beyond it are reported and their stacks marked")
	f.StringVar(&opts.collector.UnwindCacheDir, "unwind-cache-dir", "", "keep built unwind tables here by build ID, so the next run does not rebuild them (default: none)")
	f.Uint32Var(&opts.collector.CountMapEntries, "count-map-entries", 16384, "entries in each of the two BPF sample count maps")
	f.DurationVar(&opts.drainInterval, "drain-interval", time.Second, "how often the BPF maps are read and emptied")
	f.StringArrayVar(&opts.symbols.DebugDirs, "debug-dir", nil, "also look for separate debug files under this folder, laid out like /usr/lib/debug (repeatable)")
	opts.symbols.MaxCacheBytes = 256 << 20
	f.Var((*bytesize.Size)(&opts.symbols.MaxCacheBytes), "symbol-cache-size", "memory budget of parsed symbol tables, DWARF and perf maps")
	return cmd
}

func (o *recordOptions) validate(cmd *cobra.Command) error {
	if o.duration <= 0 {
		return fmt.Errorf("--duration must be positive, got %s", o.duration)
	}
	if o.collector.FrequencyHz <= 0 {
		return fmt.Errorf("--frequency must be positive, got %d", o.collector.FrequencyHz)
	}
	if o.drainInterval < 100*time.Millisecond || o.drainInterval > time.Minute {
		return fmt.Errorf("--drain-interval must be between 100ms and 1m, got %s", o.drainInterval)
	}
	switch o.format {
	case "pprof", "folded":
	default:
		return fmt.Errorf("--format must be pprof or folded, got %q", o.format)
	}
	if o.output == "" {
		o.output = "ember.pb.gz"
		if o.format == "folded" {
			o.output = "ember.folded"
		}
	}
	for _, pid := range o.pids {
		if pid == 0 || pid > 1<<22 {
			return fmt.Errorf("--pid %d is not a valid process ID", pid)
		}
		o.collector.PIDs = append(o.collector.PIDs, uint32(pid))
	}
	return nil
}

// recordTotals adds up what every batch said, for the summary line.
type recordTotals struct {
	stats     collector.Stats
	processes map[uint32]string
	unread    map[collector.ProcessKey]bool
}

func (t *recordTotals) add(b *collector.Batch) {
	addStats(&t.stats, b.Stats)
	for key, p := range b.Processes {
		t.processes[key.PID] = p.Comm
		if p.SnapshotErr != nil {
			t.unread[key] = true
		}
	}
}

func record(ctx context.Context, opts recordOptions, stderr io.Writer) error {
	// Open the output first: a typo in its path should not cost a 30 s run.
	out, err := createOutput(opts.output)
	if err != nil {
		return err
	}
	defer out.Close()

	// The collector first: its errors (privileges, kernel features) are the
	// ones a user must fix before anything else matters. Sampling starts
	// here, so the deadline counts from here too.
	deadline := time.NewTimer(opts.duration)
	defer deadline.Stop()
	col, err := collector.New(opts.collector)
	if err != nil {
		return err
	}
	defer col.Close()
	sym, err := symbolizer.New(opts.symbols)
	if err != nil {
		return err
	}

	var first, last time.Time
	totals := recordTotals{processes: map[uint32]string{}, unread: map[collector.ProcessKey]bool{}}
	var merged *profile.Profile
	drain := func() error {
		batch, err := col.Drain()
		if err != nil {
			return err
		}
		totals.add(batch)
		if first.IsZero() {
			first = batch.Start
		}
		last = batch.End
		p, err := sym.Profile(batch)
		if err != nil {
			return fmt.Errorf("symbolize: %w", err)
		}
		if merged == nil {
			merged = p
			return nil
		}
		merged, err = profile.Merge([]*profile.Profile{merged, p})
		return err
	}

	tick := time.NewTicker(opts.drainInterval)
	defer tick.Stop()
	slog.Info("recording", slog.Duration("duration", opts.duration), slog.Int("hz", opts.collector.FrequencyHz))
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-deadline.C:
			break sampling
		case <-tick.C:
			if err := drain(); err != nil {
				return err
			}
		}
	}
	if err := drain(); err != nil {
		return err
	}
	elapsed := last.Sub(first)
	merged.TimeNanos = first.UnixNano()
	merged.DurationNanos = elapsed.Nanoseconds()

	if opts.format == "folded" {
		err = folded.Write(out, merged)
	} else {
		err = merged.Write(out)
	}
	if err == nil {
		err = out.Close()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", opts.output, err)
	}
	fmt.Fprintln(stderr, summary(totals, elapsed, opts))
	return nil
}

// createOutput opens the output file, or standard output for "-".
func createOutput(path string) (io.WriteCloser, error) {
	if path == "-" {
		return nopCloser{os.Stdout}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// summary is the one line a user reads after a recording.
func summary(t recordTotals, elapsed time.Duration, opts recordOptions) string {
	s := t.stats
	var b strings.Builder
	fmt.Fprintf(&b, "ember: %d samples in %.1fs at %d Hz", s.Recorded, elapsed.Seconds(), opts.collector.FrequencyHz)
	var left []string
	if s.Idle > 0 {
		left = append(left, fmt.Sprintf("%d idle", s.Idle))
	}
	if s.Filtered > 0 {
		left = append(left, fmt.Sprintf("%d of other processes", s.Filtered))
	}
	if len(left) > 0 {
		fmt.Fprintf(&b, " (%d taken; left out: %s)", s.Taken, strings.Join(left, ", "))
	}
	lost := lossList("user stack", s.UserLost, collector.LostKernelThread, collector.LostExiting)
	lost = append(lost, lossList("kernel stack", s.KernelLost)...)
	if s.CountMapFull > 0 {
		lost = append(lost, fmt.Sprintf("%d samples (count map full)", s.CountMapFull))
	}
	if len(lost) == 0 {
		b.WriteString("; lost: none")
	} else {
		fmt.Fprintf(&b, "; lost: %s", strings.Join(lost, ", "))
	}
	if s.Truncated > 0 {
		fmt.Fprintf(&b, "; %d stacks truncated at the depth limit or where unwinding stopped", s.Truncated)
	}
	if u := unwindSummary(s.Unwind); u != "" {
		b.WriteString("; " + u)
	}
	fmt.Fprintf(&b, "; %d processes", len(t.processes))
	if n := len(t.unread); n > 0 {
		fmt.Fprintf(&b, " (%d program images gone before they could be read)", n)
	}
	if s.EventsLost > 0 {
		fmt.Fprintf(&b, "; %d process notifications dropped", s.EventsLost)
	}
	fmt.Fprintf(&b, "; wrote %s (%s)", opts.output, opts.format)
	return b.String()
}

// unwindSummary says how the .eh_frame unwinder did: walks ended by
// reason, and tables that did not fit.
func unwindSummary(u collector.UnwindStats) string {
	var walks uint64
	for _, n := range u.Ends {
		walks += n
	}
	if walks == 0 {
		return ""
	}
	s := fmt.Sprintf("unwinder: %d walks, %.1f%% complete", walks, 100*float64(u.Ends[collector.UnwindComplete])/float64(walks))
	var ends []string
	for e, n := range u.Ends {
		if e != collector.UnwindComplete && n > 0 {
			ends = append(ends, fmt.Sprintf("%d %s", n, e))
		}
	}
	slices.Sort(ends)
	if len(ends) > 0 {
		s += " (" + strings.Join(ends, ", ") + ")"
	}
	if t := u.Tables; t.NotLoaded > 0 {
		s += fmt.Sprintf(", %d tables over --unwind-table-size", t.NotLoaded)
	}
	return s
}

func lossList(what string, byReason map[collector.LossReason]uint64, skip ...collector.LossReason) []string {
	var out []string
	for r, n := range byReason {
		if n == 0 || slices.Contains(skip, r) {
			continue
		}
		out = append(out, fmt.Sprintf("%d %ss (%s)", n, what, r))
	}
	sort.Strings(out)
	return out
}
