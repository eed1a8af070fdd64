// Package mainmapping chooses the first mapping of Ember's pprof profiles.
// pprof takes a profile's first mapping for its main binary: `go tool
// pprof` prints it as the profile's "File:" and names saved profiles after
// it, and Merge keeps the first source's first mapping in first place. For
// a profile of one program that should be its executable; for a profile of
// several (a whole host, or a selector matching more than one program) no
// process's mapping is right, so a mapping without locations names the
// profile instead.
package mainmapping

import "github.com/google/pprof/profile"

// HostFile is the file of the first mapping of a profile of several
// programs. It must not start with '[' or look like a shared library, or
// pprof's parser would move another mapping before it; and it holds no
// slash, as pprof shows and saves the base name.
const HostFile = "ember-host-profile"

// Programs tells whether the samples of a profile come from one executable.
// Samples without an executable (kernel threads, processes not read) count
// as another program.
type Programs struct {
	exe     string
	seen    bool
	several bool
}

// Add counts a sample's executable, "" if it has none.
func (g *Programs) Add(exe string) {
	switch {
	case !g.seen:
		g.exe, g.seen = exe, true
	case exe != g.exe:
		g.several = true
	}
}

// Single returns the one executable of every sample added, if there is one.
func (g *Programs) Single() (string, bool) {
	return g.exe, g.seen && !g.several && g.exe != ""
}

// Place puts the right mapping first in p, judging by the samples' "exe"
// labels, and renumbers the mappings. A profile without samples is left as
// it is.
func Place(p *profile.Profile) {
	if len(p.Sample) == 0 {
		return
	}
	var g Programs
	for _, s := range p.Sample {
		exe := ""
		if v := s.Label["exe"]; len(v) > 0 {
			exe = v[0]
		}
		g.Add(exe)
	}
	p.Mapping = Order(p.Mapping, g)
}

// Order returns mappings with the right one first, renumbered from 1: the
// executable's own mapping when g saw one executable and a mapping of it
// is there, else a HostFile mapping (reused if present, added if not).
// The slice is not modified in place: profiles may share it.
func Order(mappings []*profile.Mapping, g Programs) []*profile.Mapping {
	first := -1
	exe, single := g.Single()
	for i, m := range mappings {
		if single && m.File == exe || !single && m.File == HostFile {
			first = i
			break
		}
	}
	out := make([]*profile.Mapping, 0, len(mappings)+1)
	switch {
	case first >= 0:
		out = append(out, mappings[first])
		out = append(out, mappings[:first]...)
		out = append(out, mappings[first+1:]...)
	case !single:
		// Marked as fully symbolized so pprof never looks for the file.
		out = append(out, &profile.Mapping{File: HostFile, HasFunctions: true, HasFilenames: true,
			HasLineNumbers: true, HasInlineFrames: true})
		out = append(out, mappings...)
	default:
		out = append(out, mappings...)
	}
	for i, m := range out {
		m.ID = uint64(i + 1)
	}
	return out
}
