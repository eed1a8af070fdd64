package report

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/google/pprof/profile"
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

// groupDetails are the labels a group's hover lists besides its own.
var groupDetails = []string{"comm", "pid", "exe", "container"}

// maxGroupValues bounds the values of each detail label listed per group.
const maxGroupValues = 5

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
	type detail map[string]int64 // value of a detail label -> its value sum
	type group struct {
		total   int64
		details map[string]detail
	}
	byValue := map[string]*group{}
	for _, s := range p.Sample {
		if vi >= len(s.Value) || s.Value[vi] <= 0 {
			continue
		}
		v := groupValue(s, groupBy)
		g := byValue[v]
		if g == nil {
			g = &group{details: map[string]detail{}}
			byValue[v] = g
		}
		g.total += s.Value[vi]
		for _, name := range groupDetails {
			if name == groupBy {
				continue
			}
			dv := groupValue(s, name)
			if dv == NoGroup {
				continue
			}
			if g.details[name] == nil {
				g.details[name] = detail{}
			}
			g.details[name][dv] += s.Value[vi]
		}
	}
	out := make([]FlameGroup, 0, len(byValue))
	for v, g := range byValue {
		fg := FlameGroup{Value: v, Total: g.total, Labels: map[string]GroupLabel{}}
		for name, d := range g.details {
			values := make([]string, 0, len(d))
			for dv := range d {
				values = append(values, dv)
			}
			slices.SortFunc(values, func(a, b string) int { return cmp.Or(cmp.Compare(d[b], d[a]), cmp.Compare(a, b)) })
			fg.Labels[name] = GroupLabel{Values: values[:min(len(values), maxGroupValues)], Count: len(values)}
		}
		out = append(out, fg)
	}
	slices.SortFunc(out, func(a, b FlameGroup) int { return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Value, b.Value)) })
	return out
}
