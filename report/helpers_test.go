package report

import (
	"strings"

	"github.com/google/pprof/profile"
)

// fixture builds a small profile of known shape, values in cpu nanoseconds
// (and 1 count per 5 ns):
//
//	main (self 5) -> work (self 20) -> hot (self 60)
//	main          -> idle (self 15)
//
// total 100. scale multiplies every value.
func fixture(scale int64) *profile.Profile {
	b := newProfileBuilder()
	b.add(60*scale, "hot", "work", "main")
	b.add(20*scale, "work", "main")
	b.add(15*scale, "idle", "main")
	b.add(5*scale, "main")
	return b.p
}

// profileBuilder makes pprof profiles by function names, leaf first; every
// function has its own location in /bin/app, file <name>.go.
type profileBuilder struct {
	p    *profile.Profile
	locs map[string]*profile.Location
}

func newProfileBuilder() *profileBuilder {
	return &profileBuilder{
		p: &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
			PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
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
func (b *profileBuilder) loc(name string) *profile.Location {
	if l, ok := b.locs[name]; ok {
		return l
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Mapping: b.p.Mapping[0], Address: 0x1000 + uint64(len(b.p.Location))*16}
	for _, fn := range strings.Split(name, "+") {
		f := b.function(fn)
		l.Line = append(l.Line, profile.Line{Function: f, Line: 1})
	}
	b.p.Location = append(b.p.Location, l)
	b.locs[name] = l
	return l
}

func (b *profileBuilder) function(name string) *profile.Function {
	for _, f := range b.p.Function {
		if f.Name == name {
			return f
		}
	}
	f := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: name, SystemName: name, Filename: name + ".go"}
	b.p.Function = append(b.p.Function, f)
	return f
}

func (b *profileBuilder) add(cpuNanos int64, leafFirst ...string) {
	s := &profile.Sample{Value: []int64{cpuNanos / 5, cpuNanos}}
	for _, name := range leafFirst {
		s.Location = append(s.Location, b.loc(name))
	}
	b.p.Sample = append(b.p.Sample, s)
}
