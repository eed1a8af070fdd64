package mainmapping

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// hostProfile has samples of the programs exes, with a memfd mapping
// first as a whole-host drain had it; with more than one program, also
// samples of that memfd process and of a kernel thread, which have no exe.
func hostProfile(exes ...string) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10101010,
	}
	files := append([]string{"memfd:sealed-runc (deleted)"}, exes...)
	files = append(files, "[kernel.kallsyms]")
	for i, file := range files {
		m := &profile.Mapping{ID: uint64(i + 1), Start: uint64(i+1) << 32, Limit: uint64(i+2) << 32, File: file, HasFunctions: true}
		fn := &profile.Function{ID: uint64(i + 1), Name: "f" + file}
		loc := &profile.Location{ID: uint64(i + 1), Mapping: m, Address: m.Start + 16, Line: []profile.Line{{Function: fn}}}
		p.Mapping, p.Function, p.Location = append(p.Mapping, m), append(p.Function, fn), append(p.Location, loc)
		label := map[string][]string{"comm": {filepath.Base(file)}}
		switch {
		case i > 0 && i <= len(exes):
			label["exe"] = []string{file}
		case len(exes) == 1:
			continue // one program: no other process, no kernel thread
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{1, 10101010}, Label: label})
	}
	return p
}

func roundTrip(t *testing.T, p *profile.Profile) *profile.Profile {
	t.Helper()
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPlaceSeveralPrograms(t *testing.T) {
	p := hostProfile("/usr/bin/postgres", "/usr/sbin/nginx")
	Place(p)
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if p.Mapping[0].File != HostFile || len(p.Mapping) != 5 {
		t.Fatalf("mappings %v", p.Mapping)
	}
	// pprof's parser moves what it guesses is the main binary first: the
	// host mapping must survive that, and a merge of several profiles.
	if got := roundTrip(t, p); got.Mapping[0].File != HostFile {
		t.Errorf("after a round trip the first mapping is %q", got.Mapping[0].File)
	}
	q := hostProfile("/usr/bin/redis-server")
	q.Sample = append(q.Sample, &profile.Sample{Location: q.Location[:1], Value: []int64{1, 1}, Label: map[string][]string{"comm": {"kworker"}}})
	Place(q)
	merged, err := profile.Merge([]*profile.Profile{p, q})
	if err != nil {
		t.Fatal(err)
	}
	if err := merged.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if merged.Mapping[0].File != HostFile || roundTrip(t, merged).Mapping[0].File != HostFile {
		t.Errorf("merged: first mapping %q", merged.Mapping[0].File)
	}
	n := 0
	for _, m := range merged.Mapping {
		if m.File == HostFile {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d host mappings after a merge", n)
	}
	// Placing again reuses the mapping.
	Place(merged)
	if merged.Mapping[0].File != HostFile || merged.Mapping[1].File == HostFile {
		t.Errorf("placed twice: %v", merged.Mapping)
	}
}

func TestPlaceOneProgram(t *testing.T) {
	p := hostProfile("/usr/bin/postgres")
	Place(p)
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if p.Mapping[0].File != "/usr/bin/postgres" || len(p.Mapping) != 3 {
		t.Fatalf("mappings %v", p.Mapping)
	}
	for i, m := range p.Mapping {
		if m.ID != uint64(i+1) {
			t.Errorf("mapping %d has ID %d", i, m.ID)
		}
	}
	if got := roundTrip(t, p); got.Mapping[0].File != "/usr/bin/postgres" {
		t.Errorf("after a round trip the first mapping is %q", got.Mapping[0].File)
	}
}

// What `go tool pprof` prints as the profile's title.
func TestPprofTitle(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	p := hostProfile("/usr/bin/postgres", "/usr/sbin/nginx")
	Place(p)
	path := filepath.Join(t.TempDir(), "host.pb.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(goTool, "tool", "pprof", "-top", path).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "File: "+HostFile+"\n") {
		t.Errorf("go tool pprof -top:\n%s", out)
	}
}
