package report

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/query"
)

// Diff is two profiles compared per function (frames are matched by
// function name alone, so that a function is compared with itself across a
// redeploy that moved its binary). Its JSON is the body of the web API's
// /api/v1/diff.
//
// A frame's Self is the value of samples whose innermost frame it is, its
// Total that of samples it appears in at all (once per sample, however deep
// the recursion). Shares divide by the profile's total value, so that
// ranges of different lengths or load compare: SelfShare = Self / Total of
// the profile. SelfDiff = SelfShare - BaseSelfShare, and likewise for
// TotalDiff; positive means a larger share of the target than of the base.
// Frames come sorted by the absolute difference named by OrderBy, largest
// first, then by name; past the limit, Truncated counts what was left out.
type Diff struct {
	SampleType string      `json:"sample_type"`
	Unit       string      `json:"unit"`
	Total      int64       `json:"total"`      // the target profile's total value
	BaseTotal  int64       `json:"base_total"` // the base profile's total value
	OrderBy    string      `json:"order_by"`   // "self" or "total"
	Frames     []DiffFrame `json:"frames"`
	Truncated  int         `json:"truncated"`
}

// DiffFrame is one function in a Diff.
type DiffFrame struct {
	Name           string  `json:"name"`
	Self           int64   `json:"self"`
	Total          int64   `json:"total"`
	BaseSelf       int64   `json:"base_self"`
	BaseTotal      int64   `json:"base_total"`
	SelfShare      float64 `json:"self_share"`
	TotalShare     float64 `json:"total_share"`
	BaseSelfShare  float64 `json:"base_self_share"`
	BaseTotalShare float64 `json:"base_total_share"`
	SelfDiff       float64 `json:"self_diff"`
	TotalDiff      float64 `json:"total_diff"`
}

// frameValues are one function's self and total in one profile.
type frameValues struct {
	self, total int64
	lastSample  int // the sample that last added to total, against double counting
}

// functionValues sums self and total per function name over p's samples of
// value index vi, and returns the profile's total.
func functionValues(ctx context.Context, p *profile.Profile, vi int) (map[string]*frameValues, int64, error) {
	out := make(map[string]*frameValues)
	namesOf := make(map[*profile.Location][]string) // innermost first
	var total int64
	for si, s := range p.Sample {
		if si%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
		}
		if vi >= len(s.Value) || s.Value[vi] <= 0 {
			continue
		}
		v := s.Value[vi]
		total += v
		leaf := true
		for _, loc := range s.Location {
			names, ok := namesOf[loc]
			if !ok {
				frames := locationFrames(loc) // outermost first
				for i := len(frames) - 1; i >= 0; i-- {
					names = append(names, frames[i].name)
				}
				namesOf[loc] = names
			}
			for _, name := range names {
				fv := out[name]
				if fv == nil {
					fv = &frameValues{lastSample: -1}
					out[name] = fv
				}
				if leaf {
					fv.self += v
					leaf = false
				}
				if fv.lastSample != si {
					fv.total += v
					fv.lastSample = si
				}
			}
		}
	}
	return out, total, nil
}

// DiffOptions choose what a Diff compares and how it orders frames.
type DiffOptions struct {
	SampleType string // "" for the target's default
	OrderBy    string // "self" (the default) or "total": whose share difference orders frames
	Limit      int    // most frames; 0 for all
}

// NewDiff compares target with base per function. A nil profile is an empty
// one; a base without the target's sample type counts as empty. It reads
// both profiles without changing them, and stops with ctx's error when ctx
// ends.
func NewDiff(ctx context.Context, target, base *profile.Profile, opts DiffOptions) (*Diff, error) {
	orderBy := opts.OrderBy
	if orderBy != "total" {
		orderBy = "self"
	}
	target, base = orEmpty(target), orEmpty(base)
	vi, err := sampleIndex(target, opts.SampleType)
	if err != nil {
		return nil, err
	}
	st := target.SampleType[vi]
	// The base's index of the same type; an empty base has Ember's types.
	bi, err := sampleIndex(base, st.Type)
	if err != nil {
		bi = len(base.SampleType) // no such values: the base counts as empty
	}
	cur, total, err := functionValues(ctx, target, vi)
	if err != nil {
		return nil, err
	}
	old, baseTotal, err := functionValues(ctx, base, bi)
	if err != nil {
		return nil, err
	}
	return newDiff(st, cur, total, old, baseTotal, orderBy, opts.Limit), nil
}

// NewDiffFromStacks is NewDiff of the profiles the store would build for
// the queries of target and base, from its leaner answers (not grouped):
// values per function are summed over their call trees, without a pprof
// profile. A nil or empty answer is an empty profile.
func NewDiffFromStacks(ctx context.Context, target, base *query.Stacks, opts DiffOptions) (*Diff, error) {
	orderBy := opts.OrderBy
	if orderBy != "total" {
		orderBy = "self"
	}
	tp, bp := stacksTypes(target), stacksTypes(base)
	vi, err := sampleIndex(tp, opts.SampleType)
	if err != nil {
		return nil, err
	}
	st := tp.SampleType[vi]
	bi, err := sampleIndex(bp, st.Type)
	if err != nil {
		bi = -1 // no such values: the base counts as empty
	}
	cur, total, err := stackFunctionValues(ctx, target, vi)
	if err != nil {
		return nil, err
	}
	old, baseTotal, err := stackFunctionValues(ctx, base, bi)
	if err != nil {
		return nil, err
	}
	return newDiff(st, cur, total, old, baseTotal, orderBy, opts.Limit), nil
}

// stackFunctionValues is functionValues for the samples of s (value index
// vi; -1 or no samples: none): from their call tree, a name's total being
// the sum of its outermost nodes on each path.
func stackFunctionValues(ctx context.Context, s *query.Stacks, vi int) (map[string]*frameValues, int64, error) {
	out := make(map[string]*frameValues)
	if s == nil || vi < 0 || len(s.Samples) == 0 {
		return out, 0, nil
	}
	if err := checkStacks(s); err != nil {
		return nil, 0, err
	}
	n := len(s.SampleTypes)
	b := newTreeBuilder(len(s.Frames) + len(s.TrieFrames)/4)
	value := func(i int) int64 { return s.Values[i*n+vi] }
	t, err := buildStacksTree(ctx, s, b, value, nil, false)
	if err != nil {
		return nil, 0, err
	}
	// Names by frame, numbered: frames of one name are one row.
	nameOf := make([]int32, len(t.frames))
	index := map[string]int32{}
	var names []string
	for id := 1; id < len(t.frames); id++ {
		name := t.frames[id].name
		k, ok := index[name]
		if !ok {
			k = int32(len(names))
			index[name] = k
			names = append(names, name)
		}
		nameOf[id] = k
	}
	values := make([]frameValues, len(names))
	onStack := make([]int32, len(names)) // nodes of each name on the path to the current one
	var path []int32
	for node := int32(1); node < int32(len(t.frameOf)); node++ {
		p := t.parent[node]
		for len(path) > 0 && path[len(path)-1] != p {
			onStack[nameOf[t.frameOf[path[len(path)-1]]]]--
			path = path[:len(path)-1]
		}
		path = append(path, node)
		k := nameOf[t.frameOf[node]]
		values[k].self += t.selfValue(node)
		if onStack[k] == 0 {
			values[k].total += t.total[node]
		}
		onStack[k]++
	}
	for k, name := range names {
		if values[k].total > 0 { // not a frame of samples left out
			out[name] = &values[k]
		}
	}
	return out, t.total[0], nil
}

// newDiff compares the values per function of two profiles, cur of the
// target and old of the base.
func newDiff(st *profile.ValueType, cur map[string]*frameValues, total int64, old map[string]*frameValues, baseTotal int64, orderBy string, limit int) *Diff {
	share := func(v, of int64) float64 {
		if of == 0 {
			return 0
		}
		return float64(v) / float64(of)
	}
	frames := make([]DiffFrame, 0, len(cur)+len(old))
	add := func(name string) {
		f := DiffFrame{Name: name}
		if fv := cur[name]; fv != nil {
			f.Self, f.Total = fv.self, fv.total
		}
		if fv := old[name]; fv != nil {
			f.BaseSelf, f.BaseTotal = fv.self, fv.total
		}
		f.SelfShare, f.TotalShare = share(f.Self, total), share(f.Total, total)
		f.BaseSelfShare, f.BaseTotalShare = share(f.BaseSelf, baseTotal), share(f.BaseTotal, baseTotal)
		f.SelfDiff, f.TotalDiff = f.SelfShare-f.BaseSelfShare, f.TotalShare-f.BaseTotalShare
		frames = append(frames, f)
	}
	for name := range cur {
		add(name)
	}
	for name := range old {
		if cur[name] == nil {
			add(name)
		}
	}
	key := func(f DiffFrame) float64 {
		if orderBy == "total" {
			return math.Abs(f.TotalDiff)
		}
		return math.Abs(f.SelfDiff)
	}
	slices.SortFunc(frames, func(a, b DiffFrame) int {
		return cmp.Or(cmp.Compare(key(b), key(a)), strings.Compare(a.Name, b.Name))
	})
	d := &Diff{SampleType: st.Type, Unit: st.Unit, Total: total, BaseTotal: baseTotal, OrderBy: orderBy, Frames: frames}
	if limit > 0 && len(frames) > limit {
		d.Frames, d.Truncated = frames[:limit], len(frames)-limit
	}
	return d
}
