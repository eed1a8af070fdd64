package main

import (
	"github.com/ember-profiler/ember/model"
)

// addStats adds one batch's sampler counters to a running total.
func addStats(total *model.Stats, s model.Stats) {
	total.Taken += s.Taken
	total.Idle += s.Idle
	total.Filtered += s.Filtered
	total.Recorded += s.Recorded
	total.CountMapFull += s.CountMapFull
	total.EventsLost += s.EventsLost
	total.ForksUnfollowed += s.ForksUnfollowed
	total.Truncated += s.Truncated
	if total.UserLost == nil {
		total.UserLost, total.KernelLost = map[model.LossReason]uint64{}, map[model.LossReason]uint64{}
	}
	for r, n := range s.UserLost {
		total.UserLost[r] += n
	}
	for r, n := range s.KernelLost {
		total.KernelLost[r] += n
	}
	total.Unwind.Frames += s.Unwind.Frames
	total.Unwind.KernelFP += s.Unwind.KernelFP
	if total.Unwind.Ends == nil {
		total.Unwind.Ends = map[model.UnwindEnd]uint64{}
	}
	for e, n := range s.Unwind.Ends {
		total.Unwind.Ends[e] += n
	}
	total.Unwind.Tables = s.Unwind.Tables // a gauge: the latest drain's
}
