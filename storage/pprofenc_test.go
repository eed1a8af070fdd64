package storage

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/mainmapping"
)

// TestWriteProfileIsQuery checks that the direct pprof encoding decodes to
// exactly the profile Query builds: same samples, labels, locations,
// functions and mappings, with the same ids.
func TestWriteProfileIsQuery(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	appendRange(t, s, g, t0, 10*time.Second, 90, map[string]string{"host": "web-1"})
	sel, err := ParseSelector(`{comm=~"post.*|nginx"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []ProfileQuery{
		{From: t0, To: t0.Add(time.Hour)},
		{From: t0.Add(3 * time.Minute), To: t0.Add(11 * time.Minute), Selector: sel},
		{From: t0.Add(-time.Hour), To: t0}, // no data
	} {
		want, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := s.WriteProfile(context.Background(), q, &buf); err != nil {
			t.Fatal(err)
		}
		got, err := profile.Parse(&buf)
		if err != nil {
			t.Fatalf("the encoded profile does not parse: %v", err)
		}
		if err := got.CheckValid(); err != nil {
			t.Fatalf("CheckValid: %v", err)
		}
		if g, w := got.String(), want.String(); g != w {
			t.Errorf("%v..%v: WriteProfile differs from Query:\n got %.3000s\nwant %.3000s", q.From, q.To, g, w)
		}
		if len(want.Sample) > 0 && len(got.Sample[0].Label["comm"]) != 1 {
			t.Errorf("labels lost: %v %v", got.Sample[0].Label, got.Sample[0].NumLabel)
		}
	}
	if err := s.WriteProfile(context.Background(), ProfileQuery{From: t0, To: t0.Add(-time.Second)}, &bytes.Buffer{}); err == nil {
		t.Error("a range that ends before it starts was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WriteProfile(ctx, ProfileQuery{From: t0, To: t0.Add(time.Hour)}, &bytes.Buffer{}); err == nil {
		t.Error("a cancelled query wrote a profile")
	}
}

// TestStackProfileSumsLabelSets checks that StackProfile is Query with the
// labels dropped: the same total per stack, one sample per stack.
func TestStackProfileSumsLabelSets(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	appendRange(t, s, g, t0, 10*time.Second, 90, nil)
	sel, err := ParseSelector(`{comm!="postgres"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []ProfileQuery{
		{From: t0, To: t0.Add(time.Hour)},
		{From: t0.Add(90 * time.Second), To: t0.Add(13 * time.Minute), Selector: sel},
	} {
		full, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		stacks, err := s.StackProfile(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if err := stacks.CheckValid(); err != nil {
			t.Fatalf("CheckValid: %v", err)
		}
		for _, smp := range full.Sample {
			smp.Label, smp.NumLabel = nil, nil
		}
		if g, w := canonical(stacks, nil), canonical(full, nil); g != w {
			t.Errorf("StackProfile differs from Query without labels:\n got %.2000s\nwant %.2000s", g, w)
		}
		seen := make(map[*profile.Location]bool)
		for _, smp := range stacks.Sample {
			if len(smp.Label)+len(smp.NumLabel) != 0 {
				t.Fatalf("sample has labels: %v %v", smp.Label, smp.NumLabel)
			}
			if seen[smp.Location[0]] && len(smp.Location) == 1 {
				t.Fatalf("stack %v appears twice", smp.Location)
			}
			seen[smp.Location[0]] = true
		}
		if len(stacks.Sample) >= len(full.Sample) {
			t.Errorf("%d stack samples for %d labelled ones: nothing was summed", len(stacks.Sample), len(full.Sample))
		}
	}
}

// A stored profile of several programs is titled as the host's in pprof;
// one of a single program, by its executable.
func TestStoredProfileFirstMapping(t *testing.T) {
	s := openTest(t, Options{})
	appendRange(t, s, smallGenerator(), t0, 10*time.Second, 3, nil)
	whole := ProfileQuery{From: t0, To: t0.Add(time.Hour)}
	want, err := s.Query(context.Background(), whole)
	if err != nil {
		t.Fatal(err)
	}
	exe := want.Sample[0].Label["exe"][0]
	sel, err := ParseSelector(`{exe="` + exe + `"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		q    ProfileQuery
		want string
	}{
		{whole, mainmapping.HostFile},
		{ProfileQuery{From: t0, To: t0.Add(time.Hour), Selector: sel}, exe},
	} {
		p, err := s.Query(context.Background(), tt.q)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := s.WriteProfile(context.Background(), tt.q, &buf); err != nil {
			t.Fatal(err)
		}
		written, err := profile.Parse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if p.Mapping[0].File != tt.want || written.Mapping[0].File != tt.want {
			t.Errorf("%v: first mapping %q from Query, %q from WriteProfile; want %q",
				tt.q.Selector, p.Mapping[0].File, written.Mapping[0].File, tt.want)
		}
	}
}
