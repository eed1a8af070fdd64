package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage/internal/backfill"
)

// t0 is an hour boundary, so that tests can place intervals around roll-up edges.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openTest opens a store in a new temporary directory, closed at cleanup.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.freeBytes == nil {
		opts.freeBytes = func(string) (int64, error) { return 1 << 40, nil }
	}
	if opts.now == nil {
		// Retention runs on this clock: the wall clock would age the
		// fixtures' fixed dates out of the store a week after they were
		// written.
		opts.now = func() time.Time { return t0.Add(24 * time.Hour) }
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// smallGenerator makes small intervals quickly.
func smallGenerator() *backfill.Generator {
	return backfill.New(backfill.Config{Seed: 1, Processes: 30, StacksPerProgram: 60, CPUs: 1, FrequencyHz: 20})
}

// appendRange appends generated intervals of length d from start, n of them,
// and returns the profiles.
func appendRange(t testing.TB, s *Store, g *backfill.Generator, start time.Time, d time.Duration, n int, host map[string]string) []*profile.Profile {
	t.Helper()
	var out []*profile.Profile
	for i := range n {
		p := g.Interval(start.Add(time.Duration(i)*d), d)
		if err := s.Append(context.Background(), p, host); err != nil {
			t.Fatalf("Append interval %d: %v", i, err)
		}
		out = append(out, p)
	}
	return out
}

// canonical renders a profile as sorted lines "labels | stack of function
// names -> values", merging samples that render the same. Stored label sets
// drop tid, so canonical drops it too; host labels are added to inputs by
// the caller.
func canonical(p *profile.Profile, host map[string]string) string {
	sums := make(map[string][2]int64)
	ci, vi := -1, -1
	for i, st := range p.SampleType {
		switch st.Type {
		case "samples":
			ci = i
		case "cpu":
			vi = i
		}
	}
	for _, s := range p.Sample {
		var labels []string
		for k, v := range s.Label {
			if k == "pid" || k == "tid" {
				continue
			}
			labels = append(labels, k+"="+v[0])
		}
		for k, v := range s.NumLabel {
			if k == "tid" {
				continue
			}
			labels = append(labels, fmt.Sprintf("%s=%d", k, v[0]))
		}
		for k, v := range host {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		var frames []string
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				frames = append(frames, ln.Function.Name)
			}
		}
		key := strings.Join(labels, ",") + " | " + strings.Join(frames, ";")
		v := sums[key]
		v[0] += s.Value[ci]
		v[1] += s.Value[vi]
		sums[key] = v
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		lines = append(lines, fmt.Sprintf("%s -> %d %d", k, sums[k][0], sums[k][1]))
	}
	return strings.Join(lines, "\n")
}

// mergeCanonical merges profiles with pprof's Merge and renders the result.
func mergeCanonical(t testing.TB, ps []*profile.Profile, host map[string]string) string {
	t.Helper()
	if len(ps) == 0 {
		return ""
	}
	copies := make([]*profile.Profile, len(ps))
	for i, p := range ps {
		copies[i] = p.Copy()
		copies[i].TimeNanos = ps[0].TimeNanos
	}
	m, err := profile.Merge(copies)
	if err != nil {
		t.Fatalf("profile.Merge: %v", err)
	}
	return canonical(m, host)
}

func totals(p *profile.Profile) (count, cpu int64) {
	for _, s := range p.Sample {
		count += s.Value[0]
		cpu += s.Value[1]
	}
	return
}
