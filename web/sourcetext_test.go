package web

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// profileStore answers every profile query with one profile.
type profileStore struct {
	*fakeStore
	p *profile.Profile
}

func (s profileStore) Profile(context.Context, time.Time, time.Time, string) (*profile.Profile, error) {
	return s.p, nil
}

// TestSourceText: the source view gets the text of a function's lines and
// a few around them when its file is a source file on the host, and says
// why not otherwise, without reading files that are not source code.
func TestSourceText(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "hot.go")
	var text []string
	for i := 1; i <= 30; i++ {
		text = append(text, "line "+strings.Repeat("x", i%3)+string(rune('a'+i%26)))
	}
	if err := os.WriteFile(src, []byte(strings.Join(text, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &profile.Mapping{ID: 1, Start: 0x1000, Limit: 0x9000, File: "/bin/app"}
	fns := []*profile.Function{
		{ID: 1, Name: "hot", Filename: src},
		{ID: 2, Name: "secret", Filename: "/etc/passwd"},
		{ID: 3, Name: "gone", Filename: filepath.Join(dir, "gone.c")},
	}
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}}, Mapping: []*profile.Mapping{m}, Function: fns}
	for i, at := range []struct {
		fn   int
		line int64
	}{{0, 12}, {0, 14}, {1, 3}, {2, 7}} {
		loc := &profile.Location{ID: uint64(i + 1), Mapping: m, Address: 0x1000 + uint64(i), Line: []profile.Line{{Function: fns[at.fn], Line: at.line}}}
		p.Location = append(p.Location, loc)
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{5}})
	}
	get := func(ts *testServer, fn string) SourceLines {
		return decode[SourceLines](t, ts.get("/api/v1/source?function="+url.QueryEscape(fn)))
	}
	ts := newTestServer(t, func(o *Options) { o.Store = profileStore{newFakeStore(), p} })
	hot := get(ts, "hot")
	if hot.Text == nil || hot.Text.First != 12-sourceContext || len(hot.Text.Lines) != 14+sourceContext-(12-sourceContext)+1 {
		t.Fatalf("hot's text: %+v (%s), want lines %d..%d", hot.Text, hot.NoText, 12-sourceContext, 14+sourceContext)
	}
	if got, want := hot.Text.Lines[sourceContext], text[11]; got != want {
		t.Errorf("line 12 reads %q, want %q", got, want)
	}
	for fn, why := range map[string]string{"secret": "not a source file", "gone": "not on this host"} {
		if s := get(ts, fn); s.Text != nil || !strings.Contains(s.NoText, why) {
			t.Errorf("%s: text %+v, reason %q: want none because %q", fn, s.Text, s.NoText, why)
		}
	}
	off := newTestServer(t, func(o *Options) {
		o.Store = profileStore{newFakeStore(), p}
		o.Limits.MaxSourceBytes = -1
	})
	if s := get(off, "hot"); s.Text != nil || !strings.Contains(s.NoText, "turned off") {
		t.Errorf("source text off: %+v, %q", s.Text, s.NoText)
	}
	small := newTestServer(t, func(o *Options) {
		o.Store = profileStore{newFakeStore(), p}
		o.Limits.MaxSourceBytes = 10
	})
	if s := get(small, "hot"); s.Text != nil || !strings.Contains(s.NoText, "larger than") {
		t.Errorf("a file over the limit: %+v, %q", s.Text, s.NoText)
	}
}
