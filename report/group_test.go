package report

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/profiletest"
)

// twoPrograms has main in two binaries, run by three processes: server
// (pids 1 and 2, /bin/app) and tool (pid 3, /bin/tool), and one sample
// without labels.
func twoPrograms() *profile.Profile {
	b := profiletest.NewBuilder()
	tool := &profile.Mapping{ID: 2, Start: 0x200000, Limit: 0x300000, File: "/bin/tool", HasFunctions: true}
	b.P.Mapping = append(b.P.Mapping, tool)
	b.Add(30, "work", "main")
	b.Add(20, "work", "main")
	b.Add(40, "main")
	b.Add(10, "main")
	label := func(i int, comm, exe string, pid int64) {
		b.P.Sample[i].Label = map[string][]string{"comm": {comm}, "exe": {exe}}
		b.P.Sample[i].NumLabel = map[string][]int64{"pid": {pid}}
	}
	label(0, "server", "/bin/app", 1)
	label(1, "server", "/bin/app", 2)
	label(2, "tool", "/bin/tool", 3)
	// tool's main is another function in another binary.
	toolMain := &profile.Location{ID: 50, Mapping: tool, Address: 0x200010, Line: []profile.Line{{Function: b.Function("main"), Line: 3}}}
	b.P.Location = append(b.P.Location, toolMain)
	b.P.Sample[2].Location = []*profile.Location{toolMain}
	return b.P
}

func TestFlameGraphGroupBy(t *testing.T) {
	fg, err := NewFlameGraphWith(context.Background(), twoPrograms(), FlameOptions{MaxNodes: 100, GroupBy: "comm"})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, fg, 100)
	want := "->root 0/100|root>server 0/50|server>main 0/50|main>work 50/50|root>tool 0/40|tool>main 40/40|root>(none) 0/10|(none)>main 10/10"
	if got := strings.Join(describe(fg), "|"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if fg.GroupBy != "comm" || len(fg.Groups) != 3 || fg.Groups[0].Value != "server" {
		t.Fatalf("groups %+v", fg.Groups)
	}
	if pids := fg.Groups[0].Labels["pid"]; pids.Count != 2 || strings.Join(pids.Values, ",") != "1,2" {
		t.Errorf("server's pids %+v", pids)
	}
	if exe := fg.Groups[1].Labels["exe"]; exe.Count != 1 || exe.Values[0] != "/bin/tool" {
		t.Errorf("tool's exe %+v", exe)
	}
	// The function table: main of /bin/app and main of /bin/tool are two
	// rows, and the groups are none.
	var rows []string
	for i, name := range fg.Functions.Name {
		rows = append(rows, fg.Strings[name]+"@"+fg.Strings[fg.Functions.Binary[i]]+" "+itoa(fg.Functions.Self[i])+"/"+itoa(fg.Functions.Total[i]))
	}
	if got, want := strings.Join(rows, "|"), "work@/bin/app 50/50|main@/bin/tool 40/40|main@/bin/app 10/60"; got != want {
		t.Errorf("functions %s, want %s", got, want)
	}
}

func TestFlameGraphGroupByPID(t *testing.T) {
	fg, err := NewFlameGraphWith(context.Background(), twoPrograms(), FlameOptions{MaxNodes: 100, GroupBy: "pid"})
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for i, p := range fg.Nodes.Parent {
		if p == 0 {
			first = append(first, fg.Strings[fg.Nodes.Name[i]])
		}
	}
	if got := strings.Join(first, ","); got != "3,1,2,(none)" {
		t.Errorf("first level %s", got)
	}
}

// TestFlameGraphMaxOtherShare: a budget too small for a flat profile grows
// until "(other)" holds at most the share asked for, within the cap.
func TestFlameGraphMaxOtherShare(t *testing.T) {
	b := profiletest.NewBuilder()
	for i := range 100 {
		b.Add(10, "leaf"+itoa(int64(i)), "main")
	}
	small, err := NewFlameGraphWith(context.Background(), b.P, FlameOptions{MaxNodes: 12})
	if err != nil {
		t.Fatal(err)
	}
	if share := float64(small.Pruned.Value) / float64(small.Total); share < 0.5 {
		t.Fatalf("12 nodes leave %.2f in (other); the test wants a flat profile", share)
	}
	fg, err := NewFlameGraphWith(context.Background(), b.P, FlameOptions{MaxNodes: 12, MaxOtherShare: 0.1, NodeCap: 1000})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, fg, fg.MaxNodes)
	// The budget grows to what it takes: root, main, 90 leaves and an
	// "(other)" for the last 10 (it doubled to 96 before).
	if share := float64(fg.Pruned.Value) / float64(fg.Total); share > 0.1 || fg.MaxNodes != 93 {
		t.Errorf("budget %d leaves %.2f in (other), want 93 and at most 0.10", fg.MaxNodes, share)
	}
	capped, _ := NewFlameGraphWith(context.Background(), b.P, FlameOptions{MaxNodes: 12, MaxOtherShare: 0.1, NodeCap: 30})
	if capped.MaxNodes != 30 {
		t.Errorf("budget %d, want the cap, 30", capped.MaxNodes)
	}
}

// TestLargestValues: the few largest of many values, by sum then value,
// as a full sort orders them.
func TestLargestValues(t *testing.T) {
	sums := map[string]int64{}
	for i := range 1000 {
		sums[strconv.Itoa(i)] = int64(i*7919%101) * 10 // many ties
	}
	all := slices.Collect(maps.Keys(sums))
	slices.SortFunc(all, func(a, b string) int { return cmp.Or(cmp.Compare(sums[b], sums[a]), cmp.Compare(a, b)) })
	for _, n := range []int{0, 1, 5, 1000, 2000} {
		if got, want := largestValues(sums, n), all[:min(n, len(all))]; !slices.Equal(got, want) {
			t.Errorf("largest %d: %q, want %q", n, got, want)
		}
	}
}
