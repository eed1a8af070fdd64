package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/report"
	"github.com/ember-profiler/ember/storage"
	"github.com/ember-profiler/ember/storage/query"
)

// recordedStore is a store holding the three recorded fixture profiles at
// base+10s, +20s and +30s.
func recordedStore(t *testing.T) (*storage.Store, time.Time) {
	s, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	for i := 1; i <= 3; i++ {
		p := profiletest.Read(t, fmt.Sprintf("../storage/testdata/record-%d.pb.gz", i))
		p.TimeNanos = base.Add(time.Duration(i) * 10 * time.Second).UnixNano()
		p.DurationNanos = int64(10 * time.Second)
		if err := s.Append(context.Background(), p, map[string]string{"host": "h"}); err != nil {
			t.Fatal(err)
		}
	}
	return s, base
}

// The store's lean flame-graph input must give exactly the flame graph of
// the profile it would build for the same query, grouped or not, for any
// sample type and budget, on real recorded profiles.
func TestFlameGraphFromStacksMatchesProfile(t *testing.T) {
	s, base := recordedStore(t)
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
			for _, o := range []report.FlameOptions{
				{GroupBy: groupBy, MaxNodes: 100000},
				{GroupBy: groupBy, MaxNodes: report.MinNodes, SampleType: "samples"},
				{GroupBy: groupBy, MaxNodes: report.MinNodes, MaxOtherShare: 0.01, NodeCap: 1 << 12},
			} {
				stacks, err := s.FlameStacks(ctx, q, groupBy) // taken over by the flame graph
				if err != nil {
					t.Fatal(err)
				}
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

// Stacks with a slot before each path for its group's frame, rewritten in
// place, and stacks without, copied, give the same grouped flame graph,
// samples with nothing of the type left out (an off-CPU wait in a CPU
// graph: its slot stays empty); paths out of range are an error, not a
// panic.
func TestFlameGraphFromStacksSlots(t *testing.T) {
	build := func(slots bool) *query.Stacks {
		s := &query.Stacks{
			SampleTypes: []query.ValueType{{Type: "samples", Unit: "count"}},
			Frames:      []query.Frame{{Name: "main", Binary: "/bin/a"}, {Name: "work"}, {Name: "main", Binary: "/bin/b"}},
			Groups:      []string{"a", "b"},
			Values:      []int64{3, 2, 1, 0}, // the last is left out: nothing of this type
			Details: []query.GroupDetail{{Group: 0, Label: -1, Values: []int64{3}}, {Group: 0, Label: 1, Value: "1", Values: []int64{3}},
				{Group: 1, Label: -1, Values: []int64{2}}, {Group: -1, Label: -1, Values: []int64{1}}},
		}
		for _, smp := range []struct {
			frames []int32
			group  int32
		}{{[]int32{0, 1}, 0}, {[]int32{2, 1}, 1}, {[]int32{0}, -1}, {[]int32{2}, 1}} {
			if slots {
				s.Paths, s.Lines = append(s.Paths, -1), append(s.Lines, 0)
			}
			start := int32(len(s.Paths))
			s.Paths = append(s.Paths, smp.frames...)
			s.Lines = append(s.Lines, make([]int32, len(smp.frames))...)
			s.Samples = append(s.Samples, query.StackSample{Start: start, End: int32(len(s.Paths)), Group: smp.group})
		}
		return s
	}
	ctx := context.Background()
	o := report.FlameOptions{GroupBy: "comm", MaxNodes: 100}
	var answers []string
	for _, slots := range []bool{true, false} {
		fg, err := report.NewFlameGraphFromStacks(ctx, build(slots), o)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(fg)
		answers = append(answers, string(b))
		if fg.Total != 6 || len(fg.Groups) != 3 {
			t.Errorf("slots %v: total %d, %d groups: want 6 and 3 (a, b, %s)", slots, fg.Total, len(fg.Groups), report.NoGroup)
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("with slots:\n%s\nwithout:\n%s", answers[0], answers[1])
	}
	// The first two samples' paths as nodes of a trie with frames of its
	// own, the others listed: the same graph.
	withTrie := func() *query.Stacks {
		s := build(false)
		s.TrieFrames = []query.Frame{{Name: "work"}, {Name: "main", Binary: "/bin/b"}, {Name: "main", Binary: "/bin/a"}}
		s.Trie = []query.TrieNode{{Parent: -1, Frame: -1}, {Parent: 0, Frame: 2}, {Parent: 0, Frame: 1}, {Parent: 1, Frame: 0}, {Parent: 2, Frame: 0}}
		s.Samples[0].Leaf, s.Samples[1].Leaf = 3, 4
		return s
	}
	fg, err := report.NewFlameGraphFromStacks(ctx, withTrie(), o)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(fg); string(b) != answers[1] {
		t.Errorf("with a trie:\n%s\nlisted:\n%s", b, answers[1])
	}
	for name, spoil := range map[string]func(s *query.Stacks){
		"a leaf past the trie":      func(s *query.Stacks) { s.Samples[0].Leaf = 9 },
		"a parent after its child":  func(s *query.Stacks) { s.Trie[3].Parent = 4 },
		"a trie frame out of range": func(s *query.Stacks) { s.Trie[4].Frame = 7 },
		"a negative trie parent":    func(s *query.Stacks) { s.Trie[1].Parent = -3 },
	} {
		bad := withTrie()
		spoil(bad)
		if _, err := report.NewFlameGraphFromStacks(ctx, bad, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, slots := range []bool{true, false} {
		bad := build(slots)
		bad.Samples[1].End = int32(len(bad.Paths) + 5)
		if _, err := report.NewFlameGraphFromStacks(ctx, bad, o); err == nil {
			t.Errorf("slots %v: a path past the end: no error", slots)
		}
		bad = build(slots)
		bad.Paths[bad.Samples[0].Start] = 99
		if _, err := report.NewFlameGraphFromStacks(ctx, bad, o); err == nil {
			t.Errorf("slots %v: a frame ID out of range: no error", slots)
		}
	}
}

// A group with more values of a detail label than its hover lists (the
// store then sends only the largest of each sample type and a count) must
// give the same flame graph as the profile, ties included.
func TestFlameGraphFromStacksManyValues(t *testing.T) {
	s, err := storage.Open(storage.Options{Dir: t.TempDir(), MinFreeDiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := profiletest.Read(t, "../storage/testdata/record-1.pb.gz")
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	p.TimeNanos, p.DurationNanos = base.UnixNano(), int64(10*time.Second)
	for i, smp := range p.Sample { // one comm, 9 pids, 3 exes
		smp.Label = map[string][]string{"comm": {"w"}, "exe": {fmt.Sprintf("/bin/e%d", i%3)}}
		smp.NumLabel = map[string][]int64{"pid": {int64(i%9 + 1)}}
		smp.NumUnit = nil
	}
	if err := s.Append(context.Background(), p, map[string]string{"host": "h"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := storage.ProfileQuery{From: base, To: base.Add(time.Minute)}
	labelled, err := s.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, groupBy := range []string{"comm", "exe"} {
		stacks, err := s.FlameStacks(ctx, q, groupBy)
		if err != nil {
			t.Fatal(err)
		}
		counted := 0
		for _, d := range stacks.Details {
			if d.Count {
				counted++
			}
		}
		if groupBy == "comm" && counted == 0 {
			t.Fatal("no count row: the store sent every pid's row")
		}
		o := report.FlameOptions{GroupBy: groupBy, MaxNodes: 100000}
		want, err := report.NewFlameGraphWith(ctx, labelled, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := report.NewFlameGraphFromStacks(ctx, stacks, o)
		if err != nil {
			t.Fatal(err)
		}
		if groupBy == "comm" && (len(got.Groups) != 1 || got.Groups[0].Labels["pid"].Count != 9) {
			t.Fatalf("groups %+v: want one comm with 9 pids", got.Groups)
		}
		want.Samples, got.Samples = 0, 0
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if string(wj) != string(gj) {
			t.Errorf("group by %s: the flame graphs differ:\nprofile: %.800s\nstacks:  %.800s", groupBy, wj, gj)
		}
	}
}

// A diff from the store's stacks is the diff of its profiles: the same
// JSON for both orders, a limit, another sample type, an empty base and
// a base of another selector, on recorded profiles, cold and warm.
func TestDiffFromStacksMatchesProfiles(t *testing.T) {
	s, base := recordedStore(t)
	ctx := context.Background()
	sel := func(expr string) storage.Selector {
		x, err := storage.ParseSelector(expr)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	target := storage.ProfileQuery{From: base.Add(20 * time.Second), To: base.Add(time.Minute), MaxStacks: -1}
	bases := map[string]storage.ProfileQuery{
		"earlier":        {From: base, To: base.Add(20 * time.Second), MaxStacks: -1},
		"empty":          {From: base.Add(-time.Hour), To: base.Add(-50 * time.Minute), MaxStacks: -1},
		"other selector": {From: base, To: base.Add(time.Minute), Selector: sel(`{comm!="swapper"}`), MaxStacks: -1},
	}
	for round := 0; round < 2; round++ { // cold, then named from the path cache
		for name, bq := range bases {
			for _, o := range []report.DiffOptions{{}, {OrderBy: "total", Limit: 7}, {SampleType: "samples"}} {
				tp, err := s.StackProfile(ctx, target)
				if err != nil {
					t.Fatal(err)
				}
				bp, err := s.StackProfile(ctx, bq)
				if err != nil {
					t.Fatal(err)
				}
				want, err := report.NewDiff(ctx, tp, bp, o)
				if err != nil {
					t.Fatal(err)
				}
				ts, err := s.FlameStacks(ctx, target, "")
				if err != nil {
					t.Fatal(err)
				}
				bs, err := s.FlameStacks(ctx, bq, "")
				if err != nil {
					t.Fatal(err)
				}
				got, err := report.NewDiffFromStacks(ctx, ts, bs, o)
				if err != nil {
					t.Fatal(err)
				}
				wj, _ := json.Marshal(want)
				gj, _ := json.Marshal(got)
				if string(wj) != string(gj) {
					t.Errorf("round %d, base %s, %+v: the diffs differ:\nprofiles: %.800s\nstacks:   %.800s", round, name, o, wj, gj)
				}
				if name == "earlier" && (want.Total == 0 || want.BaseTotal == 0 || len(want.Frames) < 5) {
					t.Fatalf("totals %d and %d, %d frames: the fixture profiles did not load", want.Total, want.BaseTotal, len(want.Frames))
				}
			}
		}
	}
	if _, err := report.NewDiffFromStacks(ctx, nil, nil, report.DiffOptions{SampleType: "nonsense"}); err == nil {
		t.Error("a sample type no profile has: no error")
	}
}
