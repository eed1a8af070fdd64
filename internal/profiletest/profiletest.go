// Package profiletest builds small pprof profiles of known shape by function
// name, and compares output with golden files, for the tests of report and web.
package profiletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

// Fixture builds a small profile of known shape, values in cpu nanoseconds
// (and 1 count per 5 ns):
//
//	main (self 5) -> work (self 20) -> hot (self 60)
//	main          -> idle (self 15)
//
// total 100. scale multiplies every value.
func Fixture(scale int64) *profile.Profile {
	b := NewBuilder()
	b.Add(60*scale, "hot", "work", "main")
	b.Add(20*scale, "work", "main")
	b.Add(15*scale, "idle", "main")
	b.Add(5*scale, "main")
	return b.P
}

// Builder makes pprof profiles by function names, leaf first; every
// function has its own location in /bin/app, file <name>.go.
type Builder struct {
	P    *profile.Profile
	locs map[string]*profile.Location
}

// NewBuilder starts an empty CPU profile with one mapping, /bin/app.
func NewBuilder() *Builder {
	return &Builder{
		P: &profile.Profile{
			SampleType: schema.CPUSampleTypes(),
			PeriodType: schema.PeriodType.ValueType(),
			Period:     5,
			// Symbolized, as Ember's profiles are, so pprof does not try again.
			Mapping: []*profile.Mapping{{ID: 1, Start: 0x1000, Limit: 0x100000, File: "/bin/app",
				HasFunctions: true, HasFilenames: true, HasLineNumbers: true, HasInlineFrames: true}},
		},
		locs: map[string]*profile.Location{},
	}
}

// loc is the location of a function; a name with "+" is inlined frames,
// innermost first ("inner+outer").
func (b *Builder) loc(name string) *profile.Location {
	if l, ok := b.locs[name]; ok {
		return l
	}
	l := &profile.Location{ID: uint64(len(b.P.Location) + 1), Mapping: b.P.Mapping[0], Address: 0x1000 + uint64(len(b.P.Location))*16}
	for _, fn := range strings.Split(name, "+") {
		l.Line = append(l.Line, profile.Line{Function: b.Function(fn), Line: 1})
	}
	b.P.Location = append(b.P.Location, l)
	b.locs[name] = l
	return l
}

// Function is the function of that name, added at first use.
func (b *Builder) Function(name string) *profile.Function {
	for _, f := range b.P.Function {
		if f.Name == name {
			return f
		}
	}
	f := &profile.Function{ID: uint64(len(b.P.Function) + 1), Name: name, SystemName: name, Filename: name + ".go"}
	b.P.Function = append(b.P.Function, f)
	return f
}

// Add appends a sample of cpuNanos on the stack leafFirst.
func (b *Builder) Add(cpuNanos int64, leafFirst ...string) {
	s := &profile.Sample{Value: []int64{cpuNanos / 5, cpuNanos}}
	for _, name := range leafFirst {
		s.Location = append(s.Location, b.loc(name))
	}
	b.P.Sample = append(b.P.Sample, s)
}

// Read parses the pprof file at path (gzipped or not).
func Read(t testing.TB, path string) *profile.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

// Golden compares got with testdata/name, or rewrites it when update is set.
func Golden(t testing.TB, name string, got []byte, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update in the package's folder to create it)", err, t.Name())
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (review, then rerun with -update):\n got: %s\nwant: %s", path, got, want)
	}
}
