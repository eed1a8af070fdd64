package export

import (
	"context"
	"sync"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage"
)

// SharedHistory lets the exporters of one daemon read each interval from
// the store once: they follow the same intervals, usually within moments
// of each other, and reading one back costs more than sending it. It holds
// the last few intervals read; exporters only read the profiles they get.
type SharedHistory struct {
	History
	mu     sync.Mutex
	recent []sharedInterval // newest last

	freshMu sync.Mutex     // not mu: the daemon must not wait for a read
	fresh   sharedInterval // the interval handed over by Stored

	splitMu sync.Mutex
	splits  []sharedSplit // newest last
}

// A sharedSplit is an interval's series as a label policy splits them:
// exporters whose targets export the same labels send the same series.
type sharedSplit struct {
	p      *profile.Profile
	policy string
	series []Series
}

// sharedSplits bounds the splits held, as sharedIntervals bounds the
// profiles: a few targets, each at most a step behind another.
const sharedSplits = 4

type sharedInterval struct {
	key int64
	p   *profile.Profile
}

// sharedIntervals bounds the profiles held: one per exporter a step behind
// another is enough; an exporter further behind reads for itself.
const sharedIntervals = 2

// Share wraps h so that exporters given the result read each interval once.
func Share(h History) *SharedHistory { return &SharedHistory{History: h} }

// readRecent returns the interval from the recent ones, or from the store.
func (s *SharedHistory) readRecent(ctx context.Context, ref storage.IntervalRef) (*profile.Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock() // one read at a time: the second exporter waits for the first's
	for _, r := range s.recent {
		if r.key == ref.Key {
			return r.p, nil
		}
	}
	p, err := s.History.ReadInterval(ctx, ref)
	if err != nil {
		return nil, err
	}
	if len(s.recent) == sharedIntervals {
		copy(s.recent, s.recent[1:])
		s.recent = s.recent[:sharedIntervals-1]
	}
	s.recent = append(s.recent, sharedInterval{ref.Key, p})
	return p, nil
}

// split returns p's series under lp, split once for all the exporters
// that share s and have the same label policy. The series are read only.
func (s *SharedHistory) split(p *profile.Profile, lp labelPolicy) []Series {
	s.splitMu.Lock()
	defer s.splitMu.Unlock() // the second exporter waits for the first's split
	for _, sp := range s.splits {
		if sp.p == p && sp.policy == lp.key {
			return sp.series
		}
	}
	series := lp.split(p)
	if len(s.splits) == sharedSplits {
		copy(s.splits, s.splits[1:])
		s.splits = s.splits[:sharedSplits-1]
	}
	s.splits = append(s.splits, sharedSplit{p, lp.key, series})
	return series
}
