package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/mainmapping"
)

// drainOf is a drain's profile with one sample of each executable, whose
// mappings come in the order given.
func drainOf(exes ...string) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10101010,
	}
	for i, exe := range exes {
		m := &profile.Mapping{ID: uint64(i + 1), Start: uint64(i+1) << 32, Limit: uint64(i+2) << 32, File: exe, HasFunctions: true}
		fn := &profile.Function{ID: uint64(i + 1), Name: "main." + exe}
		loc := &profile.Location{ID: uint64(i + 1), Mapping: m, Address: m.Start + 64, Line: []profile.Line{{Function: fn}}}
		p.Mapping, p.Function, p.Location = append(p.Mapping, m), append(p.Function, fn), append(p.Location, loc)
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{1, 10101010},
			Label: map[string][]string{"comm": {exe[1:]}, "exe": {exe}}, NumLabel: map[string][]int64{"pid": {int64(100 + i)}}})
	}
	return p
}

// A live profile filtered to one program is titled by that program, not by
// whichever process's mapping came first in the drain.
func TestLiveProfileFirstMapping(t *testing.T) {
	for _, tt := range []struct{ selector, want string }{
		{`{comm="postgres"}`, "/postgres"},
		{``, mainmapping.HostFile},
	} {
		feed := newLiveFeed()
		go func() {
			for range 20 {
				feed.publish(drainOf("/memfd:sealed-runc", "/postgres", "/nginx"))
				time.Sleep(10 * time.Millisecond)
			}
		}()
		p, err := feed.Profile(context.Background(), 150*time.Millisecond, tt.selector)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Sample) == 0 {
			t.Fatalf("%s: no samples", tt.selector)
		}
		if err := p.CheckValid(); err != nil {
			t.Fatal(err)
		}
		if p.Mapping[0].File != tt.want {
			t.Errorf("%s: first mapping %q, want %q", tt.selector, p.Mapping[0].File, tt.want)
		}
	}
}
