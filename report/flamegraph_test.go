package report

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/profiletest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	profiletest.Golden(t, name, got, *update)
}

// names renders nodes as "parent>name self/total" lines in order.
func describe(fg *FlameGraph) []string {
	var out []string
	n := fg.Nodes
	for i := range n.Parent {
		parent := "-"
		if n.Parent[i] >= 0 {
			parent = fg.Strings[n.Name[n.Parent[i]]]
		}
		out = append(out, parent+">"+fg.Strings[n.Name[i]]+" "+itoa(n.Self[i])+"/"+itoa(n.Total[i]))
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// checkInvariants checks what every flame graph promises: pre-order with
// parents first, Total = Self + children's totals, the budget, and that
// the pruned value is what "(other)" nodes hold.
func checkInvariants(t *testing.T, fg *FlameGraph, budget int) {
	t.Helper()
	n := fg.Nodes
	count := len(n.Parent)
	for _, arr := range []int{len(n.Name), len(n.File), len(n.Binary), len(n.Self), len(n.Total)} {
		if arr != count {
			t.Fatalf("arrays of different lengths: %d and %d", arr, count)
		}
	}
	if count > budget {
		t.Errorf("%d nodes, budget %d", count, budget)
	}
	if count == 0 || n.Parent[0] != -1 || n.Total[0] != fg.Total {
		t.Fatalf("root: parent %v total %v, want -1 and %d", n.Parent, n.Total, fg.Total)
	}
	childSum := make([]int64, count)
	var other int64
	for i := 1; i < count; i++ {
		if p := n.Parent[i]; p < 0 || int(p) >= i {
			t.Fatalf("node %d has parent %d: not pre-order", i, p)
		}
		childSum[n.Parent[i]] += n.Total[i]
		if fg.Strings[n.Name[i]] == OtherName {
			other += n.Total[i]
			if n.Self[i] != n.Total[i] {
				t.Errorf("(other) node %d: self %d != total %d", i, n.Self[i], n.Total[i])
			}
		}
	}
	for i := range count {
		if n.Total[i] != n.Self[i]+childSum[i] {
			t.Errorf("node %d (%s): total %d != self %d + children %d", i, fg.Strings[n.Name[i]], n.Total[i], n.Self[i], childSum[i])
		}
	}
	if other != fg.Pruned.Value {
		t.Errorf("(other) nodes hold %d, pruned.value says %d", other, fg.Pruned.Value)
	}
}

func TestFlameGraphFixture(t *testing.T) {
	fg, err := NewFlameGraph(context.Background(), profiletest.Fixture(1), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, fg, 100)
	want := []string{"->root 0/100", "root>main 5/100", "main>work 20/80", "work>hot 60/60", "main>idle 15/15"}
	if got := describe(fg); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fg.SampleType != "cpu" || fg.Unit != "nanoseconds" || fg.Samples != 4 || fg.Pruned != (Pruned{}) {
		t.Errorf("header %s %s samples %d pruned %+v", fg.SampleType, fg.Unit, fg.Samples, fg.Pruned)
	}
	out, err := json.MarshalIndent(fg, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "flamegraph.golden.json", append(out, '\n'))

	counts, err := NewFlameGraph(context.Background(), profiletest.Fixture(1), "samples", 100)
	if err != nil || counts.Total != 20 || counts.Unit != "count" {
		t.Errorf("sample_type=samples: total %d unit %q err %v, want 20 count", counts.Total, counts.Unit, err)
	}
	var typeErr *SampleTypeError
	if _, err := NewFlameGraph(context.Background(), profiletest.Fixture(1), "alloc_space", 100); !errors.As(err, &typeErr) ||
		typeErr.Type != "alloc_space" || strings.Join(typeErr.Have, ",") != "samples,cpu" {
		t.Errorf("unknown sample type: err %v, want a SampleTypeError naming alloc_space and the profile's types", err)
	}
}

func TestFlameGraphPruning(t *testing.T) {
	for _, tc := range []struct {
		budget int
		want   []string
		pruned Pruned
	}{
		{2, []string{"->root 0/100", "root>(other) 100/100"}, Pruned{Nodes: 4, Value: 100}},
		// main is kept and needs an "(other)" for its children: 3 nodes.
		{3, []string{"->root 0/100", "root>main 5/100", "main>(other) 95/95"}, Pruned{Nodes: 3, Value: 95}},
		// work (80) would cost 2 (itself and an (other) for hot): idle fits instead.
		{4, []string{"->root 0/100", "root>main 5/100", "main>idle 15/15", "main>(other) 80/80"}, Pruned{Nodes: 2, Value: 80}},
		// Then hot replaces work's (other) and idle main's, at no cost.
		{5, []string{"->root 0/100", "root>main 5/100", "main>work 20/80", "work>hot 60/60", "main>idle 15/15"}, Pruned{}},
	} {
		fg, err := NewFlameGraph(context.Background(), profiletest.Fixture(1), "", tc.budget)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, fg, tc.budget)
		if got := describe(fg); strings.Join(got, "|") != strings.Join(tc.want, "|") || fg.Pruned != tc.pruned {
			t.Errorf("budget %d:\n got %v %+v\nwant %v %+v", tc.budget, got, fg.Pruned, tc.want, tc.pruned)
		}
	}
}

// TestFlameGraphPruningRandom checks the invariants and the accounting of
// pruned nodes on random trees and budgets.
func TestFlameGraphPruningRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		p := randomProfile(rng, 200, 12, 30)
		full, err := NewFlameGraph(context.Background(), p, "", 100_000)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, full, 100_000)
		budget := 2 + rng.IntN(len(full.Nodes.Parent)+5)
		fg, err := NewFlameGraph(context.Background(), p, "", budget)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, fg, budget)
		real := 0
		for i := range fg.Nodes.Name {
			if fg.Strings[fg.Nodes.Name[i]] != OtherName {
				real++
			}
		}
		if real+fg.Pruned.Nodes != len(full.Nodes.Parent) {
			t.Errorf("budget %d: %d kept + %d pruned != %d nodes", budget, real, fg.Pruned.Nodes, len(full.Nodes.Parent))
		}
		if fg.Total != full.Total {
			t.Errorf("budget %d: total %d, unpruned %d", budget, fg.Total, full.Total)
		}
	}
}

// randomProfile has samples stacks of up to depth frames drawn from funcs
// functions, with skewed values.
func randomProfile(rng *rand.Rand, samples, depth, funcs int) *profile.Profile {
	b := profiletest.NewBuilder()
	for range samples {
		stack := make([]string, 1+rng.IntN(depth))
		for i := range stack {
			stack[i] = "f" + itoa(int64(rng.IntN(funcs)))
		}
		b.Add(int64(1+rng.IntN(100)*rng.IntN(100)), stack...)
	}
	return b.P
}

func TestFlameGraphInlinedAndUnsymbolized(t *testing.T) {
	b := profiletest.NewBuilder()
	// One location holding an inlined call: inner is inlined into outer.
	b.Add(10, "inner+outer", "main")
	b.P.Sample[0].Location = append([]*profile.Location{{ID: 99, Address: 0xdead, Mapping: b.P.Mapping[0]}}, b.P.Sample[0].Location...)
	b.P.Location = append(b.P.Location, b.P.Sample[0].Location[0])
	fg, err := NewFlameGraph(context.Background(), b.P, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := "->root 0/10|root>main 0/10|main>outer 0/10|outer>inner 0/10|inner>0xdead 10/10"
	if got := strings.Join(describe(fg), "|"); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	last := len(fg.Nodes.Name) - 1
	if fg.Strings[fg.Nodes.Binary[last]] != "/bin/app" || fg.Strings[fg.Nodes.File[last]] != "" {
		t.Errorf("unsymbolized frame: binary %q file %q", fg.Strings[fg.Nodes.Binary[last]], fg.Strings[fg.Nodes.File[last]])
	}
	if fg.Strings[fg.Nodes.File[2]] != "outer.go" {
		t.Errorf("outer's file %q", fg.Strings[fg.Nodes.File[2]])
	}
}

func TestFlameGraphEmpty(t *testing.T) {
	fg, err := NewFlameGraph(context.Background(), nil, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, fg, 10)
	if fg.Total != 0 || len(fg.Nodes.Parent) != 1 || fg.SampleType != "cpu" {
		t.Errorf("empty: %+v", fg)
	}
}

func BenchmarkFlameGraph(b *testing.B) {
	p := randomProfile(rand.New(rand.NewPCG(3, 4)), 20_000, 32, 2000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewFlameGraph(context.Background(), p, "", 8192); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlameGraphFile builds the flame graph of a real profile:
// EMBER_FLAME_PROFILE names a pprof file, for instance a 1 h range of
// bench/ui.sh's store. (web's BenchmarkFlameGraphEncode adds the JSON.)
func BenchmarkFlameGraphFile(b *testing.B) {
	name := os.Getenv("EMBER_FLAME_PROFILE")
	if name == "" {
		b.Skip("set EMBER_FLAME_PROFILE to a pprof file")
	}
	f, err := os.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	p, err := profile.Parse(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewFlameGraph(context.Background(), p, "", 16384); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFlameGraphLines checks that a node's line is the one most of its
// value passed through, summed over samples that are not consecutive.
func TestFlameGraphLines(t *testing.T) {
	b := profiletest.NewBuilder()
	at := func(name string, line int64) *profile.Location {
		l := &profile.Location{ID: uint64(len(b.P.Location) + 1), Mapping: b.P.Mapping[0], Address: 0x2000 + uint64(len(b.P.Location))*16,
			Line: []profile.Line{{Function: b.Function(name), Line: line}}}
		b.P.Location = append(b.P.Location, l)
		return l
	}
	main, work10, work20, work30, hot := at("main", 5), at("work", 10), at("work", 20), at("work", 30), at("hot", 7)
	for _, s := range []struct {
		v    int64
		locs []*profile.Location
	}{
		{30, []*profile.Location{work10, main}},
		{50, []*profile.Location{work20, main}},
		{40, []*profile.Location{hot, work10, main}},
		{45, []*profile.Location{hot, work30, main}},
		{10, []*profile.Location{work10, main}},
	} {
		b.P.Sample = append(b.P.Sample, &profile.Sample{Value: []int64{s.v / 5, s.v}, Location: s.locs})
	}
	fg, err := NewFlameGraph(context.Background(), b.P, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, fg, 100)
	got := map[string]int32{}
	for i, name := range fg.Nodes.Name {
		got[fg.Strings[name]] = fg.Nodes.Line[i]
	}
	// work: line 10 has 30+40+10 = 80, line 20 50, line 30 45.
	if got["root"] != 0 || got["main"] != 5 || got["work"] != 10 || got["hot"] != 7 {
		t.Errorf("lines %v, want root 0, main 5, work 10, hot 7", got)
	}
}

// TestFlameGraphFunctions checks the function table against the diff's
// per-function sums, whatever the node budget, and its bound.
func TestFlameGraphFunctions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ samples, funcs, budget int }{{300, 30, 20}, {300, 30, 100_000}, {4000, 3000, 500}} {
		p := randomProfile(rng, tc.samples, 12, tc.funcs)
		fg, err := NewFlameGraph(context.Background(), p, "", tc.budget)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := functionValues(context.Background(), p, 1)
		if err != nil {
			t.Fatal(err)
		}
		fns := fg.Functions
		if fns.Count != len(want) {
			t.Errorf("%+v: count %d, want %d", tc, fns.Count, len(want))
		}
		if n := min(len(want), 2*topFunctions); len(fns.Name) > n || len(fns.Name) < min(len(want), topFunctions) {
			t.Errorf("%+v: %d rows of %d functions", tc, len(fns.Name), len(want))
		}
		shown := map[string]bool{}
		var minSelf, minTotal int64 = 1 << 62, 1 << 62
		for i, s := range fns.Name {
			name := fg.Strings[s]
			shown[name] = true
			if w := want[name]; w == nil || w.self != fns.Self[i] || w.total != fns.Total[i] {
				t.Fatalf("%+v: %s self %d total %d, want %+v", tc, name, fns.Self[i], fns.Total[i], w)
			}
			if i > 0 && fns.Self[i] > fns.Self[i-1] {
				t.Errorf("%+v: not sorted by self at row %d", tc, i)
			}
			minSelf, minTotal = min(minSelf, fns.Self[i]), min(minTotal, fns.Total[i])
		}
		// What is left out is smaller, by self and by total, than some rows.
		selfAbove, totalAbove := 0, 0
		for name, w := range want {
			if shown[name] {
				continue
			}
			for i := range fns.Name {
				if fns.Self[i] >= w.self {
					selfAbove++
				}
				if fns.Total[i] >= w.total {
					totalAbove++
				}
			}
			if selfAbove < topFunctions || totalAbove < topFunctions {
				t.Fatalf("%+v: %s (%+v) left out, but fewer than %d rows are larger", tc, name, w, topFunctions)
			}
			selfAbove, totalAbove = 0, 0
		}
	}
}

// TestFlameGraphPruningShowsSelf: a budget goes to the nodes that show
// value with names, not to wide nodes whose value is spread over more
// leaves than fit. Fifty functions each call ten leaves of 2 (1,000 in
// all, 550 nodes); thirty call one leaf of 15 (450, 60 nodes). Keeping
// the widest first spent 62 nodes on the fifty, each with an "(other)",
// and left everything in "(other)"; the thirty pairs fit.
func TestFlameGraphPruningShowsSelf(t *testing.T) {
	b := profiletest.NewBuilder()
	for i := range 50 {
		for j := range 10 {
			b.Add(2, "leaf"+itoa(int64(i*10+j)), "spread"+itoa(int64(i)))
		}
	}
	for i := range 30 {
		b.Add(15, "hot"+itoa(int64(i)), "caller"+itoa(int64(i)))
	}
	fg, err := NewFlameGraph(context.Background(), b.P, "", 62)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, fg, 62)
	if fg.Pruned.Value != 1000 {
		t.Errorf("62 nodes leave %d of %d in (other); want 1000, the thirty pairs shown", fg.Pruned.Value, fg.Total)
	}
	// Grown until (other) is at most 10%: the pairs, then enough of the
	// fifty, 534 nodes in all (doubling the budget took 992).
	grown, err := NewFlameGraphWith(context.Background(), b.P, FlameOptions{MaxNodes: 62, MaxOtherShare: 0.1, NodeCap: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, grown, grown.MaxNodes)
	if share := float64(grown.Pruned.Value) / float64(grown.Total); share > 0.1 || grown.MaxNodes != 534 {
		t.Errorf("grown to %d nodes, %.3f in (other)", grown.MaxNodes, share)
	}
}
