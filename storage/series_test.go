package storage

import (
	"context"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

// storedInterval is what a test appended: its span and its CPU.
type storedInterval struct {
	start, end time.Time
	cpuNanos   int64
}

// appendBusyHost appends the intervals of a daemon on a host of cpus busy
// CPUs: 2 s intervals, a restart whose first interval is 11.7 s long and
// crosses a minute boundary, another one, then 10 s intervals.
func appendBusyHost(t *testing.T, s *Store, cpus int) []storedInterval {
	t.Helper()
	g := backfill.New(backfill.Config{Seed: 3, Processes: 20, StacksPerProgram: 20, CPUs: cpus, FrequencyHz: 20})
	var out []storedInterval
	add := func(start time.Time, d time.Duration) {
		p := g.Interval(start, d)
		if err := s.Append(context.Background(), p, nil); err != nil {
			t.Fatalf("Append at %s: %v", start, err)
		}
		_, cpu := totals(p)
		out = append(out, storedInterval{start, start.Add(d), cpu})
	}
	for at := t0; at.Before(t0.Add(3*time.Minute + 50*time.Second)); at = at.Add(2 * time.Second) {
		add(at, 2*time.Second)
	}
	add(t0.Add(3*time.Minute+52300*time.Millisecond), 11700*time.Millisecond) // the first interval after a restart
	for at := t0.Add(4*time.Minute + 4*time.Second); at.Before(t0.Add(8 * time.Minute)); at = at.Add(2 * time.Second) {
		add(at, 2*time.Second)
	}
	add(t0.Add(8*time.Minute+1500*time.Millisecond), 8500*time.Millisecond)
	for at := t0.Add(8*time.Minute + 10*time.Second); at.Before(t0.Add(12 * time.Minute)); at = at.Add(10 * time.Second) {
		add(at, 10*time.Second)
	}
	return out
}

// TestSeriesSpreadsIntervals checks, over random ranges and steps, that a
// series adds up to the stored CPU in its range, each interval counted in
// proportion to its overlap, and that a host of N busy CPUs never shows
// more than N cores. Counting each interval in the step holding its start
// showed 4 and 0 cores alternately for 2 s intervals at a 1 s step on 2 CPUs,
// and 23 cores for the 11.7 s interval.
func TestSeriesSpreadsIntervals(t *testing.T) {
	const cpus = 2
	s := openTest(t, Options{})
	stored := appendBusyHost(t, s, cpus)
	const longest = 11700 * time.Millisecond // one interval's jitter at roll-up edges
	ctx := context.Background()
	r := rand.New(rand.NewSource(1))
	steps := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 7 * time.Second, 10 * time.Second,
		time.Minute, 90 * time.Second, 10 * time.Minute}
	for i := range 300 {
		from := t0.Add(-30*time.Second + time.Duration(r.Int63n(int64(13*time.Minute))))
		if i%3 == 0 {
			from = from.Truncate(time.Second)
		}
		to := from.Add(time.Second + time.Duration(r.Int63n(int64(12*time.Minute))))
		step := steps[r.Intn(len(steps))]
		ser, err := s.Series(ctx, SeriesQuery{From: from, To: to, Step: step})
		if err != nil {
			t.Fatalf("Series(%s, %s, %s): %v", from, to, step, err)
		}
		var want float64
		for _, iv := range stored {
			lo, hi := maxTime(iv.start, from), minTime(iv.end, to)
			if hi.After(lo) {
				want += float64(iv.cpuNanos) * float64(hi.Sub(lo)) / float64(iv.end.Sub(iv.start))
			}
		}
		var got float64
		if len(ser) == 1 {
			for _, pt := range ser[0].Points {
				length := min(step, to.Sub(pt.Time))
				got += pt.Cores * float64(length)
				bound := float64(cpus) * (1 + 1e-9)
				if step >= time.Minute { // roll-ups span their bucket, not their intervals
					bound += float64(cpus) * float64(longest) / float64(length)
				}
				if pt.Cores > bound {
					t.Errorf("%s..%s step %s: %v cores at %s on a host of %d CPUs", from.Format("15:04:05.000"), to.Format("15:04:05.000"),
						step, pt.Cores, pt.Time.Format("15:04:05.000"), cpus)
				}
			}
		} else if len(ser) > 1 {
			t.Fatalf("%d series, want one", len(ser))
		}
		tol := 1e-6 * want
		if step >= time.Minute {
			tol += float64(cpus) * float64(longest)
		}
		if math.Abs(got-want) > tol+1 {
			t.Errorf("%s..%s step %s: series hold %.0f ns of CPU, the stored intervals %.0f", from.Format("15:04:05.000"), to.Format("15:04:05.000"),
				step, got, want)
		}
	}
}

// TestSeriesFineStep is the case the issue measured: 2 s intervals read at a
// 1 s step on a busy 2-CPU host read 2 cores at every step.
func TestSeriesFineStep(t *testing.T) {
	s := openTest(t, Options{})
	appendBusyHost(t, s, 2)
	ser, err := s.Series(context.Background(), SeriesQuery{From: t0.Add(time.Minute), To: t0.Add(time.Minute + 20*time.Second), Step: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range ser[0].Points {
		if math.Abs(pt.Cores-2) > 1e-9 {
			t.Errorf("%s: %v cores, want 2", pt.Time.Format("15:04:05"), pt.Cores)
		}
	}
	// Across the restart: the 11.7 s interval is 2 cores too, not 23 in one step.
	ser, err = s.Series(context.Background(), SeriesQuery{From: t0.Add(3*time.Minute + 53*time.Second), To: t0.Add(4*time.Minute + 4*time.Second), Step: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range ser[0].Points {
		if math.Abs(pt.Cores-2) > 1e-9 {
			t.Errorf("%s: %v cores, want 2", pt.Time.Format("15:04:05"), pt.Cores)
		}
	}
}

// TestSeriesTopGroups checks that a grouped series with a limit keeps the
// busiest groups and sums the rest into one series, adding up to the total.
func TestSeriesTopGroups(t *testing.T) {
	s := openTest(t, Options{})
	g := backfill.New(backfill.Config{Seed: 5, Processes: 40, StacksPerProgram: 30, CPUs: 2, FrequencyHz: 20, TransientPerMin: 30})
	appendRange(t, s, g, t0, 10*time.Second, 30, nil)
	ctx := context.Background()
	q := SeriesQuery{From: t0, To: t0.Add(5 * time.Minute), Step: 7 * time.Second, GroupBy: "pid"}
	all, err := s.Series(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 20 {
		t.Fatalf("%d pids, want more than 20 for this test", len(all))
	}
	totalOf := func(sr Series) (sum float64) {
		for _, pt := range sr.Points {
			sum += pt.Cores
		}
		return sum
	}
	byPid := make(map[string]float64)
	for _, sr := range all {
		if sr.Folded != 0 {
			t.Fatalf("series folded without a limit: %+v", sr.Labels)
		}
		byPid[sr.Labels["pid"]] = totalOf(sr)
	}
	q.Limit = 5
	top, err := s.Series(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 6 || top[5].Folded != len(all)-5 || len(top[5].Labels) != 0 {
		t.Fatalf("limit 5: %d series, the last folding %d groups; want 6, the last folding %d", len(top), top[len(top)-1].Folded, len(all)-5)
	}
	var kept []float64
	for _, sr := range top[:5] {
		want := byPid[sr.Labels["pid"]]
		if got := totalOf(sr); math.Abs(got-want) > 1e-9*want {
			t.Errorf("pid %s: %v, want %v as without a limit", sr.Labels["pid"], got, want)
		}
		kept = append(kept, byPid[sr.Labels["pid"]])
	}
	least := kept[0]
	for _, k := range kept {
		least = min(least, k)
	}
	var rest float64
	for pid, sum := range byPid {
		kept := false
		for _, sr := range top[:5] {
			kept = kept || sr.Labels["pid"] == pid
		}
		if !kept {
			rest += sum
			if sum > least {
				t.Errorf("pid %s (%v) left out, busier than pid kept with %v", pid, sum, least)
			}
		}
	}
	if got := totalOf(top[5]); math.Abs(got-rest) > 1e-9*rest {
		t.Errorf("the folded series sums to %v, the groups left out to %v", got, rest)
	}
	// Points per step add up too.
	for i := range top[0].Points {
		var sumTop, sumAll float64
		for _, sr := range top {
			sumTop += sr.Points[i].Cores
		}
		for _, sr := range all {
			sumAll += sr.Points[i].Cores
		}
		if math.Abs(sumTop-sumAll) > 1e-9 {
			t.Errorf("step %d: %v cores with a limit, %v without", i, sumTop, sumAll)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
