package symbolizer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
)

// TestDeletedExecutableKeepsItsPath checks that a deleted executable with
// the build ID of another, live, file keeps its own path in its mapping
// and exe label, also once the profile went through pprof's Merge (as the
// daemon's intervals and ember record do, and which identifies mappings
// by build ID), while both are named from one parse.
func TestDeletedExecutableKeepsItsPath(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtureDir, "prog-pie"))
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "prog-pie")
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	live := process(1, loadPathAt(t, filepath.Join(fixtureDir, "prog-pie"), "/usr/bin/prog", pieBase))
	live.Exe = "/usr/bin/prog"
	deletedMaps := loadPathAt(t, copyPath, "/tmp/build/prog", pieBase)
	for i := range deletedMaps {
		deletedMaps[i].Deleted = true
	}
	deleted := process(2, deletedMaps)
	deleted.Exe = "/tmp/build/prog"
	v, _ := fixtureSymbol(t, "prog-pie", "ember_leaf")
	addr := pieBase - fixtureFirstLoad(t, "prog-pie") + v

	s := newTestSymbolizer(t)
	p, err := s.Profile(&model.Batch{
		PeriodNanos: 1,
		Samples: []model.Sample{
			{PID: 1, TID: 1, User: []uint64{addr}, Count: 1},
			{PID: 2, TID: 2, User: []uint64{addr}, Count: 1},
		},
		Processes: map[model.ProcessKey]*model.Process{{PID: 1}: live, {PID: 2}: deleted},
	})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := profile.Merge([]*profile.Profile{p})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]struct{ file, exe string }{
		1: {"/usr/bin/prog", "/usr/bin/prog"},
		2: {"/tmp/build/prog (deleted)", "/tmp/build/prog"},
	}
	for name, prof := range map[string]*profile.Profile{"profile": p, "merged": merged} {
		for _, smp := range prof.Sample {
			pid := smp.NumLabel["pid"][0]
			loc := smp.Location[0]
			if got := loc.Line[0].Function.Name; got != "ember_leaf" {
				t.Errorf("%s, pid %d: %q", name, pid, got)
			}
			if got := loc.Mapping.File; got != want[pid].file {
				t.Errorf("%s, pid %d: mapping %q, want %q", name, pid, got, want[pid].file)
			}
			if got := smp.Label["exe"]; len(got) != 1 || got[0] != want[pid].exe {
				t.Errorf("%s, pid %d: exe %q, want %q", name, pid, got, want[pid].exe)
			}
		}
	}
	if st := s.Stats(); st.FileMisses != 1 || st.Files != 1 {
		t.Errorf("%d parses, %d kept; want the two copies named from one", st.FileMisses, st.Files)
	}
	// The file's build ID is still what the live mapping carries.
	for _, m := range p.Mapping {
		if m.File == "/usr/bin/prog" && m.BuildID == "" {
			t.Error("the live mapping lost its build ID")
		}
	}
}
