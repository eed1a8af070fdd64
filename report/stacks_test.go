package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/report"
	"github.com/ember-profiler/ember/storage"
)

// The store's lean flame-graph input must give exactly the flame graph of
// the profile it would build for the same query, grouped or not, for any
// sample type and budget, on real recorded profiles.
func TestFlameGraphFromStacksMatchesProfile(t *testing.T) {
	s, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	for i := 1; i <= 3; i++ {
		f, err := os.Open(fmt.Sprintf("../storage/testdata/record-%d.pb.gz", i))
		if err != nil {
			t.Fatal(err)
		}
		p, err := profile.Parse(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		p.TimeNanos = base.Add(time.Duration(i) * 10 * time.Second).UnixNano()
		p.DurationNanos = int64(10 * time.Second)
		if err := s.Append(context.Background(), p, map[string]string{"host": "h"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, sel := range []string{"", `{comm!="swapper"}`} {
		selector, err := storage.ParseSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		q := storage.ProfileQuery{From: base, To: base.Add(time.Minute), Selector: selector}
		p, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Sample) < 10 {
			t.Fatalf("%d samples: the fixture profiles did not load", len(p.Sample))
		}
		for _, groupBy := range []string{"", "comm", "pid", "exe", "nolabel"} {
			stacks, err := s.FlameStacks(ctx, q, groupBy)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []report.FlameOptions{
				{GroupBy: groupBy, MaxNodes: 100000},
				{GroupBy: groupBy, MaxNodes: report.MinNodes, SampleType: "samples"},
				{GroupBy: groupBy, MaxNodes: report.MinNodes, MaxOtherShare: 0.01, NodeCap: 1 << 12},
			} {
				want, err := report.NewFlameGraphWith(ctx, p, o)
				if err != nil {
					t.Fatal(err)
				}
				got, err := report.NewFlameGraphFromStacks(ctx, stacks, o)
				if err != nil {
					t.Fatal(err)
				}
				want.Samples, got.Samples = 0, 0 // what was merged differs: per label set or per group
				wj, _ := json.Marshal(want)
				gj, _ := json.Marshal(got)
				if string(wj) != string(gj) {
					t.Errorf("selector %q, %+v: the flame graphs differ:\nprofile: %.600s\nstacks:  %.600s", sel, o, wj, gj)
				}
			}
		}
	}
	if _, err := report.NewFlameGraphFromStacks(ctx, nil, report.FlameOptions{}); err != nil {
		t.Errorf("no stacks: %v", err)
	}
}
