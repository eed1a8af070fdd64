package web

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage/query"
)

// GET /api/v1/series?from=&to=&query=&step=&group_by=&limit=&type=
//
// CPU use in cores over time (type=offcpu: threads off the CPU, on
// average), one series per value of group_by, the busiest first, and the
// rest summed into "other". limit is lowered so that the answer holds at
// most query.MaxSeriesValues points.
func (s *Server) series(c echo.Context) error {
	q := c.QueryParams()
	from, to, err := timeRange(q, "from", "to", s.now(), s.limits.MaxRange)
	if err != nil {
		return err
	}
	step, err := s.stepParam(q.Get("step"), to.Sub(from))
	if err != nil {
		return err
	}
	groupBy := q.Get("group_by")
	if groupBy != "" {
		if err := labelNameParam("group_by", groupBy); err != nil {
			return err
		}
	}
	limit, err := intParam(q, "limit", s.limits.MaxSeries, 1, s.limits.MaxSeries)
	if err != nil {
		return err
	}
	points := int((to.Sub(from) + step - 1) / step)
	limit = min(limit, query.SeriesLimit(points))
	sampleType, err := typeParam(q, "type")
	if err != nil {
		return err
	}
	sel := q.Get("query")
	series, err := runQuery(s, c, func(ctx context.Context) ([]Series, error) {
		return s.store.Series(ctx, from, to, step, sel, groupBy, sampleType, limit)
	})
	if err != nil {
		return storeError(err, "query", "group_by")
	}
	out := seriesResponse(series, from, to, step, groupBy, limit)
	if sampleType != "" && sampleType != schema.CPU.Type {
		out.Unit = seriesUnit(sampleType)
	} else {
		out.CPUs = s.hostCPUs
	}
	return writeJSON(c, out)
}

// minStep is the finest step a series may have: the daemon drains samples
// about once a second, so finer buckets would only show the drain's rhythm.
const minStep = time.Second

// stepParam reads step, defaulting to about 240 points over the range.
func (s *Server) stepParam(v string, length time.Duration) (time.Duration, error) {
	if v == "" {
		step := (length/240 + time.Second - 1).Truncate(time.Second)
		return max(step, minStep), nil
	}
	step, err := parseDuration(v)
	if err != nil {
		return 0, badParam("step", "step: cannot parse %q: %v", v, err)
	}
	if step < minStep {
		return 0, badParam("step", "step: %s is below the minimum of %s", step, minStep)
	}
	if points := int64((length + step - 1) / step); points > int64(s.limits.MaxPoints) {
		exact := (length + time.Duration(s.limits.MaxPoints) - 1) / time.Duration(s.limits.MaxPoints)
		least := max(minStep, (exact + time.Second - 1).Truncate(time.Second))
		return 0, badParam("step", "step: %s is too small for the range: %d points, at most %d; use a step of at least %s",
			step, points, s.limits.MaxPoints, least)
	}
	return step, nil
}

// SeriesResponse is the JSON of /api/v1/series.
type SeriesResponse struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	StepSeconds float64   `json:"step_seconds"`
	// Unit is "cores" for CPU time, "threads" for time off the CPU (how
	// many were off it, on average), else the type's unit per second.
	Unit string `json:"unit"`
	// CPUs is the host's CPU count: no point can honestly exceed it.
	CPUs    int          `json:"cpus,omitempty"`
	GroupBy string       `json:"group_by,omitempty"`
	Series  []SeriesJSON `json:"series"`
	// Truncated counts the groups left out past limit, the least busy;
	// Other sums them (absent when none is left out).
	Truncated int         `json:"truncated"`
	Other     *SeriesJSON `json:"other,omitempty"`
}

// SeriesJSON is one series: its labels and its points as [unix_seconds,
// cores] pairs in time order.
type SeriesJSON struct {
	Labels map[string]string `json:"labels"`
	Points [][2]float64      `json:"points"`
}

func seriesResponse(in []Series, from, to time.Time, step time.Duration, groupBy string, limit int) SeriesResponse {
	type ranked struct {
		s   SeriesJSON
		sum float64
		key string
	}
	all := make([]ranked, 0, len(in))
	var other *SeriesJSON
	folded := 0
	for _, sr := range in {
		r := ranked{s: seriesJSON(sr)}
		for _, pt := range r.s.Points {
			r.sum += pt[1]
		}
		if sr.Folded > 0 { // the store's sum of the groups past limit
			folded += sr.Folded
			other = addSeries(other, r.s)
			continue
		}
		r.key = labelsKey(r.s.Labels)
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.sum, a.sum), strings.Compare(a.key, b.key))
	})
	out := SeriesResponse{From: from.UTC(), To: to.UTC(), StepSeconds: step.Seconds(), Unit: "cores",
		GroupBy: groupBy, Series: []SeriesJSON{}}
	for i, r := range all {
		if i >= limit {
			folded++
			other = addSeries(other, r.s)
			continue
		}
		out.Series = append(out.Series, r.s)
	}
	out.Truncated, out.Other = folded, other
	return out
}

// seriesJSON converts a series' points to [unix_seconds, cores] pairs.
func seriesJSON(sr Series) SeriesJSON {
	out := SeriesJSON{Labels: sr.Labels, Points: make([][2]float64, 0, len(sr.Points))}
	if out.Labels == nil || sr.Folded > 0 {
		out.Labels = map[string]string{}
	}
	for _, pt := range sr.Points {
		if math.IsNaN(pt.Cores) || math.IsInf(pt.Cores, 0) {
			continue // JSON has no NaN; a gap is the honest rendering
		}
		out.Points = append(out.Points, [2]float64{float64(pt.Time.UnixMilli()) / 1e3, pt.Cores})
	}
	return out
}

// addSeries adds s's points to sum's, matched by time.
func addSeries(sum *SeriesJSON, s SeriesJSON) *SeriesJSON {
	if sum == nil {
		return &SeriesJSON{Labels: map[string]string{}, Points: slices.Clone(s.Points)}
	}
	at := make(map[float64]int, len(sum.Points))
	for i, pt := range sum.Points {
		at[pt[0]] = i
	}
	for _, pt := range s.Points {
		if i, ok := at[pt[0]]; ok {
			sum.Points[i][1] += pt[1]
		} else {
			sum.Points = append(sum.Points, pt)
		}
	}
	slices.SortFunc(sum.Points, func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) })
	return sum
}

func labelsKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + l[k] + "\x00")
	}
	return b.String()
}

// seriesUnit is the unit of a series of sample type t, not CPU time.
func seriesUnit(t string) string {
	if t == schema.OffCPU.Type {
		return "threads"
	}
	for _, k := range schema.Known {
		if k.Type == t {
			return k.Unit + "/s"
		}
	}
	return ""
}
