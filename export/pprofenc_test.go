package export

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/export/exporttest"
)

// profileHeader is what both describe and sampleSums compare of a
// profile besides its samples: types, period and span.
func profileHeader(p *profile.Profile) string {
	head := fmt.Sprintf("period %v %d span %d+%d default %q", *p.PeriodType, p.Period, p.TimeNanos, p.DurationNanos,
		p.DefaultSampleType)
	for _, st := range p.SampleType {
		head += " " + st.Type + "/" + st.Unit
	}
	return head
}

// describe is what a backend reads from a profile: types, period, span,
// and each sample's stack, frames with their address (as address gives
// it) and mapping, and values.
func describe(p *profile.Profile, address func(*profile.Location) uint64) map[string]int64 {
	out := map[string]int64{profileHeader(p): 1}
	for _, smp := range p.Sample {
		key := exporttest.PprofStack(smp)
		for _, loc := range smp.Location {
			key += fmt.Sprintf(" %#x", address(loc))
			if m := loc.Mapping; m != nil {
				key += fmt.Sprintf("@%s[%#x-%#x+%#x %s %v]", m.File, m.Start, m.Limit, m.Offset, m.BuildID, m.HasFunctions)
			}
			for _, ln := range loc.Line {
				key += fmt.Sprintf(" %s:%s:%d:%d", ln.Function.Filename, ln.Function.SystemName, ln.Line, ln.Function.StartLine)
			}
		}
		for i, v := range smp.Value {
			out[fmt.Sprintf("%s value%d", key, i)] += v
		}
	}
	return out
}

func locAddress(l *profile.Location) uint64 { return l.Address }

// unnamedAddress is the address of a frame without a name: those with one
// are in mappings with functions here, and go without.
func unnamedAddress(l *profile.Location) uint64 {
	if len(l.Line) > 0 {
		return 0
	}
	return l.Address
}

// Each series the encoder writes parses, with pprof's own parser, to what
// the series' samples say, whether the interval's IDs are 1..n or not;
// named frames of mappings with functions without their addresses, which
// Pyroscope clears.
func TestSeriesEncoderWritesWhatPprofReads(t *testing.T) {
	for _, scrambled := range []bool{false, true} {
		p := testInterval(time.Unix(1_800_000_000, 0), 3)
		p.DefaultSampleType = "cpu"
		p.Mapping[1].BuildID = "abc123"
		p.Location[2].IsFolded = true
		p.Location[3].Line = append(p.Location[3].Line, profile.Line{Function: p.Function[1], Line: -7, Column: 3})
		p.Location[1].Line = nil // an unnamed frame keeps its address
		if scrambled {           // IDs that are not indices of the tables
			for _, l := range p.Location {
				l.ID += 1000
			}
			for _, f := range p.Function {
				f.ID *= 7
			}
			p.Mapping = p.Mapping[1:] // one mapping only reached from locations
		}
		lp := labelPolicy{service: mustTemplate(t, "{comm}")}
		series := lp.split(p)
		var enc seriesEncoder
		enc.reset(p)
		for round := range 2 { // the second round reuses the interval's location bytes
			for _, s := range series {
				raw := enc.encode(nil, s.Samples)
				got, err := profile.ParseData(raw)
				if err != nil {
					t.Fatalf("scrambled %v: %v", scrambled, err)
				}
				if err := got.CheckValid(); err != nil {
					t.Fatalf("scrambled %v: %v", scrambled, err)
				}
				want := &profile.Profile{SampleType: p.SampleType, DefaultSampleType: p.DefaultSampleType,
					PeriodType: p.PeriodType, Period: p.Period, TimeNanos: p.TimeNanos, DurationNanos: p.DurationNanos,
					Sample: s.Samples}
				if d := exporttest.DiffMaps(describe(got, locAddress), describe(want, unnamedAddress)); d != "" {
					t.Errorf("scrambled %v round %d series %v:\n%s", scrambled, round, s.Labels, d)
				}
				used := map[*profile.Location]bool{}
				for _, smp := range s.Samples {
					for _, l := range smp.Location {
						used[l] = true
					}
				}
				if len(got.Location) != len(used) {
					t.Errorf("series %v carries %d locations, its samples use %d", s.Labels, len(got.Location), len(used))
				}
			}
		}
		enc.release()
	}
}

func mustTemplate(t *testing.T, s string) Template {
	t.Helper()
	tmpl, err := ParseTemplate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}
