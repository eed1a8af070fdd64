package web

import (
	"context"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/report"

	"github.com/ember-profiler/ember/internal/profiletest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	profiletest.Golden(t, name, got, *update)
}

// TestFlameGraphJSON pins the flame graph's JSON, report's fields after the
// range, as the API has always sent it.
func TestFlameGraphJSON(t *testing.T) {
	fg, err := report.NewFlameGraph(context.Background(), profiletest.Fixture(1), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(FlameGraph{FlameGraph: fg}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "flamegraph.golden.json", append(out, '\n'))
}

// TestDiffJSON pins the diff's JSON likewise.
func TestDiffJSON(t *testing.T) {
	base := profiletest.NewBuilder()
	base.Add(60, "hot", "work", "main")
	base.Add(40, "work", "main")
	base.Add(60, "idle", "main")
	base.Add(40, "gone", "main")
	d, err := report.NewDiff(context.Background(), profiletest.Fixture(2), base.P, report.DiffOptions{OrderBy: "self", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(Diff{Diff: d}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.golden.json", append(out, '\n'))
}

// TestFlameGraphGroupBy: group_by reaches the report, and the answer
// names it.
func TestFlameGraphGroupBy(t *testing.T) {
	ts := newTestServer(t, nil)
	fg := decode[FlameGraph](t, ts.get("/api/v1/flamegraph?group_by=comm"))
	if fg.GroupBy != "comm" || len(fg.Groups) == 0 {
		t.Fatalf("group_by %q, groups %+v", fg.GroupBy, fg.Groups)
	}
	for i, p := range fg.Nodes.Parent {
		if p == 0 && fg.Strings[fg.Nodes.Name[i]] != fg.Groups[0].Value && len(fg.Groups) == 1 {
			t.Errorf("first level %q, want the group %q", fg.Strings[fg.Nodes.Name[i]], fg.Groups[0].Value)
		}
	}
}

// TestSourceEndpoint: one function's lines, and a 400 without a function.
func TestSourceEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	wantError(t, ts.get("/api/v1/source"), 400, "function")
	fg := decode[FlameGraph](t, ts.get("/api/v1/flamegraph"))
	name := fg.Strings[fg.Nodes.Name[1]]
	src := decode[SourceLines](t, ts.get("/api/v1/source?function="+url.QueryEscape(name)))
	if src.Function != name || src.Total != fg.Nodes.Total[1] || len(src.Lines) == 0 {
		t.Errorf("source of %s: %+v, want its total %d over some lines", name, src.SourceLines, fg.Nodes.Total[1])
	}
}

func TestUnknownSampleType(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, target := range []string{"/api/v1/flamegraph?sample_type=alloc_space", "/api/v1/diff?sample_type=alloc_space"} {
		body := wantError(t, ts.get(target), 400, "sample_type")
		if want := `sample_type: "alloc_space" is not in the profile, which has samples, cpu`; body.Error != want {
			t.Errorf("%s: error %q, want %q", target, body.Error, want)
		}
	}
}

// BenchmarkFlameGraphEncode encodes the flame graph of a real profile as the
// handler does, in each format: EMBER_FLAME_PROFILE names a pprof file, for instance a 1 h
// range of bench/ui.sh's store. (report's BenchmarkFlameGraphFile builds it.)
func BenchmarkFlameGraphEncode(b *testing.B) {
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
	fg, err := report.NewFlameGraph(context.Background(), p, "", 16384)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"json", "binary"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				body, err := encodeFlame(flameFormats[name], &FlameGraph{FlameGraph: fg})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(body)), "gzipped-bytes")
			}
		})
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
