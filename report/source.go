package report

import (
	"cmp"
	"context"
	"path"
	"slices"

	"github.com/google/pprof/profile"
)

// SourceLines is the cost of one function per source line, from the lines
// the profile's locations hold (pprof's list, Pyroscope's source view):
// which lines of the function the time was spent on (Self) or passed
// through (Total, each sample counted once per line).
type SourceLines struct {
	Function string       `json:"function"`
	Binary   string       `json:"binary"`
	File     string       `json:"file"`
	Total    int64        `json:"total"` // the function's own total
	Lines    []SourceLine `json:"lines"` // by line number
}

// SourceLine is one line's cost.
type SourceLine struct {
	Line  int64 `json:"line"`
	Self  int64 `json:"self"`
	Total int64 `json:"total"`
}

// NewSourceLines sums function name in binaries whose file name is
// binaryBase ("" for any) per source line, for sampleType ("" for the
// default). A function the profile lacks gives no lines.
func NewSourceLines(ctx context.Context, p *profile.Profile, sampleType, name, binaryBase string) (*SourceLines, error) {
	p = orEmpty(p)
	vi, err := sampleIndex(p, sampleType)
	if err != nil {
		return nil, err
	}
	out := &SourceLines{Function: name}
	self, total := map[int64]int64{}, map[int64]int64{}
	seen := map[int64]bool{}
	for si, s := range p.Sample {
		if si%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if vi >= len(s.Value) || s.Value[vi] <= 0 {
			continue
		}
		v := s.Value[vi]
		clear(seen)
		inSample := false
		for li, loc := range s.Location {
			bin := ""
			if loc.Mapping != nil {
				bin = loc.Mapping.File
			}
			if binaryBase != "" && path.Base(bin) != binaryBase {
				continue
			}
			for k, ln := range loc.Line {
				if ln.Function == nil || cmp.Or(ln.Function.Name, ln.Function.SystemName) != name {
					continue
				}
				if out.File == "" {
					out.File, out.Binary = ln.Function.Filename, bin
				}
				inSample = true
				if li == 0 && k == 0 { // the innermost frame: its own time
					self[ln.Line] += v
				}
				if !seen[ln.Line] {
					seen[ln.Line] = true
					total[ln.Line] += v
				}
			}
		}
		if inSample {
			out.Total += v
		}
	}
	for line, t := range total {
		out.Lines = append(out.Lines, SourceLine{Line: line, Self: self[line], Total: t})
	}
	slices.SortFunc(out.Lines, func(a, b SourceLine) int { return cmp.Compare(a.Line, b.Line) })
	return out, nil
}
