package symbolizer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

// TestNamedUserFrames: frames an interpreter's or a JIT's unwinder named
// come out as given (function, file, line; no mapping), the native frames
// between them are named from their file with return addresses adjusted
// by their place in the stack, and a location is shared by every sample
// that has the same named frame.
func TestNamedUserFrames(t *testing.T) {
	s := newTestSymbolizer(t)
	proc := process(1, loadAt(t, "prog-nopie", 0))
	leaf, _ := fixtureSymbol(t, "prog-nopie", "ember_leaf")
	// The first byte after ember_middle: a return address into it.
	middle, size := fixtureSymbol(t, "prog-nopie", "ember_middle")
	retIntoMiddle := middle + size
	const jitAddr = 0x7e0000001234

	interpreted := func(fn, file string, line int64) model.Frame {
		return model.Frame{Kind: model.FrameInterpreted, Function: fn, File: file, Line: line, Addr: 0xdead}
	}
	b := &model.Batch{
		PeriodNanos: 1,
		Processes:   map[model.ProcessKey]*model.Process{{PID: 1}: proc},
		Samples: []model.Sample{
			{PID: 1, TID: 1, Count: 3, UserTruncated: true, UserFrames: []model.Frame{
				{Kind: model.FrameNative, Addr: leaf},
				interpreted("handle", "/srv/app.py", 42),
				interpreted("", "/srv/app.py", 0),
				{Kind: model.FrameNative, Addr: retIntoMiddle},
				interpreted("<module>", "/srv/app.py", 7),
			}},
			{PID: 1, TID: 2, Count: 1, UserFrames: []model.Frame{
				{Kind: model.FrameJIT, Addr: jitAddr, Function: "LazyCompile:*render /srv/view.js"},
				interpreted("<module>", "/srv/app.py", 7),
			}},
		},
	}
	p, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	// A profile with mapping-less locations must survive pprof's encoding.
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if p, err = profile.Parse(&buf); err != nil {
		t.Fatalf("parse written profile: %v", err)
	}
	if len(p.Sample) != 2 {
		t.Fatalf("%d samples, want 2", len(p.Sample))
	}

	type line struct {
		function, file string
		line           int64
		mapped         bool
		addr           uint64
	}
	lines := func(smp *profile.Sample) []line {
		var out []line
		for _, loc := range smp.Location {
			ln := loc.Line[0]
			l := line{function: ln.Function.Name, file: ln.Function.Filename, line: ln.Line, mapped: loc.Mapping != nil}
			if loc.Mapping == nil {
				l.addr = loc.Address
			}
			out = append(out, l)
		}
		return out
	}
	want := [][]line{
		{
			{function: "ember_leaf", mapped: true},
			{function: "handle", file: "/srv/app.py", line: 42},
			{function: "[unknown interpreted frame]", file: "/srv/app.py"},
			{function: "ember_middle", mapped: true},
			{function: "<module>", file: "/srv/app.py", line: 7},
			{function: markerTruncated},
		},
		{
			{function: "LazyCompile:*render /srv/view.js", addr: jitAddr},
			{function: "<module>", file: "/srv/app.py", line: 7},
		},
	}
	for i, smp := range p.Sample {
		got := lines(smp)
		// Native frames' file and line depend on the fixture's DWARF;
		// only their names are checked.
		for j := range got {
			if got[j].mapped {
				got[j].file, got[j].line = "", 0
			}
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("sample %d:\ngot  %+v\nwant %+v", i, got, want[i])
		}
	}
	if t.Failed() {
		return
	}
	if a, b := p.Sample[0].Location[4], p.Sample[1].Location[1]; a.ID != b.ID {
		t.Errorf("one interpreted frame in two samples has two locations, %d and %d", a.ID, b.ID)
	}
}

// TestPythonFrameMapping: CPython's frames sit in one "[python]" pseudo
// mapping, which tells views their language, and keep their file and line
// through pprof's encoding.
func TestPythonFrameMapping(t *testing.T) {
	s := newTestSymbolizer(t)
	proc := process(1, loadAt(t, "prog-nopie", 0))
	leaf, _ := fixtureSymbol(t, "prog-nopie", "ember_leaf")
	py := func(fn string, line int64) model.Frame {
		return model.Frame{Kind: model.FramePython, Function: fn, File: "/srv/app.py", Line: line}
	}
	b := &model.Batch{
		PeriodNanos: 1,
		Processes:   map[model.ProcessKey]*model.Process{{PID: 1}: proc},
		Samples: []model.Sample{
			{PID: 1, TID: 1, Count: 2, UserFrames: []model.Frame{{Kind: model.FrameNative, Addr: leaf}, py("Job.run", 12), py("<module>", 3)}},
			{PID: 1, TID: 2, Count: 1, UserFrames: []model.Frame{py("Job.run", 14), py("<module>", 3)}},
		},
	}
	p, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if p, err = profile.Parse(&buf); err != nil {
		t.Fatal(err)
	}
	var mappings []string
	for _, m := range p.Mapping {
		mappings = append(mappings, m.File)
	}
	if n := slices.Index(mappings, "[python]"); n < 0 || slices.Index(mappings[n+1:], "[python]") >= 0 {
		t.Fatalf("mappings %q: want one [python]", mappings)
	}
	for _, smp := range p.Sample {
		for _, loc := range smp.Location {
			ln := loc.Line[0]
			if ln.Function.Filename != "/srv/app.py" {
				continue
			}
			if loc.Mapping == nil || loc.Mapping.File != "[python]" || loc.Address != 0 {
				t.Errorf("%s:%d: mapping %+v, address %#x", ln.Function.Name, ln.Line, loc.Mapping, loc.Address)
			}
		}
	}
	if a, b := p.Sample[0].Location[2], p.Sample[1].Location[1]; a.ID != b.ID {
		t.Errorf("<module> at the same line has two locations, %d and %d", a.ID, b.ID)
	}
	// pprof's own view keeps the names (it cut "<module>", which looks
	// like a C++ template, to nothing) and shows files and lines.
	goTool := testenv.RequireGoTool(t)
	path := filepath.Join(t.TempDir(), "py.pb.gz")
	var w bytes.Buffer
	if err := p.Write(&w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, w.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goTool, "tool", "pprof", "-lines", "-top", path).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	for _, want := range []string{"<module> /srv/app.py:3", "Job.run /srv/app.py:12", "Job.run /srv/app.py:14"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pprof -lines lacks %q:\n%s", want, out)
		}
	}
}
