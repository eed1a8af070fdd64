// Folded stacks (Brendan Gregg's format), the input of flamegraph.pl and
// most flame-graph tools: one line per distinct stack, frames root first and
// joined by ';', then a space and a count.

package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

const (
	// kernelFile is the Mapping.File of kernel frames, as perf names it.
	kernelFile = "[kernel.kallsyms]"
	// kernelSuffix marks kernel frames the way stackcollapse-perf.pl
	// --kernel does, so flame-graph tools colour them apart.
	kernelSuffix = "_[k]"
	// commLabel is the sample label holding the process name, written as
	// the root of every stack.
	commLabel = schema.LabelComm
)

// countType names the sample value written as the count.
var countType = schema.Samples.Type

// WriteFolded writes p as folded stacks to w: `comm;root;...;leaf count` per line,
// with identical stacks summed and lines sorted so output is deterministic.
// The count is the "samples" value, or the first value if p has no sample
// type of that name. Samples with a count of zero or less, or with neither a
// comm label nor a location, are left out: they have nothing to draw.
func WriteFolded(w io.Writer, p *profile.Profile) error {
	if len(p.SampleType) == 0 {
		return fmt.Errorf("write folded stacks: profile has no sample types")
	}
	valueIndex := foldedValueIndex(p)
	counts := stackCounts(p, valueIndex)
	slices.SortFunc(counts, func(a, b stackCount) int { return strings.Compare(a.stack, b.stack) })

	bw := bufio.NewWriter(w)
	var num []byte
	for _, c := range counts {
		bw.WriteString(c.stack)
		bw.WriteByte(' ')
		num = strconv.AppendInt(num[:0], c.count, 10)
		bw.Write(num)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write folded stacks: %w", err)
	}
	return nil
}

// foldedValueIndex returns the index of the "samples" value, or 0.
func foldedValueIndex(p *profile.Profile) int {
	// A profile of time off the CPU alone is folded by that time.
	if p.DefaultSampleType == schema.OffCPU.Type {
		for i, st := range p.SampleType {
			if st.Type == p.DefaultSampleType {
				return i
			}
		}
	}
	for i, st := range p.SampleType {
		if st.Type == countType {
			return i
		}
	}
	return 0
}

// A stackCount is one distinct folded stack and its summed count.
type stackCount struct {
	stack string
	count int64
}

// stackCounts returns each distinct folded stack and its summed count, in no
// particular order.
func stackCounts(p *profile.Profile, valueIndex int) []stackCount {
	var counts []stackCount
	// index maps a stack to its place in counts. Looking up string(stack)
	// does not allocate, so only a stack seen for the first time does.
	index := make(map[string]int)
	// Locations are shared by many samples; name each one once.
	frames := make(map[*profile.Location]string, len(p.Location))
	var stack []byte
	for _, s := range p.Sample {
		if valueIndex >= len(s.Value) || s.Value[valueIndex] <= 0 {
			continue
		}
		stack = stack[:0]
		if comm := s.Label[commLabel]; len(comm) > 0 {
			stack = append(stack, foldedName(comm[0])...)
		}
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			f, ok := frames[loc]
			if !ok {
				f = foldedFrames(loc)
				frames[loc] = f
			}
			if len(stack) > 0 {
				stack = append(stack, ';')
			}
			stack = append(stack, f...)
		}
		if len(stack) == 0 {
			continue
		}
		if i, ok := index[string(stack)]; ok {
			counts[i].count += s.Value[valueIndex]
			continue
		}
		key := string(stack)
		index[key] = len(counts)
		counts = append(counts, stackCount{stack: key, count: s.Value[valueIndex]})
	}
	return counts
}

// foldedFrames returns the frames of one location, outermost first and
// joined by ';'. pprof lists a location's lines innermost first: inlined
// callees before the function they were inlined into.
func foldedFrames(loc *profile.Location) string {
	suffix := ""
	if loc.Mapping != nil && loc.Mapping.File == kernelFile {
		suffix = kernelSuffix
	}
	if len(loc.Line) == 0 {
		return "0x" + strconv.FormatUint(loc.Address, 16) + suffix
	}
	var b strings.Builder
	for i := len(loc.Line) - 1; i >= 0; i-- {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		name := ""
		if fn := loc.Line[i].Function; fn != nil {
			name = foldedName(fn.Name)
		}
		if name == "" {
			name = "0x" + strconv.FormatUint(loc.Address, 16)
		}
		b.WriteString(name)
		b.WriteString(suffix)
	}
	return b.String()
}

// foldedNameReplacer keeps a name from splitting a frame (';') or a line.
var foldedNameReplacer = strings.NewReplacer(";", ":", "\n", " ", "\r", " ")

func foldedName(name string) string {
	if !strings.ContainsAny(name, ";\n\r") {
		return name
	}
	return foldedNameReplacer.Replace(name)
}
