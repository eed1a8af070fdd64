package report

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/ember-profiler/ember/internal/profiletest"
)

func TestDiff(t *testing.T) {
	// Target: the fixture at scale 2 (total 200). Base: total 200 too, but
	// hot has half its share, idle more, and "gone" is only in the base.
	base := profiletest.NewBuilder()
	base.Add(60, "hot", "work", "main")
	base.Add(40, "work", "main")
	base.Add(60, "idle", "main")
	base.Add(40, "gone", "main")
	d, err := NewDiff(context.Background(), profiletest.Fixture(2), base.P, DiffOptions{OrderBy: "self", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if d.Total != 200 || d.BaseTotal != 200 || d.SampleType != "cpu" || d.Truncated != 0 {
		t.Fatalf("header %+v", d)
	}
	byName := map[string]DiffFrame{}
	for _, f := range d.Frames {
		byName[f.Name] = f
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, want := range []DiffFrame{
		{Name: "hot", Self: 120, Total: 120, BaseSelf: 60, BaseTotal: 60, SelfShare: 0.6, TotalShare: 0.6,
			BaseSelfShare: 0.3, BaseTotalShare: 0.3, SelfDiff: 0.3, TotalDiff: 0.3},
		{Name: "work", Self: 40, Total: 160, BaseSelf: 40, BaseTotal: 100, SelfShare: 0.2, TotalShare: 0.8,
			BaseSelfShare: 0.2, BaseTotalShare: 0.5, SelfDiff: 0, TotalDiff: 0.3},
		{Name: "gone", BaseSelf: 40, BaseTotal: 40, BaseSelfShare: 0.2, BaseTotalShare: 0.2, SelfDiff: -0.2, TotalDiff: -0.2},
		{Name: "main", Self: 10, Total: 200, BaseTotal: 200, SelfShare: 0.05, TotalShare: 1, BaseTotalShare: 1, SelfDiff: 0.05},
	} {
		got := byName[want.Name]
		if got.Self != want.Self || got.Total != want.Total || got.BaseSelf != want.BaseSelf || got.BaseTotal != want.BaseTotal ||
			!near(got.SelfShare, want.SelfShare) || !near(got.TotalShare, want.TotalShare) ||
			!near(got.BaseSelfShare, want.BaseSelfShare) || !near(got.BaseTotalShare, want.BaseTotalShare) ||
			!near(got.SelfDiff, want.SelfDiff) || !near(got.TotalDiff, want.TotalDiff) {
			t.Errorf("%s:\n got %+v\nwant %+v", want.Name, got, want)
		}
	}
	out, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.golden.json", append(out, '\n'))
	// By |self_diff|: hot 0.3, then idle (0.15-0.3 = -0.15) and gone (-0.2).
	order := []string{}
	for _, f := range d.Frames {
		order = append(order, f.Name)
	}
	if want := []string{"hot", "gone", "idle", "main", "work"}; !equal(order, want) {
		t.Errorf("order by self: %v, want %v", order, want)
	}
	byTotal, _ := NewDiff(context.Background(), profiletest.Fixture(2), base.P, DiffOptions{OrderBy: "total", Limit: 2})
	// hot and work both gained 0.3 of total share (up to rounding), ahead of the rest.
	if len(byTotal.Frames) != 2 || byTotal.Truncated != 3 ||
		byTotal.Frames[0].Name+byTotal.Frames[1].Name != "hotwork" && byTotal.Frames[0].Name+byTotal.Frames[1].Name != "workhot" {
		t.Errorf("order by total, limit 2: %+v", byTotal)
	}
}

func TestDiffRecursionCountsOnce(t *testing.T) {
	b := profiletest.NewBuilder()
	b.Add(10, "rec", "rec", "rec", "main")
	d, err := NewDiff(context.Background(), b.P, nil, DiffOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Frames {
		if f.Name == "rec" && (f.Self != 10 || f.Total != 10 || f.TotalShare != 1) {
			t.Errorf("rec: %+v, want self and total 10, share 1", f)
		}
		if f.BaseTotal != 0 || f.BaseTotalShare != 0 {
			t.Errorf("empty base: %+v", f)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
