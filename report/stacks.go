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
// are values of. It takes over s's Paths and Lines, which it rewrites.
func NewFlameGraphFromStacks(ctx context.Context, s *query.Stacks, o FlameOptions) (*FlameGraph, error) {
	if s == nil || len(s.SampleTypes) == 0 {
		return NewFlameGraphWith(ctx, nil, o)
	}
	types := make([]*profile.ValueType, len(s.SampleTypes))
	for i, vt := range s.SampleTypes {
		types[i] = &profile.ValueType{Type: vt.Type, Unit: vt.Unit}
	}
	vi, err := sampleIndex(&profile.Profile{SampleType: types, DefaultSampleType: s.DefaultSampleType}, o.SampleType)
	if err != nil {
		return nil, err
	}
	n := len(types)
	if len(s.Values) != n*len(s.Samples) || len(s.Lines) != len(s.Paths) {
		return nil, errors.New("report: stacks: values or lines do not match the samples")
	}
	b := newTreeBuilder(len(s.Frames) + len(s.Groups))
	t := b.t
	ids := make([]int32, len(s.Frames))
	for i, f := range s.Frames {
		ids[i] = b.frameID(frame{name: f.Name, file: f.File, binary: f.Binary})
	}
	groupIDs := make([]int32, len(s.Groups))
	for i, g := range s.Groups {
		groupIDs[i] = b.groupID(g)
	}
	grouped := o.GroupBy != ""
	// s's paths become the tree's, rewritten in place, when each has room
	// for its group's frame or none is needed: a day's paths are millions
	// of frames, and a copy of them was a fifth of the request's memory.
	inPlace := !grouped || s.GroupSlots
	if inPlace {
		t.arena, t.lines = s.Paths, s.Lines
		s.Paths, s.Lines = nil, nil
	} else {
		t.arena = make([]int32, 0, len(s.Paths)+len(s.Samples))
		t.lines = make([]int32, 0, cap(t.arena))
	}
	t.stacks = make([]stack, 0, len(s.Samples))
	for si, smp := range s.Samples {
		if si%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v := s.Values[si*n+vi]
		if v <= 0 {
			continue
		}
		first := smp.Start
		if grouped && inPlace {
			first-- // the group's slot
		}
		if first < 0 || smp.End < smp.Start || int(smp.End) > len(t.arena) && inPlace || int(smp.End) > len(s.Paths) && !inPlace {
			return nil, errors.New("report: stacks: a sample's frames are out of range")
		}
		group := int32(-1)
		if grouped {
			group = b.groupID(NoGroup)
			if smp.Group >= 0 && int(smp.Group) < len(groupIDs) {
				group = groupIDs[smp.Group]
			}
		}
		if inPlace {
			for i := smp.Start; i < smp.End; i++ {
				f := t.arena[i]
				if f < 0 || int(f) >= len(ids) {
					return nil, errors.New("report: stacks: a frame ID is out of range")
				}
				t.arena[i] = ids[f]
			}
			if grouped {
				t.arena[first], t.lines[first] = group, 0
			}
			t.stacks = append(t.stacks, stack{first, smp.End, v})
			continue
		}
		start := int32(len(t.arena))
		if grouped {
			t.arena = append(t.arena, group)
			t.lines = append(t.lines, 0)
		}
		for i := smp.Start; i < smp.End; i++ {
			f := s.Paths[i]
			if f < 0 || int(f) >= len(ids) {
				return nil, errors.New("report: stacks: a frame ID is out of range")
			}
			t.arena = append(t.arena, ids[f])
			t.lines = append(t.lines, s.Lines[i])
		}
		t.stacks = append(t.stacks, stack{start, int32(len(t.arena)), v})
	}
	if err := t.grow(ctx); err != nil {
		return nil, err
	}
	fg := t.flameGraphWithin(o)
	fg.SampleType, fg.Unit = types[vi].Type, types[vi].Unit
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
