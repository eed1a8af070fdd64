package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ember-profiler/ember/internal/profiletest"
)

// TestRecordInlinedFrame records testdata/symbols/inline, whose hot leaf
// is mix, a static inline function gcc inlined into alpha, and checks
// that the profile shows it as pprof expects: one location whose lines
// are mix (innermost) at its source line and alpha at the call's line,
// each with its file, called from main.
func TestRecordInlinedFrame(t *testing.T) {
	const (
		fixture = "../../testdata/symbols/inline"
		source  = "/src/ember/testdata/symbols/inline.c" // as build.sh maps it
	)
	mixLine := markerLine(t, "../../testdata/symbols/inline.c", "MIX_LINE")
	callLine := markerLine(t, "../../testdata/symbols/inline.c", "CALL_LINE")
	out, _ := recordFixture(t, fixture, 3, "pprof")
	p := profiletest.Read(t, out)

	var total, inlined int64
	for _, s := range p.Sample {
		total += s.Value[0]
		var userLeaf []string
		for _, loc := range s.Location {
			if loc.Mapping == nil || loc.Mapping.File == "[kernel.kallsyms]" {
				continue
			}
			for _, l := range loc.Line {
				userLeaf = append(userLeaf, fmt.Sprintf("%s %s:%d", l.Function.Name, l.Function.Filename, l.Line))
			}
			break
		}
		// The loop is three lines of mix (xorshift) and the loop
		// around them in alpha, called from main.
		if !containsRun(userChain(s), []string{"main", "alpha", "mix"}) {
			continue
		}
		if len(userLeaf) == 2 && strings.HasPrefix(userLeaf[0], "mix "+source+":") &&
			userLeaf[1] == fmt.Sprintf("alpha %s:%d", source, callLine) {
			var line int64
			fmt.Sscanf(strings.TrimPrefix(userLeaf[0], "mix "+source+":"), "%d", &line)
			if line < mixLine || line > mixLine+2 {
				t.Errorf("mix sampled at line %d, outside its body (%d-%d)", line, mixLine, mixLine+2)
			}
			inlined += s.Value[0]
		}
	}
	t.Logf("%d of %d samples in mix inlined into alpha", inlined, total)
	if total == 0 || float64(inlined) < 0.5*float64(total) {
		t.Errorf("%d of %d samples show mix inlined into alpha, want most", inlined, total)
	}
	for _, m := range p.Mapping {
		if strings.HasSuffix(m.File, "/inline") && !(m.HasFilenames && m.HasLineNumbers && m.HasInlineFrames) {
			t.Errorf("mapping %s: filenames %v, line numbers %v, inline frames %v; want all", m.File, m.HasFilenames, m.HasLineNumbers, m.HasInlineFrames)
		}
	}
}

func markerLine(t *testing.T, path, marker string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := int64(1); sc.Scan(); n++ {
		if strings.Contains(sc.Text(), marker) {
			return n
		}
	}
	t.Fatalf("%s has no %q", path, marker)
	return 0
}
