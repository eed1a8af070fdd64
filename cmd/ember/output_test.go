package main

import (
	"bytes"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/report"
)

// TestRecordFormats checks --format's table: its names, defaults, and that
// each format writes what its writer in report or pprof writes.
func TestRecordFormats(t *testing.T) {
	if got := recordFormatNames(); got != "pprof or folded" {
		t.Errorf("format names %q, want %q (they appear in --help and errors)", got, "pprof or folded")
	}
	fn := &profile.Function{ID: 1, Name: "main"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample:     []*profile.Sample{{Value: []int64{3, 30}, Location: []*profile.Location{loc}, Label: map[string][]string{"comm": {"app"}}}},
		Location:   []*profile.Location{loc},
		Function:   []*profile.Function{fn},
	}
	for _, tc := range []struct{ name, output, want string }{
		{"pprof", "ember.pb.gz", ""},
		{"folded", "ember.folded", "app;main 3\n"},
	} {
		f, ok := findRecordFormat(tc.name)
		if !ok || f.defaultOutput != tc.output {
			t.Fatalf("%s: found %v, default output %q, want %q", tc.name, ok, f.defaultOutput, tc.output)
		}
		var got, want bytes.Buffer
		if err := f.write(&got, p); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.name == "pprof" {
			if err := p.Write(&want); err != nil {
				t.Fatal(err)
			}
		} else if err := report.WriteFolded(&want, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) || tc.want != "" && got.String() != tc.want {
			t.Errorf("%s wrote %q, want %q", tc.name, got.Bytes(), want.Bytes())
		}
	}
	if _, ok := findRecordFormat("svg"); ok {
		t.Error("svg is a format")
	}
	opts := recordOptions{duration: 1, drainInterval: 1 << 30, format: "folded"}
	opts.collector.FrequencyHz = 99
	if err := opts.validate(); err != nil || opts.output != "ember.folded" {
		t.Errorf("validate: %v, output %q, want ember.folded", err, opts.output)
	}
}
