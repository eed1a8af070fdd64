package symbolizer

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/model"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	pieBase = 0x555555554000
	libBase = 0x7f0000000000
	vdso    = 0x7ffff7fc1000
	anon    = 0x7e0000000000
)

// goldenBatch is a hand-built batch with one of each case the symbolizer
// must handle, built on the ELF fixtures.
func goldenBatch(t testing.TB) *model.Batch {
	t.Helper()
	pie := loadAt(t, "prog-pie", pieBase)
	lib := loadAt(t, "libember.so", libBase)
	nopie := loadAt(t, "prog-nopie", 0)
	stripped := loadAt(t, "prog-stripped", 0x560000000000)
	libBias := libBase - fixtureFirstLoad(t, "libember.so")

	bad := filepath.Join(t.TempDir(), "libbad.so")
	if err := os.WriteFile(bad, bytes.Repeat([]byte("not an ELF file "), 512), 0o644); err != nil {
		t.Fatal(err)
	}
	badFile, err := os.Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { badFile.Close() })
	badMapping := []model.Mapping{{Start: 0x7f2000000000, Limit: 0x7f2000001000, Offset: 0x1000, Path: "/opt/fixture/libbad.so", File: badFile}}

	special := []model.Mapping{
		{Start: vdso, Limit: vdso + 0x2000, Path: "[vdso]"},
		{Start: anon, Limit: anon + 0x10000},
	}
	p100 := process(100, pie, lib, stripped, badMapping, special)
	p100.Comm = "prog"
	p200 := process(200, nopie)
	p200.Comm = "prog-nopie"
	p200.Exited = true

	// sym returns an address inside a fixture function: off bytes past
	// its start, at the given load bias.
	sym := func(file, name string, bias, off uint64) uint64 {
		v, _ := fixtureSymbol(t, file, name)
		return bias + v + off
	}
	pieBias := pieBase - fixtureFirstLoad(t, "prog-pie")
	leaf := sym("prog-pie", "ember_leaf", pieBias, 4)
	middleRet := sym("prog-pie", "ember_middle", pieBias, 9)
	helperRet := sym("prog-pie", "ember_static_helper", pieBias, 12)
	mainRet := sym("prog-pie", "main", pieBias, 20)
	libCompute := sym("libember.so", "ember_lib_compute", libBias, 8)
	libEntryRet := sym("libember.so", "ember_lib_entry", libBias, 10)

	return &model.Batch{
		Start:       time.Unix(1700000000, 0),
		End:         time.Unix(1700000010, 0),
		FrequencyHz: 99,
		PeriodNanos: int64(time.Second) / 99,
		Processes: map[model.ProcessKey]*model.Process{
			{PID: 100}: p100,
			{PID: 200}: p200,
			{PID: 300}: {PID: 300, Comm: "gone", SnapshotErr: errors.New("open /proc/300/maps: no such file or directory")},
			// 400 is missing: the snapshot lost it.
		},
		// Deliberately out of order: Profile sorts by pid, tid, stack.
		Samples: []model.Sample{
			{ // in a syscall, full user stack
				PID: 100, TID: 101, Comm: "prog", Count: 5,
				Kernel: []uint64{0xffffffff81004104, 0xffffffff81004010, 0xffffffff81003020},
				User:   []uint64{leaf, middleRet, helperRet, mainRet},
			},
			{ // user mode, through the shared library, vdso and JIT code
				PID: 100, TID: 100, Comm: "prog", Count: 2,
				User: []uint64{vdso + 0x123, anon + 0x40, libCompute, libEntryRet, mainRet},
			},
			{ // user stack lost, kernel stack present
				PID: 100, TID: 100, Comm: "prog", Count: 1,
				Kernel:   []uint64{0xffffffff81010010},
				UserLost: model.LostCollision,
			},
			{ // both stacks cut at the depth limit
				PID: 100, TID: 102, Comm: "prog-worker", Count: 1,
				Kernel: []uint64{0xffffffff81010010}, KernelTruncated: true,
				User: []uint64{leaf, middleRet}, UserTruncated: true,
			},
			{ // kernel stack lost; user code in a stripped and an unreadable file
				PID: 100, TID: 103, Comm: "prog", Count: 1,
				KernelLost: model.LostMapFull,
				User:       []uint64{stripped[0].Start + 0x10, 0x7f2000000100},
			},
			{ // exited process: mapped addresses still resolve, others say why
				PID: 200, TID: 200, Comm: "prog-nopie", Count: 3,
				User: []uint64{sym("prog-nopie", "ember_leaf", 0, 1), 0x1234},
			},
			{ // never read: every frame says why
				PID: 300, TID: 300, Comm: "gone", Count: 1,
				User: []uint64{0x401000, 0x401100},
			},
			{ // not in the snapshot at all
				PID: 400, TID: 401, Comm: "ghost", Count: 1,
				User: []uint64{0x401000},
			},
			{ // kernel thread in a module and a BPF program
				PID: 2, TID: 2, Comm: "kworker/0:1", Count: 4,
				Kernel:   []uint64{0xffffffffa0000010, 0xffffffffc0a00008, 0xffffffff81001044},
				UserLost: model.LostKernelThread,
			},
			{ // exiting process: its memory is gone, so no user frames and no marker
				PID: 100, TID: 105, Comm: "prog", Count: 1,
				Kernel:   []uint64{0xffffffff81010010, 0xffffffff81003040},
				UserLost: model.LostExiting,
			},
			{ // inside execve: registers and memory of two images, so no user frames
				PID: 100, TID: 106, Comm: "prog", Count: 1,
				Kernel:   []uint64{0xffffffff81003040},
				UserLost: model.LostExecve,
			},
			{ // drained stack: user lost at drain, idle kernel
				PID: 100, TID: 104, Comm: "prog", Count: 1,
				Kernel:   []uint64{0xffffffff81001000},
				UserLost: model.LostDrained,
			},
		},
	}
}

func TestProfileGolden(t *testing.T) {
	s := newTestSymbolizer(t)
	b := goldenBatch(t)
	p, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	got := renderProfile(p)
	golden := filepath.Join("testdata", "profile.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./symbolizer -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("profile differs from %s (run with -update and review the diff):\n%s", golden, got)
	}

	// The encoded profile parses back to the same thing.
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	parsed, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if back := renderProfile(parsed); back != got {
		t.Errorf("profile changed through Write and Parse:\n%s", back)
	}

	// A second run over the same batch (now from warm caches) gives the
	// same profile.
	again, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	if r := renderProfile(again); r != got {
		t.Errorf("second Profile differs:\n%s", r)
	}
}

func TestProfileContract(t *testing.T) {
	b := goldenBatch(t)
	p, err := newTestSymbolizer(t).Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != len(b.Samples) {
		t.Fatalf("%d samples, want %d", len(p.Sample), len(b.Samples))
	}
	var types []string
	for _, vt := range append(slices.Clone(p.SampleType), p.PeriodType) {
		types = append(types, vt.Type+"/"+vt.Unit)
	}
	if got := strings.Join(types, " "); got != "samples/count cpu/nanoseconds cpu/nanoseconds" {
		t.Errorf("sample and period types %s", got)
	}
	if p.Period != b.PeriodNanos || p.TimeNanos != b.Start.UnixNano() || p.DurationNanos != int64(10*time.Second) {
		t.Errorf("period %d time %d duration %d", p.Period, p.TimeNanos, p.DurationNanos)
	}
	type order struct{ pid, tid int64 }
	var seen []order
	for _, smp := range p.Sample {
		if smp.Value[1] != smp.Value[0]*b.PeriodNanos {
			t.Errorf("values %v", smp.Value)
		}
		seen = append(seen, order{smp.NumLabel["pid"][0], smp.NumLabel["tid"][0]})
		if len(smp.Label["comm"]) != 1 || smp.Label["comm"][0] == "" {
			t.Errorf("comm label %v", smp.Label)
		}
		for _, loc := range smp.Location {
			for _, ln := range loc.Line {
				if ln.Function.Name == "" {
					t.Errorf("location %d has a blank function name", loc.ID)
				}
			}
		}
	}
	if !sort.SliceIsSorted(seen, func(i, j int) bool {
		return seen[i].pid < seen[j].pid || seen[i].pid == seen[j].pid && seen[i].tid < seen[j].tid
	}) {
		t.Errorf("samples not sorted by pid, tid: %v", seen)
	}
	// Locations are unique per (mapping, address), functions per name.
	type locKey struct {
		mapping uint64
		addr    uint64
		name    string
	}
	locs := map[locKey]bool{}
	for _, loc := range p.Location {
		k := locKey{addr: loc.Address}
		if loc.Mapping != nil {
			k.mapping = loc.Mapping.ID
		} else {
			k.name = loc.Line[0].Function.Name // markers and unmapped
		}
		if locs[k] {
			t.Errorf("duplicate location %+v", k)
		}
		locs[k] = true
	}
	fns := map[string]bool{}
	for _, fn := range p.Function {
		k := fn.Name + "\x00" + fn.SystemName + "\x00" + fn.Filename
		if fns[k] {
			t.Errorf("duplicate function %q", fn.Name)
		}
		fns[k] = true
	}
	// Sample order does not depend on input order.
	slices.Reverse(b.Samples)
	p2, err := newTestSymbolizer(t).Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	if renderProfile(p2) != renderProfile(p) {
		t.Error("profile depends on the order of the batch's samples")
	}
}

// renderProfile is the golden text form of a profile: stable, and readable
// in a review diff (pprof's own String prints times in the local zone).
func renderProfile(p *profile.Profile) string {
	var b strings.Builder
	var types []string
	for _, st := range p.SampleType {
		types = append(types, st.Type+"/"+st.Unit)
	}
	fmt.Fprintf(&b, "sample types: %s\n", strings.Join(types, " "))
	fmt.Fprintf(&b, "period: %d %s/%s\n", p.Period, p.PeriodType.Type, p.PeriodType.Unit)
	fmt.Fprintf(&b, "time: %d duration: %d\n", p.TimeNanos, p.DurationNanos)
	for i, smp := range p.Sample {
		fmt.Fprintf(&b, "\nsample %d: %v comm=%q pid=%v tid=%v\n", i, smp.Value, smp.Label["comm"], smp.NumLabel["pid"], smp.NumLabel["tid"])
		for _, loc := range smp.Location {
			m := "-"
			if loc.Mapping != nil {
				m = fmt.Sprintf("M%d", loc.Mapping.ID)
			}
			var names []string
			for _, ln := range loc.Line {
				name := ln.Function.Name
				if ln.Function.SystemName != ln.Function.Name {
					name += " (" + ln.Function.SystemName + ")"
				}
				names = append(names, name)
			}
			fmt.Fprintf(&b, "  L%-3d %-4s %#-14x %s\n", loc.ID, m, loc.Address, strings.Join(names, " <- "))
		}
	}
	b.WriteString("\nmappings:\n")
	for _, m := range p.Mapping {
		fmt.Fprintf(&b, "  M%d %#x-%#x off=%#x %s buildid=%q functions=%v\n", m.ID, m.Start, m.Limit, m.Offset, m.File, m.BuildID, m.HasFunctions)
	}
	fmt.Fprintf(&b, "\n%d locations, %d functions\n", len(p.Location), len(p.Function))
	return b.String()
}

// A batch's own value types follow the CPU ones in the profile, each
// sample's values in place; a type the schema does not know is refused.
func TestProfileCarriesBatchValues(t *testing.T) {
	s := newTestSymbolizer(t)
	frames := []model.Frame{{Kind: model.FrameInterpreted, Function: "wait", File: "app.py", Line: 3}}
	b := &model.Batch{PeriodNanos: 10, ValueTypes: []model.ValueType{{Type: "wall", Unit: "nanoseconds"}},
		Samples: []model.Sample{
			{PID: 7, TID: 7, Comm: "app", UserFrames: frames, Count: 2, Values: []int64{100}},
			{PID: 7, TID: 8, Comm: "app", UserFrames: frames},
		}}
	p, err := s.Profile(b)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, st := range p.SampleType {
		types = append(types, st.Type)
	}
	if fmt.Sprint(types) != "[samples cpu wall]" {
		t.Fatalf("sample types %v", types)
	}
	var values []string
	for _, smp := range p.Sample {
		values = append(values, fmt.Sprint(smp.Value))
	}
	if got := strings.Join(values, " "); got != "[2 20 100] [0 0 0]" {
		t.Errorf("values %s, want [2 20 100] [0 0 0]", got)
	}
	b.ValueTypes[0].Type = "heap"
	if _, err := s.Profile(b); err == nil {
		t.Error("a value type the schema does not know was written")
	}
}
