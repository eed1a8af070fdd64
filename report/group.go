package report

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/query"
)

// FlameOptions choose what NewFlameGraphWith draws.
type FlameOptions struct {
	SampleType string // "" for the profile's default
	MaxNodes   int    // the node budget, at least MinNodes
	// GroupBy, a label name such as "comm", puts a node per value of that
	// label under the root and each sample's stack under its value's, so
	// that the processes (or containers...) are told apart before their
	// functions are merged. A sample without the label goes under NoGroup.
	GroupBy string
	// MaxOtherShare, when above 0, grows the budget past MaxNodes (by
	// doubling, up to NodeCap) until the pruned "(other)" nodes hold at
	// most this share of the total: a flat profile of many processes can
	// leave 40% in grey boxes at a fixed budget.
	MaxOtherShare float64
	NodeCap       int
}

// NoGroup is the group of samples without the GroupBy label.
const NoGroup = "(none)"

// GroupDetailLabels are the labels a group's hover lists besides its own.
var GroupDetailLabels = query.GroupDetailLabels

// maxGroupValues bounds the values of each detail label listed per group.
const maxGroupValues = query.GroupDetailValues

// FlameGroup describes one value of the GroupBy label: its share and a few
// values of the other identity labels it was seen with (the pids and exe of
// a comm), each list cut at a handful, with Count the distinct values.
type FlameGroup struct {
	Value  string                `json:"value"`
	Total  int64                 `json:"total"`
	Labels map[string]GroupLabel `json:"labels"`
}

// GroupLabel is a few values of one label in a group, the largest first,
// and how many distinct values there were.
type GroupLabel struct {
	Values []string `json:"values"`
	Count  int      `json:"count"`
}

// groupValue is sample s's value of label name, numeric labels (pid) in
// decimal, NoGroup when it has none.
func groupValue(s *profile.Sample, name string) string {
	if v := s.Label[name]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if v := s.NumLabel[name]; len(v) > 0 {
		return strconv.FormatInt(v[0], 10)
	}
	return NoGroup
}

// groups describes each value of label groupBy in p, the largest first.
func groups(p *profile.Profile, vi int, groupBy string) []FlameGroup {
	acc := newGroupSums(groupBy)
	for _, s := range p.Sample {
		if vi >= len(s.Value) || s.Value[vi] <= 0 {
			continue
		}
		acc.add(groupValue(s, groupBy), s.Value[vi], func(name string) string { return groupValue(s, name) })
	}
	return acc.groups()
}

// groupSums sums values per group, and per value of each detail label
// within a group.
type groupSums struct {
	groupBy string
	byValue map[string]*groupSum
}

type groupSum struct {
	total   int64
	details map[string]map[string]int64 // detail label -> its value -> sum
	// counts are the distinct values of the detail labels whose values
	// were not all added (query.GroupDetail.Count).
	counts map[string]int
}

func newGroupSums(groupBy string) *groupSums {
	return &groupSums{groupBy: groupBy, byValue: map[string]*groupSum{}}
}

// add counts value v in group g; label gives the sample's value of a detail
// label, NoGroup when it has none.
func (a *groupSums) add(g string, v int64, label func(name string) string) {
	a.addTotal(g, v)
	for _, name := range GroupDetailLabels {
		if dv := label(name); dv != NoGroup {
			a.addDetail(g, name, dv, v)
		}
	}
}

func (a *groupSums) group(g string) *groupSum {
	sum := a.byValue[g]
	if sum == nil {
		sum = &groupSum{details: map[string]map[string]int64{}}
		a.byValue[g] = sum
	}
	return sum
}

// addTotal counts value v in group g.
func (a *groupSums) addTotal(g string, v int64) { a.group(g).total += v }

// addDetail counts value v for the value dv of detail label name in group
// g; the grouping label itself is not a detail.
func (a *groupSums) addDetail(g, name, dv string, v int64) {
	if name == a.groupBy {
		return
	}
	sum := a.group(g)
	if sum.details[name] == nil {
		sum.details[name] = map[string]int64{}
	}
	sum.details[name][dv] += v
}

// setCount says that detail label name had count distinct values in group
// g, of which only the largest are added.
func (a *groupSums) setCount(g, name string, count int) {
	if name == a.groupBy {
		return
	}
	sum := a.group(g)
	if sum.counts == nil {
		sum.counts = map[string]int{}
	}
	sum.counts[name] = count
}

func (a *groupSums) groups() []FlameGroup {
	out := make([]FlameGroup, 0, len(a.byValue))
	for v, g := range a.byValue {
		fg := FlameGroup{Value: v, Total: g.total, Labels: map[string]GroupLabel{}}
		for name, d := range g.details {
			count, ok := g.counts[name]
			if !ok {
				count = len(d)
			}
			fg.Labels[name] = GroupLabel{Values: largestValues(d, maxGroupValues), Count: count}
		}
		out = append(out, fg)
	}
	slices.SortFunc(out, func(a, b FlameGroup) int { return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Value, b.Value)) })
	return out
}

// largestValues is the n values of sums largest by sum, then by value. A
// day of a churning host gives a comm 100,000 pids: sorting them all, with
// two map lookups per comparison, was a fifth of the day's flame graph.
func largestValues(sums map[string]int64, n int) []string {
	type valueSum struct {
		value string
		sum   int64
	}
	if n <= 0 {
		return []string{}
	}
	before := func(a, b valueSum) bool { return a.sum > b.sum || a.sum == b.sum && a.value < b.value }
	top := make([]valueSum, 0, n+1)
	for v, sum := range sums {
		vs := valueSum{v, sum}
		if len(top) == n && !before(vs, top[n-1]) {
			continue
		}
		i := len(top)
		for i > 0 && before(vs, top[i-1]) {
			i--
		}
		top = slices.Insert(top, i, vs)
		top = top[:min(len(top), n)]
	}
	out := make([]string, len(top))
	for i, vs := range top {
		out[i] = vs.value
	}
	return out
}
