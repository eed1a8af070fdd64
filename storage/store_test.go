package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

func TestRoundTrip(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	host := map[string]string{"host": "web-1"}
	ps := appendRange(t, s, g, t0.Add(5*time.Second), 10*time.Second, 30, host)
	got, err := s.Query(context.Background(), ProfileQuery{From: t0, To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := got.CheckValid(); err != nil {
		t.Fatalf("CheckValid: %v", err)
	}
	want := mergeCanonical(t, ps, host)
	if c := canonical(got, nil); c != want {
		t.Errorf("query differs from profile.Merge of the inputs:\n got %.2000s\nwant %.2000s", c, want)
	}
}

func TestQuerySelectorAndRange(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	ps := appendRange(t, s, g, t0, 10*time.Second, 60, nil)
	sel, err := ParseSelector(`{comm=~"post.*|nginx", pid!="1"}`)
	if err != nil {
		t.Fatal(err)
	}
	// Intervals 12..41 start in [t0+2m, t0+7m).
	got, err := s.Query(context.Background(), ProfileQuery{From: t0.Add(2 * time.Minute), To: t0.Add(7 * time.Minute), Selector: sel})
	if err != nil {
		t.Fatal(err)
	}
	var want []*profile.Profile
	for _, p := range ps[12:42] {
		p = p.Copy()
		kept := p.Sample[:0]
		for _, smp := range p.Sample {
			if c := smp.Label["comm"][0]; (c == "postgres" || c == "nginx") && smp.NumLabel["pid"][0] != 1 {
				kept = append(kept, smp)
			}
		}
		p.Sample = kept
		want = append(want, p)
	}
	if c, w := canonical(got, nil), mergeCanonical(t, want, nil); c != w {
		t.Errorf("selected query differs from the filtered merge:\n got %.1500s\nwant %.1500s", c, w)
	}
	if n, _ := totals(got); n == 0 {
		t.Error("selector matched nothing; the test needs postgres or nginx samples")
	}
	for _, smp := range got.Sample {
		if len(smp.NumLabel["pid"]) != 1 || len(smp.Label["comm"]) != 1 || len(smp.Label["exe"]) != 1 || len(smp.Label["cgroup"]) != 1 {
			t.Fatalf("sample labels %v %v: want comm, exe, cgroup and a numeric pid", smp.Label, smp.NumLabel)
		}
	}
	// Nothing outside the data.
	empty, err := s.Query(context.Background(), ProfileQuery{From: t0.Add(-time.Hour), To: t0})
	if err != nil || len(empty.Sample) != 0 || empty.CheckValid() != nil {
		t.Errorf("query before the data = %d samples, %v", len(empty.Sample), err)
	}
}

// TestRollupsMatchRaw appends 2.5 hours and checks that queries over ranges
// crossing minute, 10-minute and hour edges give the same result from
// roll-ups as from the raw intervals alone, and that roll-ups are used.
func TestRollupsMatchRaw(t *testing.T) {
	s := openTest(t, Options{})
	g := backfill.New(backfill.Config{Seed: 3, Processes: 20, StacksPerProgram: 40, CPUs: 1, FrequencyHz: 5})
	start := t0.Add(-7 * time.Minute)
	appendRange(t, s, g, start, 10*time.Second, 900, map[string]string{"host": "a"})
	ctx := context.Background()
	ranges := [][2]time.Duration{
		{0, 150 * time.Minute},
		{13*time.Minute + 7*time.Second, 97*time.Minute + 3*time.Second},
		{59 * time.Minute, 61 * time.Minute},
		{3*time.Minute + 30*time.Second, 3*time.Minute + 45*time.Second},
		{65 * time.Minute, 130 * time.Minute},
	}
	for _, r := range ranges {
		q := ProfileQuery{From: start.Add(r[0]), To: start.Add(r[1])}
		s.opts.noRollups = false
		fast, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		s.opts.noRollups = true
		raw, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if canonical(fast, nil) != canonical(raw, nil) {
			t.Errorf("range %v: roll-ups and raw intervals differ", r)
		}
	}
	s.opts.noRollups = false
	plan := s.index.plan(nil, start.UnixNano(), start.Add(150*time.Minute).UnixNano(), numLevels-1)
	levels := map[int]int{}
	for _, pb := range plan {
		levels[pb.level]++
	}
	// Data from 9:53 to 12:23: 9:53-10:00 as 1m, 10:00-12:00 hourly,
	// 12:00-12:20 as 10m, 12:20-12:22 as 1m, and the last minute, not yet
	// closed, as 6 raw intervals.
	if levels[3] != 2 || levels[2] != 2 || levels[1] != 9 || levels[0] != 6 {
		t.Errorf("plan for 2.5 h uses blocks per level %v, want 2 hourly, 2 10-minute, 9 1-minute and 6 raw", levels)
	}

	// An interval that arrives late, into a bucket already rolled up.
	late := g.Interval(t0.Add(30*time.Minute+5*time.Second), 10*time.Second)
	if err := s.Append(ctx, late, map[string]string{"host": "a"}); err != nil {
		t.Fatal(err)
	}
	q := ProfileQuery{From: t0, To: t0.Add(2 * time.Hour)}
	fast, err := s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	s.opts.noRollups = true
	raw, err := s.Query(ctx, q)
	s.opts.noRollups = false
	if err != nil {
		t.Fatal(err)
	}
	if canonical(fast, nil) != canonical(raw, nil) {
		t.Error("after a late interval, roll-ups and raw intervals differ")
	}
}

func TestSeries(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	ps := appendRange(t, s, g, t0, 10*time.Second, 36, map[string]string{"host": "h"}) // 6 minutes
	ctx := context.Background()
	ser, err := s.Series(ctx, SeriesQuery{From: t0, To: t0.Add(6 * time.Minute), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(ser) != 1 || len(ser[0].Points) != 6 || len(ser[0].Labels) != 0 {
		t.Fatalf("series = %+v, want one series of 6 points without labels", ser)
	}
	for i, pt := range ser[0].Points {
		var cpu int64
		for _, p := range ps[i*6 : i*6+6] {
			_, c := totals(p)
			cpu += c
		}
		if want := float64(cpu) / float64(time.Minute); pt.Cores != want || !pt.Time.Equal(t0.Add(time.Duration(i)*time.Minute)) {
			t.Errorf("point %d = %v %v, want %v %v", i, pt.Time, pt.Cores, t0.Add(time.Duration(i)*time.Minute), want)
		}
	}

	// Group by comm: one series per comm, adding up to the total.
	byComm, err := s.Series(ctx, SeriesQuery{From: t0, To: t0.Add(6 * time.Minute), Step: 2 * time.Minute, GroupBy: "comm"})
	if err != nil {
		t.Fatal(err)
	}
	comms, err := s.LabelValues(ctx, "comm", t0, t0.Add(6*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(byComm) != len(comms) {
		t.Fatalf("%d series grouped by comm, want one per comm %v", len(byComm), comms)
	}
	for i := range 3 {
		var sum float64
		for j, sr := range byComm {
			if sr.Labels["comm"] != comms[j] {
				t.Fatalf("series %d labels %v, want comm=%s (sorted)", j, sr.Labels, comms[j])
			}
			sum += sr.Points[i].Cores
		}
		want := (ser[0].Points[2*i].Cores + ser[0].Points[2*i+1].Cores) / 2
		if d := sum - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("step %d: groups add up to %v cores, want %v", i, sum, want)
		}
	}

	// A label no sample has: one series, for the value "".
	none, err := s.Series(ctx, SeriesQuery{From: t0, To: t0.Add(6 * time.Minute), Step: time.Minute, GroupBy: "nosuchlabel"})
	if err != nil || len(none) != 1 || len(none[0].Labels) != 0 {
		t.Errorf("group by a missing label = %+v, %v; want one series without labels", none, err)
	}
}

func TestLabelNamesAndValues(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	appendRange(t, s, g, t0, 10*time.Second, 6, map[string]string{"host": "web-1", "zone": "b"})
	appendRange(t, s, g, t0.Add(time.Hour), 10*time.Second, 6, map[string]string{"host": "web-2"})
	ctx := context.Background()
	names, err := s.LabelNames(ctx, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := "cgroup comm container exe host pid zone"; strings.Join(names, " ") != want {
		t.Errorf("label names = %v, want %s", names, want)
	}
	hosts, err := s.LabelValues(ctx, "host", t0, t0.Add(2*time.Hour))
	if err != nil || strings.Join(hosts, " ") != "web-1 web-2" {
		t.Errorf("host values over both = %v, %v", hosts, err)
	}
	hosts, err = s.LabelValues(ctx, "host", t0.Add(time.Hour), t0.Add(2*time.Hour))
	if err != nil || strings.Join(hosts, " ") != "web-2" {
		t.Errorf("host values over the second hour = %v, %v", hosts, err)
	}
	pids, err := s.LabelValues(ctx, "pid", t0, t0.Add(time.Minute))
	if err != nil || len(pids) < 5 {
		t.Errorf("pid values = %v, %v; want several", pids, err)
	}
	none, err := s.LabelNames(ctx, t0.Add(-time.Hour), t0)
	if err != nil || len(none) != 0 {
		t.Errorf("label names before the data = %v, %v", none, err)
	}
}

func TestBadQueries(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.Query(ctx, ProfileQuery{From: t0, To: t0.Add(-time.Second)}); err == nil || !strings.Contains(err.Error(), "before it starts") {
		t.Errorf("To before From: %v", err)
	}
	if _, err := s.Query(ctx, ProfileQuery{To: t0}); err == nil {
		t.Error("no From: no error")
	}
	if _, err := s.Series(ctx, SeriesQuery{From: t0, To: t0.Add(24 * time.Hour), Step: time.Second}); err == nil || !strings.Contains(err.Error(), "more than 10000") {
		t.Errorf("86,400 points: %v", err)
	}
	if _, err := s.Series(ctx, SeriesQuery{From: t0, To: t0.Add(time.Hour)}); err == nil {
		t.Error("zero step: no error")
	}
	if _, err := s.Series(ctx, SeriesQuery{From: t0, To: t0.Add(time.Hour), Step: time.Minute, GroupBy: "a b"}); err == nil {
		t.Error("bad group by: no error")
	}
	if _, err := s.LabelValues(ctx, "comm", t0, t0.Add(-time.Hour)); err == nil {
		t.Error("label values with to before from: no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Query(cancelled, ProfileQuery{From: t0, To: t0.Add(time.Hour)}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled query: %v", err)
	}
	g := smallGenerator()
	p := g.Interval(t0, 10*time.Second)
	if err := s.Append(ctx, p, map[string]string{"comm": "x"}); err == nil {
		t.Error("host label comm: no error")
	}
	p.SampleType[1] = &profile.ValueType{Type: "alloc_space", Unit: "bytes"}
	if err := s.Append(ctx, p, nil); err == nil {
		t.Error("profile of an unknown sample type: no error")
	}
	p.SampleType, p.Sample = nil, nil
	if err := s.Append(ctx, p, nil); err == nil {
		t.Error("profile without sample types: no error")
	}
	if err := s.Append(ctx, nil, nil); err == nil {
		t.Error("nil profile: no error")
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	g := smallGenerator()
	s := openTest(t, Options{Dir: dir})
	ps := appendRange(t, s, g, t0, 10*time.Second, 20, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Append(context.Background(), g.Interval(t0.Add(time.Hour), 10*time.Second), nil); err == nil {
		t.Error("Append after Close: no error")
	}
	if _, err := s.Query(context.Background(), ProfileQuery{From: t0, To: t0.Add(time.Hour)}); err == nil {
		t.Error("Query after Close: no error")
	}
	s = openTest(t, Options{Dir: dir})
	ps = append(ps, appendRange(t, s, g, t0.Add(200*time.Second), 10*time.Second, 20, nil)...)
	got, err := s.Query(context.Background(), ProfileQuery{From: t0, To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if c, w := canonical(got, nil), mergeCanonical(t, ps, nil); c != w {
		t.Errorf("after reopen, query differs from the merge of all appended intervals")
	}
	st := s.Stats()
	if !st.OldestData.Equal(t0) || st.IntervalsWritten != 20 {
		t.Errorf("stats after reopen = %+v", st)
	}
}
