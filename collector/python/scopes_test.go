package python

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ember-profiler/ember/internal/testenv"
)

// A code object as CPython's own compiler names it (testdata/qualnames.py).
type oracleCode struct {
	File     string `json:"file"`
	Line     int64  `json:"line"`
	Name     string `json:"name"`
	Qualname string `json:"qualname"`
	Error    string `json:"error"` // the file did not compile
}

func readOracle(t *testing.T, raw []byte) []oracleCode {
	t.Helper()
	var out []oracleCode
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var c oracleCode
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("oracle line %q: %v", sc.Text(), err)
		}
		out = append(out, c)
	}
	return out
}

// pyenvPython returns the pyenv build of CPython 3.minor, or "" (a
// failure in CI, where every version must be installed).
func pyenvPython(t testing.TB, minor int) string {
	t.Helper()
	exe, root := testenv.PyenvPython(minor)
	if exe == "" && testenv.InCI() {
		t.Errorf("no pyenv build of CPython 3.%d under %s", minor, root)
	}
	return exe
}

// agreement compares the finder with the oracle on one file: it fails on
// any disagreement, and returns how many it named and why the rest fell
// back.
func agreement(t *testing.T, src []byte, oracle []oracleCode) (named int, fallbacks map[QualnameFallback]int) {
	t.Helper()
	fs, err := parseScopes(src)
	fallbacks = make(map[QualnameFallback]int)
	for _, c := range oracle {
		if err != nil {
			fallbacks[FallbackUnparsed]++
			continue
		}
		got, why := fs.lookup(c.Line, c.Name)
		switch {
		case why != FallbackNone:
			fallbacks[why]++
		case got != c.Qualname:
			t.Errorf("line %d %s: %q, CPython says %q", c.Line, c.Name, got, c.Qualname)
		default:
			named++
		}
	}
	if err != nil {
		t.Logf("unparsed: %v", err)
	}
	return named, fallbacks
}

// inherentlyAmbiguous counts the code objects that share their line and
// name with one of another qualified name.
func inherentlyAmbiguous(oracle []oracleCode) int {
	quals := make(map[scopeStart]map[string]bool)
	for _, c := range oracle {
		k := scopeStart{int32(c.Line), c.Name}
		if quals[k] == nil {
			quals[k] = make(map[string]bool)
		}
		quals[k][c.Qualname] = true
	}
	n := 0
	for _, c := range oracle {
		if len(quals[scopeStart{int32(c.Line), c.Name}]) > 1 {
			n++
		}
	}
	return n
}

// TestScopesTricky: every code object of a source full of traps is named
// as CPython 3.8 names it (the golden file), and as each installed 3.8,
// 3.9 and 3.10 does, but for those that cannot be told apart.
func TestScopesTricky(t *testing.T) {
	src, err := os.ReadFile("testdata/scopes/tricky.py")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/scopes/tricky.qualnames")
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, oracle []oracleCode) {
		named, fallbacks := agreement(t, src, oracle)
		// Code objects of one name on one line in different scopes cannot
		// be told apart: those, and only those, keep co_name.
		want := len(oracle) - inherentlyAmbiguous(oracle)
		if named != want || len(fallbacks) > 1 || named+fallbacks[FallbackAmbiguous] != len(oracle) {
			t.Errorf("named %d of %d, want %d; fell back: %v", named, len(oracle), want, fallbacks)
		}
	}
	t.Run("golden", func(t *testing.T) { check(t, readOracle(t, golden)) })
	for minor := 8; minor <= 10; minor++ {
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) {
			exe := pyenvPython(t, minor)
			if exe == "" {
				t.Skipf("no pyenv build of CPython 3.%d", minor)
			}
			out, err := exec.Command(exe, "testdata/qualnames.py", "testdata/scopes/tricky.py").Output()
			if err != nil {
				t.Fatal(err)
			}
			check(t, readOracle(t, out))
		})
	}
}

// stdlibFiles are real modules the finder is checked on, in each version's
// own copy.
var stdlibFiles = []string{"typing.py", "asyncio/base_events.py", "json/decoder.py", "dataclasses.py", "inspect.py", "collections/__init__.py"}

// TestScopesStdlib: on real standard library files of 3.8, 3.9 and 3.10,
// every name the finder gives is CPython's; it logs the agreement rate
// and the fallbacks.
func TestScopesStdlib(t *testing.T) {
	for minor := 8; minor <= 10; minor++ {
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) {
			exe := pyenvPython(t, minor)
			if exe == "" {
				t.Skipf("no pyenv build of CPython 3.%d", minor)
			}
			lib := filepath.Join(filepath.Dir(filepath.Dir(exe)), "lib", fmt.Sprintf("python3.%d", minor))
			for _, name := range stdlibFiles {
				path := filepath.Join(lib, name)
				src, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				out, err := exec.Command(exe, "testdata/qualnames.py", path).Output()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				oracle := readOracle(t, out)
				named, fallbacks := agreement(t, src, oracle)
				t.Logf("%s: %d code objects, %d named as CPython does (%.1f%%), fell back: %v",
					name, len(oracle), named, 100*float64(named)/float64(max(len(oracle), 1)), fallbacks)
				if named < len(oracle)*9/10 {
					t.Errorf("%s: only %d of %d named", name, named, len(oracle))
				}
			}
		})
	}
}

// TestScopesStdlibSweep runs the finder over every module of each
// installed 3.8-3.10 standard library (tests and site-packages aside) and
// checks it against the interpreter's names: a long run, so only when
// EMBER_PY_SWEEP is set (to "all": with the test suites too).
//
//	EMBER_PY_SWEEP=1 go test ./collector/python -run StdlibSweep -v
func TestScopesStdlibSweep(t *testing.T) {
	if os.Getenv("EMBER_PY_SWEEP") == "" {
		t.Skip("a long run: set EMBER_PY_SWEEP=1")
	}
	for minor := 8; minor <= 10; minor++ {
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) {
			exe := pyenvPython(t, minor)
			if exe == "" {
				t.Skipf("no pyenv build of CPython 3.%d", minor)
			}
			lib := filepath.Join(filepath.Dir(filepath.Dir(exe)), "lib", fmt.Sprintf("python3.%d", minor))
			var files []string
			filepath.WalkDir(lib, func(path string, d os.DirEntry, err error) error {
				switch {
				case err != nil:
					return nil
				case d.IsDir() && os.Getenv("EMBER_PY_SWEEP") != "all" && (d.Name() == "test" || d.Name() == "tests" || d.Name() == "site-packages" || d.Name() == "idle_test"):
					return filepath.SkipDir
				case !d.IsDir() && strings.HasSuffix(path, ".py"):
					files = append(files, path)
				}
				return nil
			})
			out, err := exec.Command(exe, append([]string{"testdata/qualnames.py"}, files...)...).Output()
			if err != nil {
				t.Fatal(err)
			}
			byFile := make(map[string][]oracleCode)
			for _, c := range readOracle(t, out) {
				if c.Error == "" {
					byFile[c.File] = append(byFile[c.File], c)
				}
			}
			total, named := 0, 0
			fallbacks := make(map[QualnameFallback]int)
			for path, oracle := range byFile {
				src, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				n, f := agreement(t, src, oracle)
				total, named = total+len(oracle), named+n
				for why, k := range f {
					fallbacks[why] += k
				}
			}
			t.Logf("%d files, %d code objects: %d named as CPython does (%.2f%%), %d fell back %v, 0 named otherwise unless reported above",
				len(byFile), total, named, 100*float64(named)/float64(max(total, 1)), total-named, fallbacks)
		})
	}
}

// TestScopesFallBack: what the finder cannot be sure of, it does not name.
func TestScopesFallBack(t *testing.T) {
	for _, c := range []struct {
		name, src string
		line      int64
		co        string
		want      QualnameFallback
	}{
		{"nested lambdas on one line", "f = lambda: lambda: 1\n", 1, "<lambda>", FallbackAmbiguous},
		{"f-string field", "x = [a for a in b] + [f\"{[c for c in d]}\"]\n", 1, "<listcomp>", FallbackAmbiguous},
		{"no such def", "def f():\n    pass\n", 1, "g", FallbackNoMatch},
		{"wrong line", "def f():\n    pass\n", 2, "f", FallbackNoMatch},
		{"non-ASCII class", "class Ｃ:\n    def m(self): pass\n", 2, "m", FallbackAmbiguous},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs, err := parseScopes([]byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			if q, why := fs.lookup(c.line, c.co); why != c.want {
				t.Errorf("%q (%v), want fallback %v", q, why, c.want)
			}
		})
	}
	for _, c := range []struct{ name, src string }{
		{"unterminated string", "def f():\n    s = 'abc\n"},
		{"unbalanced", "def f(:\n    pass)\n)\n"},
		{"decorator alone", "@deco\nx = 1\n"},
		{"lambda in a return annotation", "def f() -> lambda: int: pass\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseScopes([]byte(c.src)); err == nil {
				t.Error("parsed, want an error")
			}
		})
	}
	// A BOM, old Mac line ends in a string: the lines still count right.
	fs, err := parseScopes([]byte("\xef\xbb\xbfdef f():\n    s = '''a\rb'''\n    def g(): pass\n"))
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := fs.lookup(4, "g"); q != "f.<locals>.g" {
		t.Errorf("after a BOM and a lone CR: %q, want f.<locals>.g", q)
	}
	if _, err := parseScopes([]byte("def f\xff():\n pass\n")); err != errNotUTF8 {
		t.Errorf("not UTF-8: %v", err)
	}
}

// FuzzScopes: sources are other processes' files, outside input.
func FuzzScopes(f *testing.F) {
	if src, err := os.ReadFile("testdata/scopes/tricky.py"); err == nil {
		f.Add(src)
	}
	f.Add([]byte("def f(a=lambda: [x for x in (lambda: 1)()]): return {k: v for k in y}\n"))
	f.Add([]byte("class A:\n\tdef b(self): '''\n'''\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if fs, err := parseScopes(src); err == nil {
			fs.lookup(1, "f")
		}
	})
}
