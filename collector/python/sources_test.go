package python

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const twoRuns = `class A:
    def run(self):
        return 1


class B:
    def run(self):
        return 2
`

func writeSource(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "two.py")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSourcesQualname(t *testing.T) {
	path := writeSource(t, twoRuns)
	s := NewSources(DefaultSourceBudget)
	view := s.View(os.Getpid(), 0)
	view.Start = time.Now() // the file is an hour older
	for _, c := range []struct {
		line int64
		want string
	}{{2, "A.run"}, {7, "B.run"}, {1, "A"}} {
		name := c.want[len(c.want)-1:]
		if name != "A" {
			name = "run"
		}
		if got, why := s.Qualname(view, false, path, c.line, name); got != c.want || why != FallbackNone {
			t.Errorf("line %d: %q (%v), want %s", c.line, got, why, c.want)
		}
	}
	if s.parses != 1 {
		t.Errorf("parsed %d times, want once", s.parses)
	}
	// The process has left and its root was the host's: the host path.
	view.HostRoot = true
	if got, _ := s.Qualname(view, true, path, 7, "run"); got != "B.run" {
		t.Errorf("after exit: %q", got)
	}
	view.HostRoot = false
	if _, why := s.Qualname(view, true, path, 7, "run"); why != FallbackExited {
		t.Errorf("after exit, another root: %v", why)
	}
}

// TestSourcesRelativePath: 3.8 keeps a script's path as given on the
// command line; it is found from the directory the process started in.
func TestSourcesRelativePath(t *testing.T) {
	path := writeSource(t, twoRuns)
	s := NewSources(DefaultSourceBudget)
	view := s.View(os.Getpid(), 0)
	view.Start = time.Now()
	if wd, _ := os.Getwd(); view.Cwd != wd {
		t.Errorf("view's directory %q, want this process's %q", view.Cwd, wd)
	}
	view.Cwd = filepath.Dir(path)
	if got, why := s.Qualname(view, false, "two.py", 7, "run"); got != "B.run" || why != FallbackNone {
		t.Errorf("relative to the start directory: %q (%v), want B.run", got, why)
	}
	view.HostRoot = true
	if got, why := s.Qualname(view, true, "./two.py", 2, "run"); got != "A.run" || why != FallbackNone {
		t.Errorf("after exit: %q (%v), want A.run", got, why)
	}
}

func TestSourcesFallBack(t *testing.T) {
	path := writeSource(t, twoRuns)
	s := NewSources(DefaultSourceBudget)
	view := s.View(os.Getpid(), 0)
	view.Start = time.Now()
	fifo := filepath.Join(t.TempDir(), "fifo.py")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "latin1.py")
	os.WriteFile(bad, []byte("# caf\xe9\ndef f():\n    pass\n"), 0o644)
	os.Chtimes(bad, view.Start.Add(-time.Hour), view.Start.Add(-time.Hour))
	for _, c := range []struct {
		name, file string
		line       int64
		co         string
		start      time.Time
		want       QualnameFallback
	}{
		{"frozen", "<frozen importlib._bootstrap>", 1, "f", view.Start, FallbackNoPath},
		{"relative, no directory", "two.py", 2, "run", view.Start, FallbackNoPath},
		{"missing", path + ".gone", 2, "run", view.Start, FallbackUnreadable},
		{"fifo", fifo, 1, "f", view.Start, FallbackUnreadable},
		{"changed since start", path, 2, "run", view.Start.Add(-2 * time.Hour), FallbackChanged},
		{"not UTF-8", bad, 2, "f", view.Start, FallbackNotUTF8},
		{"no header there", path, 3, "run", view.Start, FallbackNoMatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := view
			v.Start = c.start
			v.Cwd = ""
			if got, why := s.Qualname(v, false, c.file, c.line, c.co); why != c.want {
				t.Errorf("%q (%v), want fallback %v", got, why, c.want)
			}
		})
	}
	if got, why := s.Qualname(view, false, "<string>", 1, "<module>"); got != "<module>" || why != FallbackNone {
		t.Errorf("<module>: %q (%v)", got, why)
	}
}

// TestSourcesBudget: past its budget the cache forgets the files used
// longest ago, and parses them again when they come back.
func TestSourcesBudget(t *testing.T) {
	a, b := writeSource(t, twoRuns), writeSource(t, twoRuns+"\n\nclass C:\n    pass\n")
	s := NewSources(1) // room for one file
	view := s.View(os.Getpid(), 0)
	view.Start = time.Time{} // unknown: not checked
	for _, f := range []string{a, b, a} {
		if got, _ := s.Qualname(view, false, f, 7, "run"); got != "B.run" {
			t.Errorf("%s: %q", f, got)
		}
	}
	if s.parses != 3 || len(s.byFile) != 1 {
		t.Errorf("%d parses, %d files kept; want 3 and 1", s.parses, len(s.byFile))
	}
}

// TestProcessQualifies: a 3.10 code object named run is named B.run from
// its source, once, and counted so.
func TestProcessQualifies(t *testing.T) {
	path := writeSource(t, twoRuns)
	l, _ := LayoutFor(10)
	const (
		codeType = 0x1000
		code     = 0x2000
		name     = 0x3000
		file     = 0x4000
		table    = 0x5000
	)
	codeObj := make([]byte, l.CodeSize)
	put := func(off uint16, v uint64) { binary.LittleEndian.PutUint64(codeObj[off:], v) }
	put(objectType, codeType)
	put(l.CodeName, name)
	put(l.CodeFilename, file)
	put(l.CodeLineTable, table)
	binary.LittleEndian.PutUint32(codeObj[l.CodeFirstLine:], 7)
	tbl := make([]byte, bytesData+2)
	binary.LittleEndian.PutUint64(tbl[bytesSize:], 2)
	copy(tbl[bytesData:], []byte{4, 1})
	mem := fakeMemory{code: codeObj, name: asciiString("run"), file: asciiString(path), table: tbl}
	p := NewProcess(&Interpreter{Layout: l, CodeType: codeType}, mem)
	p.Sources = NewSources(DefaultSourceBudget)
	p.View = p.Sources.View(os.Getpid(), 0)
	p.View.Start = time.Now()
	var st Stats
	w := wordMark | code>>3
	for range 3 {
		if f := p.frame(w, &st); f.Function != "B.run" || f.File != path {
			t.Errorf("frame %+v, want B.run in %s", f, path)
		}
	}
	if st.Qualified != 3 || p.Sources.parses != 1 {
		t.Errorf("qualified %d frames with %d parses, want 3 with 1", st.Qualified, p.Sources.parses)
	}
	// Its source gone: co_name, and the reason counted.
	os.Remove(path)
	p2 := NewProcess(&Interpreter{Layout: l, CodeType: codeType}, mem)
	p2.Sources, p2.View = NewSources(DefaultSourceBudget), p.View
	var st2 Stats
	if f := p2.frame(w, &st2); f.Function != "run" || st2.QualnameFallbacks[FallbackUnreadable] != 1 {
		t.Errorf("source gone: %q, fallbacks %v", f.Function, st2.QualnameFallbacks)
	}
}

// stdlibTyping is 3.10's typing.py, a large real module, or "" (skipped).
func stdlibTyping(b *testing.B) string {
	exe := pyenvPython(b, 10)
	if exe == "" {
		b.Skip("no pyenv build of CPython 3.10")
	}
	return filepath.Join(filepath.Dir(filepath.Dir(exe)), "lib", "python3.10", "typing.py")
}

// BenchmarkParseScopes: the once-per-file cost, on 3.10's typing.py.
func BenchmarkParseScopes(b *testing.B) {
	src, err := os.ReadFile(stdlibTyping(b))
	if err != nil {
		b.Skip(err)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	var fs *fileScopes
	for b.Loop() {
		if fs, err = parseScopes(src); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fs.bytes), "kept-bytes") // what the cache's budget is charged
	b.ReportMetric(float64(len(fs.byStart)), "code-objects")
}

// BenchmarkQualnameCached: the once-per-code-object cost when its file is
// parsed already (open in the process's root, fstat, look up).
func BenchmarkQualnameCached(b *testing.B) {
	path := stdlibTyping(b)
	s := NewSources(DefaultSourceBudget)
	view := s.View(os.Getpid(), 0)
	view.Start = time.Time{}
	s.Qualname(view, false, path, 2, "nothing") // parses it
	for b.Loop() {
		s.Qualname(view, false, path, 2, "nothing")
	}
}
