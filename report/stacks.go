package report

import (
	"context"
	"errors"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/query"
)

// NewFlameGraphFromStacks gives the flame graph NewFlameGraphWith gives for
// the profile the store would build of the same query, from the store's
// leaner answer: for a day of a churning host, a fraction of the memory of
// a profile and its call tree. o.GroupBy names the label that s's groups
// are values of. It reads s's Trie without changing it, and drops s's
// Paths and Lines.
func NewFlameGraphFromStacks(ctx context.Context, s *query.Stacks, o FlameOptions) (*FlameGraph, error) {
	if s == nil || len(s.SampleTypes) == 0 {
		return NewFlameGraphWith(ctx, nil, o)
	}
	types := stacksTypes(s)
	vi, err := sampleIndex(types, o.SampleType)
	if err != nil {
		return nil, err
	}
	if err := checkStacks(s); err != nil {
		return nil, err
	}
	n := len(s.SampleTypes)
	b := newTreeBuilder(len(s.Frames) + len(s.TrieFrames)/4 + len(s.Groups))
	grouped := o.GroupBy != ""
	groupIDs := make([]int32, len(s.Groups))
	noGroup := int32(-1)
	if grouped {
		for i, g := range s.Groups {
			groupIDs[i] = b.groupID(g)
		}
		noGroup = b.groupID(NoGroup)
	}
	value := func(i int) int64 { return s.Values[i*n+vi] }
	group := func(i int) int32 {
		if g := s.Samples[i].Group; g >= 0 && int(g) < len(groupIDs) {
			return groupIDs[g]
		}
		return noGroup
	}
	t, err := buildStacksTree(ctx, s, b, value, group, grouped)
	if err != nil {
		return nil, err
	}
	s.Paths, s.Lines = nil, nil
	fg := t.flameGraphWithin(o)
	fg.SampleType, fg.Unit = types.SampleType[vi].Type, types.SampleType[vi].Unit
	if grouped {
		fg.GroupBy = o.GroupBy
		acc := newGroupSums(o.GroupBy)
		for _, d := range s.Details {
			if vi >= len(d.Values) || d.Values[vi] <= 0 {
				continue
			}
			g := NoGroup
			if d.Group >= 0 && int(d.Group) < len(s.Groups) {
				g = s.Groups[d.Group]
			}
			switch {
			case d.Count && d.Label >= 0 && int(d.Label) < len(query.GroupDetailLabels):
				acc.setCount(g, query.GroupDetailLabels[d.Label], int(d.Values[vi]))
			case d.Count:
			case d.Label == -1:
				acc.addTotal(g, d.Values[vi])
			case d.Label >= 0 && int(d.Label) < len(query.GroupDetailLabels):
				acc.addDetail(g, query.GroupDetailLabels[d.Label], d.Value, d.Values[vi])
			}
		}
		fg.Groups = acc.groups()
	}
	return fg, nil
}

// stacksTypes is a profile without samples that has s's sample types, for
// sampleIndex; an empty s has Ember's.
func stacksTypes(s *query.Stacks) *profile.Profile {
	if s == nil || len(s.SampleTypes) == 0 {
		return orEmpty(nil)
	}
	p := &profile.Profile{DefaultSampleType: s.DefaultSampleType}
	for _, vt := range s.SampleTypes {
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: vt.Type, Unit: vt.Unit})
	}
	return p
}

// checkStacks says whether s's values and lines fit its samples and paths.
func checkStacks(s *query.Stacks) error {
	if len(s.Values) != len(s.SampleTypes)*len(s.Samples) || len(s.Lines) != len(s.Paths) {
		return errors.New("report: stacks: values or lines do not match the samples")
	}
	return nil
}
