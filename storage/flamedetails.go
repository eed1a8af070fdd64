package storage

import (
	"cmp"
	"slices"

	"github.com/ember-profiler/ember/storage/query"
)

// detailRows sums the label sets' records into a row per group and per
// (group, detail label, value): a label set's own labels repeat across
// thousands of processes, its pid does not, and a row each is what the
// hover needs. Of a (group, label) with more than query.GroupDetailValues
// values, only the largest of each sample type are rows, and a count row
// says how many there were: a day of a churning host gave 116,000 rows,
// of which the hover lists five per label.
func (a *stackSums) detailRows(values func(*record) []int64) []query.GroupDetail {
	type key struct{ group, label, value int32 }
	index := make(map[key]int32, len(a.sets)+len(a.groups))
	var keys []key
	var sums []record
	add := func(k key, r *record) {
		i, ok := index[k]
		if !ok {
			i = int32(len(keys))
			index[k] = i
			keys = append(keys, k)
			sums = append(sums, record{})
		}
		sums[i].add(r)
	}
	n := int32(len(query.GroupDetailLabels))
	for j := range a.sets {
		d := &a.sets[j]
		if !d.seen {
			continue
		}
		add(key{d.group, -1, 0}, &d.rec)
		for i, v := range a.setLabels[d.labels : d.labels+n] {
			if v != 0 && query.GroupDetailLabels[i] != a.groupBy { // 0: ""
				add(key{d.group, int32(i), v}, &d.rec)
			}
		}
	}
	index = nil
	// The rows of each (group, label) together; totals first.
	order := make([]int32, len(keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		kx, ky := keys[x], keys[y]
		return cmp.Or(cmp.Compare(kx.group, ky.group), cmp.Compare(kx.label, ky.label))
	})
	vals := make([][]int64, len(keys))
	for i := range keys {
		vals[i] = values(&sums[i])
	}
	sums = nil
	row := func(i int32) query.GroupDetail {
		k := keys[i]
		return query.GroupDetail{Group: k.group, Label: k.label, Value: a.values[k.value], Values: vals[i]}
	}
	rows := make([]query.GroupDetail, 0, min(len(keys), 64<<10))
	for start := 0; start < len(order); {
		k := keys[order[start]]
		end := start + 1
		for end < len(order) && keys[order[end]].group == k.group && keys[order[end]].label == k.label {
			end++
		}
		run := order[start:end]
		start = end
		if k.label < 0 || len(run) <= query.GroupDetailValues {
			for _, i := range run {
				rows = append(rows, row(i))
			}
			continue
		}
		// The largest of each sample type, as the hover picks them (by
		// sum, then by value), and per type how many values are above 0.
		counts := make([]int64, len(vals[run[0]]))
		var kept []int32
		for t := range counts {
			slices.SortFunc(run, func(x, y int32) int {
				return cmp.Or(cmp.Compare(vals[y][t], vals[x][t]), cmp.Compare(a.values[keys[x].value], a.values[keys[y].value]))
			})
			for n, i := range run {
				if vals[i][t] <= 0 {
					break
				}
				counts[t]++
				if n < query.GroupDetailValues && !slices.Contains(kept, i) {
					kept = append(kept, i)
					rows = append(rows, row(i))
				}
			}
		}
		rows = append(rows, query.GroupDetail{Group: k.group, Label: k.label, Count: true, Values: counts})
	}
	return rows
}
