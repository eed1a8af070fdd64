package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// handBuilt returns a profile with two processes, kernel and user frames, an
// inlined call, a location with no lines, a name that needs escaping, and two
// samples of the same stack that must be merged.
func handBuilt() *profile.Profile {
	kernel := &profile.Mapping{ID: 1, File: "[kernel.kallsyms]"}
	hotspot := &profile.Mapping{ID: 2, File: "/usr/bin/hotspot"}
	bash := &profile.Mapping{ID: 3, File: "/usr/bin/bash"}

	fn := func(id uint64, name string) *profile.Function {
		return &profile.Function{ID: id, Name: name, SystemName: name}
	}
	fMain, fRun, fAlpha, fMix := fn(1, "main"), fn(2, "run"), fn(3, "alpha"), fn(4, "mix")
	fEntry, fSyscall, fRead := fn(5, "entry_SYSCALL_64"), fn(6, "do_syscall_64"), fn(7, "ksys_read")
	fReadline, fOdd := fn(8, "readline"), fn(9, "operator;weird\nname")

	loc := func(id uint64, m *profile.Mapping, addr uint64, fns ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id, Mapping: m, Address: addr}
		for _, f := range fns {
			l.Line = append(l.Line, profile.Line{Function: f, Line: 1})
		}
		return l
	}
	lMain := loc(1, hotspot, 0x1100, fMain)
	lRun := loc(2, hotspot, 0x1200, fRun)
	// mix was inlined into alpha: innermost first.
	lAlpha := loc(3, hotspot, 0x1300, fMix, fAlpha)
	lEntry := loc(4, kernel, 0xffffffff81000100, fEntry)
	lSyscall := loc(5, kernel, 0xffffffff81000200, fSyscall)
	lRead := loc(6, kernel, 0xffffffff81000300, fRead)
	lBashMain := loc(7, bash, 0x2100, fMain)
	lReadline := loc(8, bash, 0x2200, fReadline)
	lUnknown := loc(9, bash, 0x2badf00d)
	lKernelUnknown := loc(10, kernel, 0xffffffff81dead00)
	lOdd := loc(11, hotspot, 0x1400, fOdd)

	comm := func(c string) map[string][]string { return map[string][]string{"comm": {c}} }
	return &profile.Profile{
		SampleType: []*profile.ValueType{
			{Type: "cpu", Unit: "nanoseconds"},
			{Type: "samples", Unit: "count"},
		},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10101010,
		Mapping:    []*profile.Mapping{kernel, hotspot, bash},
		Function:   []*profile.Function{fMain, fRun, fAlpha, fMix, fEntry, fSyscall, fRead, fReadline, fOdd},
		Location: []*profile.Location{lMain, lRun, lAlpha, lEntry, lSyscall, lRead,
			lBashMain, lReadline, lUnknown, lKernelUnknown, lOdd},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lAlpha, lRun, lMain}, Value: []int64{50505050, 5}, Label: comm("hotspot")},
			// Same stack again, from another thread: merged with the first.
			{Location: []*profile.Location{lAlpha, lRun, lMain}, Value: []int64{30303030, 3}, Label: comm("hotspot")},
			{Location: []*profile.Location{lOdd, lRun, lMain}, Value: []int64{10101010, 1}, Label: comm("hotspot")},
			// Kernel stack on top of the user stack, leaf first.
			{Location: []*profile.Location{lRead, lSyscall, lEntry, lReadline, lBashMain}, Value: []int64{20202020, 2}, Label: comm("bash")},
			{Location: []*profile.Location{lKernelUnknown, lEntry, lUnknown, lBashMain}, Value: []int64{10101010, 1}, Label: comm("bash")},
			// No comm label: the stack starts at its root frame.
			{Location: []*profile.Location{lRun, lMain}, Value: []int64{10101010, 1}},
			// Nothing to draw.
			{Location: []*profile.Location{lMain}, Value: []int64{0, 0}, Label: comm("hotspot")},
		},
	}
}

func TestWriteGolden(t *testing.T) {
	noSamplesType := handBuilt()
	noSamplesType.SampleType = noSamplesType.SampleType[:1] // falls back to the cpu value
	noSamplesType.SampleType[0].Type = "cpu"

	for _, tc := range []struct {
		name string
		p    *profile.Profile
	}{
		{"mixed", handBuilt()},
		{"fallback_first_value", noSamplesType},
		{"empty", &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := WriteFolded(&got, tc.p); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "folded", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("Write output differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s",
					golden, got.Bytes(), want)
			}
		})
	}
}

func TestWriteParses(t *testing.T) {
	p := handBuilt()
	var out bytes.Buffer
	if err := WriteFolded(&out, p); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^([^;\n]+(?:;[^;\n]+)*) ([1-9][0-9]*)$`)
	seen := make(map[string]bool)
	var total int64
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %q is not `stack count`", l)
			continue
		}
		if seen[m[1]] {
			t.Errorf("stack %q written twice", m[1])
		}
		seen[m[1]] = true
		n, _ := strconv.ParseInt(m[2], 10, 64)
		total += n
	}
	var want int64
	for _, s := range p.Sample {
		want += s.Value[1]
	}
	if total != want {
		t.Errorf("counts sum to %d, want %d samples", total, want)
	}
}

func TestWriteNoSampleTypes(t *testing.T) {
	if err := WriteFolded(&bytes.Buffer{}, &profile.Profile{}); err == nil {
		t.Error("Write of a profile without sample types succeeded, want an error")
	}
}

// benchProfile returns n samples over 2 processes, 1000 functions and stacks
// 24 frames deep, the last 4 in the kernel.
func benchProfile(n int) *profile.Profile {
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}}}
	kernel := &profile.Mapping{ID: 1, File: "[kernel.kallsyms]"}
	user := &profile.Mapping{ID: 2, File: "/usr/bin/app"}
	p.Mapping = []*profile.Mapping{kernel, user}
	const funcs = 1000
	for i := range funcs {
		f := &profile.Function{ID: uint64(i + 1), Name: fmt.Sprintf("pkg.(*Type).method%d", i)}
		m := user
		if i < 50 {
			m = kernel
		}
		p.Function = append(p.Function, f)
		p.Location = append(p.Location, &profile.Location{
			ID: uint64(i + 1), Mapping: m, Address: uint64(0x1000 + i*16),
			Line: []profile.Line{{Function: f, Line: int64(i)}},
		})
	}
	x := uint64(1)
	for i := range n {
		s := &profile.Sample{Value: []int64{1}, Label: map[string][]string{"comm": {[]string{"app", "worker"}[i%2]}}}
		for d := range 24 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if d < 4 {
				s.Location = append(s.Location, p.Location[x%50])
			} else {
				s.Location = append(s.Location, p.Location[50+x%(funcs-50)])
			}
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

func BenchmarkWriteFolded(b *testing.B) {
	p := benchProfile(10_000)
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := WriteFolded(&out, p); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(out.Len()))
}
