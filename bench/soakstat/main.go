// Command soakstat reads a merged Ember profile (a file, or a URL of the
// daemon's /api/v1/profile) and prints, for bench/soak.sh, how whole its
// stacks are: the share of samples carrying a [truncated] frame and the
// share of frames with a name and of samples with every frame named, overall
// and per group of programs (by comm:
// churn-* short-lived, ll-* long-lived, hotspot busy loops, the rest), and
// the unnamed frames seen most, and the comms with the most truncated stacks.
//
//	go run ./bench/soakstat bench/out/soak-last-hour.pb.gz
package main

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// tally counts one group's samples and frames, weighted by sample count.
type tally struct {
	samples, truncated int64
	frames, named      int64
	// allNamed counts samples without an unnamed frame: unlike the frame
	// share it does not change when the symbolizer folds a gone process's
	// frames into one.
	allNamed int64
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: soakstat PROFILE-FILE-OR-URL")
		os.Exit(2)
	}
	p, err := load(os.Args[1])
	if err != nil {
		slog.Error("soakstat", slog.String("source", os.Args[1]), slog.Any("err", err))
		os.Exit(1)
	}
	groups := map[string]*tally{}
	byComm := map[string]*tally{} // of truncated stacks, for where they come from
	unnamed := map[string]int64{}
	for _, s := range p.Sample {
		if len(s.Value) == 0 {
			continue
		}
		n := s.Value[0] // samples/count comes first
		g := groups[group(s)]
		if g == nil {
			g = &tally{}
			groups[group(s)] = g
		}
		g.samples += n
		cut, whole := false, true
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				name := ""
				if line.Function != nil {
					name = line.Function.Name
				}
				if name == "[truncated]" {
					cut = true
					continue
				}
				g.frames += n
				if isNamed(name) {
					g.named += n
				} else {
					unnamed[unnamedKind(name)] += n
					whole = false
				}
			}
		}
		if cut {
			g.truncated += n
		}
		if whole {
			g.allNamed += n
		}
		c := byComm[comm(s)]
		if c == nil {
			c = &tally{}
			byComm[comm(s)] = c
		}
		c.samples += n
		if cut {
			c.truncated += n
		}
	}
	var all tally
	names := make([]string, 0, len(groups))
	for name, g := range groups {
		names = append(names, name)
		all.samples += g.samples
		all.truncated += g.truncated
		all.frames += g.frames
		all.named += g.named
		all.allNamed += g.allNamed
	}
	slices.Sort(names)
	fmt.Printf("%-22s %9s %11s %13s %13s\n", "programs", "samples", "truncated", "frames named", "samples named")
	for _, name := range names {
		printRow(name, groups[name])
	}
	printRow("all", &all)
	kinds := make([]string, 0, len(unnamed))
	for k := range unnamed {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Compare(unnamed[b], unnamed[a]) })
	fmt.Println("unnamed frames by kind (sample-weighted):")
	for _, k := range kinds[:min(len(kinds), 8)] {
		fmt.Printf("  %-60s %d\n", k, unnamed[k])
	}
	comms := make([]string, 0, len(byComm))
	for c := range byComm {
		comms = append(comms, c)
	}
	slices.SortFunc(comms, func(a, b string) int { return cmp.Compare(byComm[b].truncated, byComm[a].truncated) })
	fmt.Println("truncated samples by comm, most first:")
	for _, c := range comms[:min(len(comms), 10)] {
		if t := byComm[c]; t.truncated > 0 {
			fmt.Printf("  %-22s %7d of %7d (%.1f%%)\n", c, t.truncated, t.samples, pct(t.truncated, t.samples))
		}
	}
}

func printRow(name string, t *tally) {
	fmt.Printf("%-22s %9d %10.2f%% %12.2f%% %12.2f%%\n", name, t.samples, pct(t.truncated, t.samples), pct(t.named, t.frames), pct(t.allNamed, t.samples))
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func comm(s *profile.Sample) string {
	if c := s.Label["comm"]; len(c) > 0 {
		return c[0]
	}
	return ""
}

// group names the kind of program a sample belongs to, from its comm.
func group(s *profile.Sample) string {
	name := comm(s)
	switch {
	case strings.HasPrefix(name, "churn-"):
		return "short-lived " + name
	case strings.HasPrefix(name, "ll-"):
		return "long-lived " + name
	case name == "hotspot":
		return "busy loop (hotspot)"
	case name == "cc1" || name == "as" || name == "gcc" || name == "collect2" || name == "ld":
		return "compile loop"
	default:
		return "other"
	}
}

// isNamed reports whether a frame has a real name: Ember marks every frame
// it could not name, and every stack it lost, with a bracketed reason.
func isNamed(name string) bool {
	return name != "" && !strings.HasPrefix(name, "[unknown") &&
		!strings.HasPrefix(name, "[user stack lost") && !strings.HasPrefix(name, "[kernel stack lost")
}

// unnamedKind shortens an unnamed frame to its kind and file, dropping the
// offset so that one file's holes add up.
func unnamedKind(name string) string {
	if i := strings.Index(name, "+0x"); i >= 0 {
		return name[:i] + "+…]"
	}
	if name == "" {
		return "(empty name)"
	}
	return name
}

func load(src string) (*profile.Profile, error) {
	var r io.ReadCloser
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		resp, err := http.Get(src)
		if err != nil {
			return nil, fmt.Errorf("get profile: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("get profile: status %s", resp.Status)
		}
		r = resp.Body
	} else {
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("open profile: %w", err)
		}
		r = f
	}
	defer r.Close()
	p, err := profile.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("parse profile: %w", err)
	}
	return p, nil
}
