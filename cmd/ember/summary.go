package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ember-profiler/ember/model"
)

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
	lost := lossList("user stack", s.UserLost, model.LostKernelThread, model.LostExiting, model.LostExecve)
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
	if py := pythonSummary(s.Python); py != "" {
		b.WriteString("; " + py)
	}
	if o := offCPUSummary(s.OffCPU); o != "" {
		b.WriteString("; " + o)
	}
	fmt.Fprintf(&b, "; %d processes", len(t.processes))
	if n := len(t.unread); n > 0 {
		fmt.Fprintf(&b, " (%d program images gone before they could be read)", n)
	}
	if s.ForksUnfollowed > 0 {
		fmt.Fprintf(&b, "; %d forked processes not followed (PID filter full)", s.ForksUnfollowed)
	}
	if s.EventsLost > 0 {
		fmt.Fprintf(&b, "; %d process notifications dropped", s.EventsLost)
	}
	fmt.Fprintf(&b, "; wrote %s (%s)", opts.output, opts.format)
	return b.String()
}

// unwindSummary says how the .eh_frame unwinder did: walks ended by
// reason, and tables that did not fit.
func unwindSummary(u model.UnwindStats) string {
	var walks uint64
	for _, n := range u.Ends {
		walks += n
	}
	if walks == 0 {
		return ""
	}
	s := fmt.Sprintf("unwinder: %d walks, %.1f%% complete", walks, 100*float64(u.Ends[model.UnwindComplete])/float64(walks))
	var ends []string
	for e, n := range u.Ends {
		if e != model.UnwindComplete && n > 0 {
			ends = append(ends, fmt.Sprintf("%d %s", n, e))
		}
	}
	slices.Sort(ends)
	if len(ends) > 0 {
		s += " (" + strings.Join(ends, ", ") + ")"
	}
	if u.LateJITFrames > 0 || u.LateJITBusy > 0 {
		s += fmt.Sprintf(", %d frames in JIT code mapped since (%d lookups busy)", u.LateJITFrames, u.LateJITBusy)
	}
	if t := u.Tables; t.NotLoaded > 0 {
		s += fmt.Sprintf(", %d tables over --unwind-table-size", t.NotLoaded)
	}
	return s
}

// pythonSummary says how the CPython walk did, when there was one.
func pythonSummary(p model.PythonStats) string {
	if p.Walks == 0 && p.UnknownVersions == 0 {
		return ""
	}
	s := fmt.Sprintf("python: %d samples walked, %d frames", p.Walks, p.Frames)
	var cut []string
	for _, c := range []struct {
		n    uint64
		what string
	}{
		{p.NoThread, "not a Python thread"}, {p.NoFrame, "running no Python"}, {p.ReadFailed, "read failed"},
		{p.Depth, "depth limit"}, {p.Unreadable, "code object unreadable"}, {p.Exited, "exited before naming"},
		{p.UnknownVersions, "processes of an unknown version"},
	} {
		if c.n > 0 {
			cut = append(cut, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(cut) > 0 {
		s += " (" + strings.Join(cut, ", ") + ")"
	}
	var kept uint64
	for _, n := range p.QualnameFallbacks {
		kept += n
	}
	if kept > 0 {
		s += fmt.Sprintf("; before 3.11, %d frames qualified from their source, %d kept co_name", p.Qualified, kept)
	}
	return s
}

func lossList(what string, byReason map[model.LossReason]uint64, skip ...model.LossReason) []string {
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

// offCPUSummary says what became of the context switches seen: waits
// recorded, and those left out or lost, by reason.
func offCPUSummary(o model.OffCPUStats) string {
	if o.Left == 0 && o.Arrived == 0 {
		return ""
	}
	s := fmt.Sprintf("off-CPU: %d waits", o.Recorded)
	var out []string
	if o.Short > 0 {
		out = append(out, fmt.Sprintf("%d shorter than --offcpu-min-wait (%s)", o.Short, time.Duration(o.ShortNanos)))
	}
	if o.Missed > 0 {
		out = append(out, fmt.Sprintf("%d switch-ins of threads not seen leaving", o.Missed))
	}
	if o.CountMapFull > 0 {
		out = append(out, fmt.Sprintf("%d lost (count map full)", o.CountMapFull))
	}
	if o.UserLost+o.KernelLost > 0 {
		out = append(out, fmt.Sprintf("%d user and %d kernel stacks lost", o.UserLost, o.KernelLost))
	}
	if o.StacksGone > 0 {
		out = append(out, fmt.Sprintf("%d waits whose stack was gone at the drain", o.StacksGone))
	}
	if len(out) > 0 {
		s += " (" + strings.Join(out, ", ") + ")"
	}
	return s
}
