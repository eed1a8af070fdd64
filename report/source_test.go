package report

import (
	"context"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/profiletest"
)

func TestSourceLines(t *testing.T) {
	b := profiletest.NewBuilder()
	b.Add(30, "work", "main")
	b.Add(20, "main")
	b.Add(10, "work", "main")
	// main calls work from line 7 in the first sample and runs line 9 in the second.
	b.P.Sample[0].Location[1] = cloneLine(b.P.Sample[0].Location[1], 7, 100)
	b.P.Sample[1].Location[0] = cloneLine(b.P.Sample[1].Location[0], 9, 101)
	src, err := NewSourceLines(context.Background(), b.P, "", "main", "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []SourceLine{{1, 0, 10}, {7, 0, 30}, {9, 20, 20}}
	if src.Total != 60 || src.File != "main.go" || len(src.Lines) != len(want) {
		t.Fatalf("got %+v", src)
	}
	for i, w := range want {
		if src.Lines[i] != w {
			t.Errorf("line %d: %+v, want %+v", i, src.Lines[i], w)
		}
	}
	if none, _ := NewSourceLines(context.Background(), b.P, "", "main", "other"); none.Total != 0 || len(none.Lines) != 0 {
		t.Errorf("main in another binary: %+v", none)
	}
}

// cloneLine is loc at another line, as a location of its own.
func cloneLine(loc *profile.Location, line int64, id uint64) *profile.Location {
	c := *loc
	c.ID = id
	c.Line = []profile.Line{{Function: loc.Line[0].Function, Line: line}}
	return &c
}
